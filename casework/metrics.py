"""casework's own Prometheus metrics, counted from workflow code as audit events are recorded.

``CaseWorkflow.record`` calls :func:`count` for every audit event, so every process is covered
without code of its own. The counters come from ``workflow.metric_meter()``, which the SDK makes
replay-safe: nothing is counted while a workflow replays (after a worker restart, a cache
eviction, or to answer a query on a closed case), so each event is counted once. The meter adds
``namespace``, ``task_queue`` and ``workflow_type`` labels; casework adds ``case_type``.

Only cases count case-level things (outcomes, spend, compensations): an agent region's spend is
counted by its parent case when the region ends, exactly as in the audit trail.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import MetricCounter

from casework.audit import MODEL_USAGE, RECOMMENDED_ACTION, AuditEvent, AuditKind

CASES_STARTED = "casework_cases_started"
CASES_COMPLETED = "casework_cases_completed"
DECISIONS = "casework_decisions"
AGENT_PROPOSALS = "casework_agent_proposals"
PROPOSAL_CHECKS = "casework_proposal_checks"
MODEL_CALLS = "casework_model_calls"
MODEL_TOKENS = "casework_model_tokens"
MODEL_COST = "casework_model_cost_microdollars"
BUDGET_EXHAUSTED = "casework_agent_budget_exhausted"
COMPENSATIONS = "casework_compensations"

DESCRIPTIONS = {
    CASES_STARTED: "Cases started, by case type",
    CASES_COMPLETED: "Cases that reached an outcome, by case type and final status",
    DECISIONS: "Decisions by kind: approve, reject, answer (people), auto (the policy decided "
    "without a person), refused (an invalid signal), timed_out, escalated",
    AGENT_PROPOSALS: "Agent proposals, by agent and recommended action",
    PROPOSAL_CHECKS: "Values agents proposed, by agent, how each was checked (basis) and the "
    "verdict (verified, unverified: not used, opinion)",
    MODEL_CALLS: "Model calls cases paid for, by agent",
    MODEL_TOKENS: "Model tokens cases paid for, by agent and token_type (prompt/completion)",
    MODEL_COST: "Model cost cases paid for, in millionths of a US dollar, by agent",
    BUDGET_EXHAUSTED: "Agent regions ended because a budget ran out, by agent",
    COMPENSATIONS: "Saga compensations run, by result (ok/failed)",
}

_HUMAN_KINDS = {
    AuditKind.HUMAN_ANSWER: "answer",
    AuditKind.DECISION_REFUSED: "refused",
    AuditKind.TASK_TIMED_OUT: "timed_out",
    AuditKind.TASK_ESCALATED: "escalated",
}


class CaseMetrics:
    """The counters of one workflow; created lazily, so a workflow that records nothing of a
    kind never touches the meter for it."""

    def __init__(self, case_type: str, counts_as_case: bool) -> None:
        self._case_type = case_type
        self._counts_as_case = counts_as_case
        self._counters: dict[str, MetricCounter] = {}

    def _add(self, name: str, value: int = 1, **labels: Any) -> None:
        if value <= 0:
            return
        counter = self._counters.get(name)
        if counter is None:
            counter = workflow.metric_meter().create_counter(name, DESCRIPTIONS[name])
            self._counters[name] = counter
        counter.add(value, {"case_type": self._case_type, **labels})

    def count(self, event: AuditEvent, status: str, decided_automatically: bool) -> None:
        kind, data = event.kind, event.data
        if kind is AuditKind.HUMAN_DECISION:
            action = str((data.get("decision") or {}).get("action", "unknown"))
            self._add(DECISIONS, kind=action)
        elif kind in _HUMAN_KINDS:
            self._add(DECISIONS, kind=_HUMAN_KINDS[kind])
        if not self._counts_as_case:
            return
        if kind is AuditKind.CASE_STARTED:
            self._add(CASES_STARTED)
        elif kind is AuditKind.CASE_COMPLETED:
            self._add(CASES_COMPLETED, status=status)
            if decided_automatically:
                self._add(DECISIONS, kind="auto")
        elif kind is AuditKind.AGENT_PROPOSAL:
            self._add(
                AGENT_PROPOSALS,
                agent=str(data.get("agent", "")),
                recommended_action=str(data.get(RECOMMENDED_ACTION) or "none"),
            )
        elif kind is AuditKind.PROPOSAL_CHECKED:
            for check in data.get("checks") or []:
                self._add(
                    PROPOSAL_CHECKS,
                    agent=str(data.get("agent", "")),
                    basis=str(check.get("basis", "")),
                    verdict=str(check.get("verdict", "")),
                )
        elif kind is AuditKind.AGENT_REGION_ENDED and data.get("outcome") == "budget_exhausted":
            self._add(BUDGET_EXHAUSTED, agent=str((data.get(MODEL_USAGE) or {}).get("agent", "")))
        elif kind is AuditKind.COMPENSATION:
            self._add(COMPENSATIONS, result="ok" if data.get("ok", True) else "failed")
        usage = data.get(MODEL_USAGE)
        if usage:
            agent = str(usage.get("agent", ""))
            self._add(MODEL_CALLS, int(usage.get("model_calls", 0)), agent=agent)
            self._add(
                MODEL_TOKENS, int(usage.get("prompt_tokens", 0)), agent=agent, token_type="prompt"
            )
            self._add(
                MODEL_TOKENS,
                int(usage.get("completion_tokens", 0)),
                agent=agent,
                token_type="completion",
            )
            self._add(MODEL_COST, round(float(usage.get("cost_usd") or 0) * 1_000_000), agent=agent)
