"""KPIs over every case: what ``casework report`` prints and the review queue's report page shows.

Generic over processes: it reads only what every ``CaseWorkflow`` offers (the ``CaseType`` and
``CaseStatus`` search attributes, the ``open_tasks`` and ``audit`` queries) and the audit
conventions in :mod:`casework.audit`. :func:`collect` gathers the cases from Temporal;
:func:`compute` is pure, so the KPI definitions are tested without a server.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from casework import search_attributes as sa
from casework.audit import (
    CONFIDENCE,
    MODEL_USAGE,
    RECOMMENDED_ACTION,
    AuditEvent,
    AuditKind,
    ModelUsage,
)
from casework.backlog import (
    ENDINGS,
    UNREADABLE_ERRORS,
    SlaState,
    execution_word,
    failure_text,
    shown_status,
    sla_state,
)
from casework.case.tasks import HumanTask, TaskKind
from casework.catalogue import discover
from casework.cli.output import table

CASES_QUERY = f"{sa.CASE_TYPE.name} IS NOT NULL"
QUERY_TIMEOUT = timedelta(seconds=15)

CONFIDENCE_BUCKETS = 10
SLOWEST_STEPS_SHOWN = 3
THROUGHPUT_DAYS_SHOWN = 7
ENDING_WORDS = [word for status, word in ENDINGS.items() if status.name != "CONTINUED_AS_NEW"]


class CaseRecord(BaseModel):
    """One case as the report sees it."""

    case_id: str
    case_type: str
    case_status: str
    """The CaseStatus search attribute: the process's own word for where the case stands."""
    execution_status: str
    """Temporal's, in casework's words (backlog.ENDINGS): running, completed, failed,
    terminated, cancelled, timed_out."""
    started_at: datetime
    closed_at: datetime | None = None
    open_tasks: list[HumanTask] = []
    audit: list[AuditEvent] | None = None
    """None when the audit trail could not be read (no worker to answer the query)."""
    failure: str | None = None
    """Why the workflow itself failed, for failed executions."""
    runs: int = 1
    """Workflow runs under this case ID; the case is its latest run, as ``casework show``
    shows it (an earlier one failed, or someone started the ID again by hand)."""

    @property
    def status(self) -> str:
        """The status the report groups by: the case's own, unless the workflow ended without
        reaching one (failed, terminated, cancelled, timed out), which then says so."""
        return shown_status(self.case_status, self.execution_status)


# -- the report ---------------------------------------------------------------------------------


class Rate(BaseModel):
    count: int
    of: int
    rate: float | None
    """count / of, or None when there is nothing to divide by."""


def _rate(count: int, of: int) -> Rate:
    return Rate(count=count, of=of, rate=round(count / of, 4) if of else None)


class SlaSummary(BaseModel):
    on_track: int = 0
    at_risk: int = 0
    breached: int = 0
    at_risk_tasks: list[str] = []
    breached_tasks: list[str] = []


class Override(BaseModel):
    case_id: str
    task_id: str | None
    approver: str
    recommended: str
    decided: str


class ConfidenceSummary(BaseModel):
    count: int
    mean: float | None
    median: float | None
    buckets: list[int]
    """Proposals per tenth of confidence: [0, 0.1), [0.1, 0.2) ... [0.9, 1.0]."""
    by_process: dict[str, list[float]]


class Spend(BaseModel):
    cases: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    model_calls_per_case: float | None = None
    tokens_per_case: float | None = None
    cost_usd_per_case: float | None = None

    def add(self, usage: ModelUsage) -> None:
        self.model_calls += usage.model_calls
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.tokens += usage.tokens
        self.cost_usd = round(self.cost_usd + usage.cost_usd, 8)

    def finish(self) -> Spend:
        if self.cases:
            self.model_calls_per_case = round(self.model_calls / self.cases, 4)
            self.tokens_per_case = round(self.tokens / self.cases, 4)
            self.cost_usd_per_case = round(self.cost_usd / self.cases, 8)
        return self


class Compensation(BaseModel):
    case_id: str
    case_type: str
    step: str
    ok: bool


class Failure(BaseModel):
    case_id: str
    case_type: str
    status: str
    reason: str


class CycleTime(BaseModel):
    count: int
    median_seconds: float | None


class Durations(BaseModel):
    count: int
    median_seconds: float | None
    p90_seconds: float | None
    """The 90th percentile, interpolated between the closest ranks (numpy's default)."""


class MapEdge(BaseModel):
    source: str
    target: str
    count: int
    """How often ``target`` directly followed ``source`` in a case's audit trail."""
    median_wait_seconds: float | None


class ProcessMap(BaseModel):
    """The directly-follows graph of one process's audit trails: what process-mining tools
    draw as a process map. Activities are audit kinds."""

    cases: int
    activities: dict[str, int]
    """How often each audit kind occurred."""
    starts: dict[str, int]
    """Which kind cases began with."""
    ends: dict[str, int]
    """Which kind closed cases ended with."""
    edges: list[MapEdge]


class Flow(BaseModel):
    """Where cases stall: the figures computed from the audit trails' timing."""

    step_times: dict[str, dict[str, Durations]] = {}
    """Process -> audit kind -> time from an entry of that kind to the case's next entry: how
    long cases stood in the step it began. The last entry of a case has no next and counts
    for nothing."""
    task_times: dict[str, dict[str, Durations]] = {}
    """Process -> human task (``<kind> (<role it opened for>)``) -> time from opening to being
    decided, answered or timed out. Tasks still open count for nothing."""
    sla_attainment: Rate = Rate(count=0, of=0, rate=None)
    """Closed human tasks decided or answered by the due time they opened with, of all closed
    ones (timed out ones missed it)."""
    sla_attainment_by_process: dict[str, Rate] = {}
    throughput_per_day: dict[str, int] = {}
    """Cases closed per UTC day (YYYY-MM-DD), days without any left out."""
    throughput_per_day_by_process: dict[str, dict[str, int]] = {}
    process_maps: dict[str, ProcessMap] = {}


class Report(BaseModel):
    generated_at: datetime
    cases: int
    """Distinct case IDs (business keys), however many runs each had."""
    runs: int = 0
    """Workflow runs behind those cases."""
    cases_by_ending: dict[str, int] = {}
    """Cases by how their workflow stands: running, and every way one ends (completed, failed,
    terminated, cancelled, timed_out), each listed even when none ended that way."""
    cases_by_process: dict[str, int]
    cases_by_process_and_status: dict[str, dict[str, int]]
    backlog_by_role: dict[str, int]
    """Open approval tasks, by the role they are assigned to."""
    questions_by_role: dict[str, int]
    sla: SlaSummary
    auto_approval: Rate
    """Cases the policy decided without a person, of cases decided (by policy or routed to one)."""
    auto_approval_by_process: dict[str, Rate]
    override: Rate
    """Human decisions that differ from the agent's recommendation, of decisions on cases with
    a recommendation in approve/reject terms."""
    override_by_process: dict[str, Rate]
    overrides: list[Override]
    confidence: ConfidenceSummary
    model_usage: Spend
    model_usage_by_process: dict[str, Spend]
    model_usage_by_case: dict[str, Spend]
    compensations: list[Compensation]
    compensations_by_process: dict[str, int]
    failures: list[Failure]
    failure_reasons: dict[str, int]
    cycle_time: CycleTime
    cycle_time_by_process: dict[str, CycleTime]
    unreadable_audit: list[str] = []
    """Cases whose audit trail could not be read: their KPIs beyond status are missing."""
    flow: Flow = Flow()

    def visible_to(self, may_see: Callable[[str], bool]) -> Report:
        """This report for a viewer who may see only the cases ``may_see(case_id)`` admits:
        every list naming a case is filtered; counts and figures over all cases stay."""

        def task_case(task_id: str) -> str:
            # Task IDs are "<case ID>/<kind>-<n>" (casework.case.human), a format running
            # cases depend on.
            return task_id.rsplit("/", 1)[0]

        sla = self.sla.model_copy(
            update={
                "at_risk_tasks": [t for t in self.sla.at_risk_tasks if may_see(task_case(t))],
                "breached_tasks": [t for t in self.sla.breached_tasks if may_see(task_case(t))],
            }
        )
        return self.model_copy(
            update={
                "sla": sla,
                "overrides": [o for o in self.overrides if may_see(o.case_id)],
                "model_usage_by_case": {
                    case_id: spend
                    for case_id, spend in self.model_usage_by_case.items()
                    if may_see(case_id)
                },
                "compensations": [c for c in self.compensations if may_see(c.case_id)],
                "failures": [f for f in self.failures if may_see(f.case_id)],
                "unreadable_audit": [c for c in self.unreadable_audit if may_see(c)],
            }
        )


def _events(case: CaseRecord, kind: AuditKind) -> list[AuditEvent]:
    return [event for event in case.audit or [] if event.kind is kind]


def _is_decided(case: CaseRecord) -> tuple[bool, bool]:
    """(decided, automatically): routed to a person, or completed without an approval task."""
    audit = case.audit or []
    approval_tasks = [
        e
        for e in audit
        if e.kind is AuditKind.TASK_OPENED
        and e.data.get("task_kind", TaskKind.APPROVAL.value) == TaskKind.APPROVAL.value
    ]
    completed = any(e.kind is AuditKind.CASE_COMPLETED for e in audit)
    if approval_tasks:
        return True, False
    return completed, completed


def _overrides(case: CaseRecord) -> tuple[int, list[Override]]:
    """Human decisions following a recommendation in approve/reject terms, and the overrides."""
    recommended: str | None = None
    decisions = 0
    overrides: list[Override] = []
    for event in case.audit or []:
        if event.kind is AuditKind.AGENT_PROPOSAL:
            recommended = event.data.get(RECOMMENDED_ACTION)
        elif event.kind is AuditKind.HUMAN_DECISION and recommended:
            decision = event.data.get("decision") or {}
            decisions += 1
            if decision.get("action") != recommended:
                overrides.append(
                    Override(
                        case_id=case.case_id,
                        task_id=event.data.get("task_id"),
                        approver=str(decision.get("approver", "")),
                        recommended=recommended,
                        decided=str(decision.get("action", "")),
                    )
                )
    return decisions, overrides


def _proposal_confidence(event: AuditEvent) -> float | None:
    """The ``confidence`` convention; for a process not yet following it, the proposal's own."""
    if CONFIDENCE in event.data:
        value = event.data[CONFIDENCE]
    else:
        value = (event.data.get("proposal") or {}).get("confidence")
    return None if value is None else float(value)


def _model_usage(event: AuditEvent) -> ModelUsage | None:
    """The ``model_usage`` convention; for a proposal recorded without it, its single call's
    ``usage`` (an AgentUsage), so a process not yet following the convention still counts."""
    if event.data.get(MODEL_USAGE):
        return ModelUsage.model_validate(event.data[MODEL_USAGE])
    usage = event.data.get("usage")
    if event.kind is AuditKind.AGENT_PROPOSAL and MODEL_USAGE not in event.data and usage:
        return ModelUsage(
            agent=str(event.data.get("agent", "")),
            model_calls=1,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost_usd=float(usage.get("cost_usd") or 0),
        )
    return None


def _failure_reason(case: CaseRecord) -> str | None:
    status = case.status
    if not (status.startswith("failed") or status.startswith("workflow_")):
        return None
    if case.failure:
        return case.failure
    tool_failures = _events(case, AuditKind.TOOL_FAILED)
    if tool_failures:
        return tool_failures[-1].summary
    completed = _events(case, AuditKind.CASE_COMPLETED)
    if completed:
        return completed[-1].summary
    return status


def _reason_key(reason: str) -> str:
    """Failure reasons grouped by their first clause, without case-specific detail."""
    return reason.split(":")[0].strip()[:80]


def compute(cases: Iterable[CaseRecord], now: datetime | None = None) -> Report:
    now = now or datetime.now(UTC)
    cases = sorted(cases, key=lambda case: case.started_at)
    by_process: Counter[str] = Counter()
    by_status: dict[str, Counter[str]] = defaultdict(Counter)
    backlog: Counter[str] = Counter()
    questions: Counter[str] = Counter()
    sla = SlaSummary()
    decided: Counter[str] = Counter()
    automatic: Counter[str] = Counter()
    with_recommendation: Counter[str] = Counter()
    overridden: Counter[str] = Counter()
    overrides: list[Override] = []
    confidences: dict[str, list[float]] = defaultdict(list)
    spend_total = Spend()
    spend_by_process: dict[str, Spend] = defaultdict(Spend)
    spend_by_case: dict[str, Spend] = {}
    compensations: list[Compensation] = []
    failures: list[Failure] = []
    cycle: dict[str, list[float]] = defaultdict(list)
    unreadable: list[str] = []

    endings: Counter[str] = Counter({word: 0 for word in ENDING_WORDS})
    for case in cases:
        kind = case.case_type
        by_process[kind] += 1
        endings[case.execution_status] += 1
        by_status[kind][case.status] += 1
        for task in case.open_tasks:
            if task.kind is TaskKind.QUESTION:
                questions[task.role] += 1
                continue
            backlog[task.role] += 1
            state = sla_state(task, now)
            if state is SlaState.AT_RISK:
                sla.at_risk += 1
                sla.at_risk_tasks.append(task.task_id)
            elif state is SlaState.BREACHED:
                sla.breached += 1
                sla.breached_tasks.append(task.task_id)
            else:
                sla.on_track += 1
        if case.closed_at is not None:
            cycle[kind].append((case.closed_at - case.started_at).total_seconds())
        if case.audit is None:
            unreadable.append(case.case_id)
        else:
            is_decided, is_automatic = _is_decided(case)
            decided[kind] += is_decided
            automatic[kind] += is_automatic
            decisions, case_overrides = _overrides(case)
            with_recommendation[kind] += decisions
            overridden[kind] += len(case_overrides)
            overrides += case_overrides
            case_spend = Spend(cases=1)
            for event in case.audit:
                if (
                    event.kind is AuditKind.AGENT_PROPOSAL
                    and (confidence := _proposal_confidence(event)) is not None
                ):
                    confidences[kind].append(confidence)
                if usage := _model_usage(event):
                    case_spend.add(usage)
                if event.kind is AuditKind.COMPENSATION:
                    compensations.append(
                        Compensation(
                            case_id=case.case_id,
                            case_type=kind,
                            step=str(event.data.get("step", event.summary)),
                            ok=bool(
                                event.data.get(
                                    "ok", not event.summary.startswith("compensation FAILED")
                                )
                            ),
                        )
                    )
            spend_by_case[case.case_id] = case_spend.finish()
            process_spend = spend_by_process[kind]
            process_spend.cases += 1
            spend_total.cases += 1
            for spend in (process_spend, spend_total):
                spend.add(
                    ModelUsage(
                        agent="",
                        model_calls=case_spend.model_calls,
                        prompt_tokens=case_spend.prompt_tokens,
                        completion_tokens=case_spend.completion_tokens,
                        cost_usd=case_spend.cost_usd,
                    )
                )
        reason = _failure_reason(case)
        if reason is not None:
            failures.append(
                Failure(case_id=case.case_id, case_type=kind, status=case.status, reason=reason)
            )

    all_confidences = [c for values in confidences.values() for c in values]
    buckets = [0] * CONFIDENCE_BUCKETS
    for value in all_confidences:
        buckets[min(int(value * CONFIDENCE_BUCKETS), CONFIDENCE_BUCKETS - 1)] += 1
    all_cycles = [seconds for values in cycle.values() for seconds in values]
    processes = sorted(by_process)
    return Report(
        generated_at=now,
        cases=sum(by_process.values()),
        runs=sum(case.runs for case in cases),
        cases_by_ending=dict(endings),
        cases_by_process=dict(sorted(by_process.items())),
        cases_by_process_and_status={
            kind: dict(sorted(by_status[kind].items())) for kind in processes
        },
        backlog_by_role=dict(sorted(backlog.items())),
        questions_by_role=dict(sorted(questions.items())),
        sla=sla,
        auto_approval=_rate(sum(automatic.values()), sum(decided.values())),
        auto_approval_by_process={k: _rate(automatic[k], decided[k]) for k in processes},
        override=_rate(sum(overridden.values()), sum(with_recommendation.values())),
        override_by_process={k: _rate(overridden[k], with_recommendation[k]) for k in processes},
        overrides=overrides,
        confidence=ConfidenceSummary(
            count=len(all_confidences),
            mean=round(statistics.fmean(all_confidences), 4) if all_confidences else None,
            median=round(statistics.median(all_confidences), 4) if all_confidences else None,
            buckets=buckets,
            by_process={k: confidences[k] for k in processes if confidences[k]},
        ),
        model_usage=spend_total.finish(),
        model_usage_by_process={
            k: spend_by_process[k].finish() for k in processes if k in spend_by_process
        },
        model_usage_by_case=spend_by_case,
        compensations=compensations,
        compensations_by_process=dict(Counter(c.case_type for c in compensations)),
        failures=failures,
        failure_reasons=dict(Counter(_reason_key(f.reason) for f in failures)),
        cycle_time=_cycle(all_cycles),
        cycle_time_by_process={k: _cycle(cycle[k]) for k in processes if cycle[k]},
        unreadable_audit=unreadable,
        flow=flow(cases),
    )


# -- where cases stall --------------------------------------------------------------------------

TASK_CLOSINGS = {AuditKind.HUMAN_DECISION, AuditKind.HUMAN_ANSWER, AuditKind.TASK_TIMED_OUT}
TASK_MET = {AuditKind.HUMAN_DECISION, AuditKind.HUMAN_ANSWER}


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, Excel's PERCENTILE.INC)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def durations(seconds: list[float]) -> Durations:
    if not seconds:
        return Durations(count=0, median_seconds=None, p90_seconds=None)
    return Durations(
        count=len(seconds),
        median_seconds=round(statistics.median(seconds), 3),
        p90_seconds=round(percentile(seconds, 0.9), 3),
    )


def _task_label(opened: AuditEvent) -> str:
    return f"{opened.data.get('task_kind') or TaskKind.APPROVAL.value} ({opened.data.get('role')})"


def _due(opened: AuditEvent) -> datetime | None:
    due = opened.data.get("due_at")
    if isinstance(due, datetime):
        return due
    try:
        return datetime.fromisoformat(str(due)) if due else None
    except ValueError:
        return None


def flow(cases: Iterable[CaseRecord]) -> Flow:
    """Step and task times, SLA attainment, throughput and process maps, from the audit trails
    (and, for throughput, the closing time) of ``cases``."""
    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    tasks: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    sla_met: Counter[str] = Counter()
    sla_closed: Counter[str] = Counter()
    closed_per_day: dict[str, Counter[str]] = defaultdict(Counter)
    activities: dict[str, Counter[str]] = defaultdict(Counter)
    starts: dict[str, Counter[str]] = defaultdict(Counter)
    ends: dict[str, Counter[str]] = defaultdict(Counter)
    waits: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    mapped: Counter[str] = Counter()

    for case in cases:
        kind = case.case_type
        if case.closed_at is not None:
            closed_per_day[kind][case.closed_at.astimezone(UTC).date().isoformat()] += 1
        if not case.audit:
            continue
        trail = sorted(case.audit, key=lambda event: event.seq)
        mapped[kind] += 1
        starts[kind][trail[0].kind.value] += 1
        if case.closed_at is not None:
            ends[kind][trail[-1].kind.value] += 1
        for event in trail:
            activities[kind][event.kind.value] += 1
        for before, after in pairwise(trail):
            seconds = (after.at - before.at).total_seconds()
            steps[kind][before.kind.value].append(seconds)
            waits[kind][(before.kind.value, after.kind.value)].append(seconds)
        opened: dict[str, AuditEvent] = {}
        for event in trail:
            task_id = event.data.get("task_id")
            if not isinstance(task_id, str):
                continue
            if event.kind is AuditKind.TASK_OPENED:
                opened[task_id] = event
            elif event.kind in TASK_CLOSINGS and task_id in opened:
                start = opened.pop(task_id)
                tasks[kind][_task_label(start)].append((event.at - start.at).total_seconds())
                sla_closed[kind] += 1
                due = _due(start)
                sla_met[kind] += event.kind in TASK_MET and due is not None and event.at <= due

    processes = sorted(set(mapped) | set(closed_per_day))
    all_days: Counter[str] = Counter()
    for per_day in closed_per_day.values():
        all_days.update(per_day)
    return Flow(
        step_times={
            k: {step: durations(v) for step, v in sorted(steps[k].items())}
            for k in processes
            if steps[k]
        },
        task_times={
            k: {task: durations(v) for task, v in sorted(tasks[k].items())}
            for k in processes
            if tasks[k]
        },
        sla_attainment=_rate(sum(sla_met.values()), sum(sla_closed.values())),
        sla_attainment_by_process={
            k: _rate(sla_met[k], sla_closed[k]) for k in processes if sla_closed[k]
        },
        throughput_per_day=dict(sorted(all_days.items())),
        throughput_per_day_by_process={
            k: dict(sorted(closed_per_day[k].items())) for k in processes if closed_per_day[k]
        },
        process_maps={
            k: ProcessMap(
                cases=mapped[k],
                activities=dict(activities[k].most_common()),
                starts=dict(starts[k].most_common()),
                ends=dict(ends[k].most_common()),
                edges=[
                    MapEdge(
                        source=source,
                        target=target,
                        count=len(seconds),
                        median_wait_seconds=round(statistics.median(seconds), 3),
                    )
                    for (source, target), seconds in sorted(
                        waits[k].items(), key=lambda item: (-len(item[1]), item[0])
                    )
                ],
            )
            for k in processes
            if mapped[k]
        },
    )


def _cycle(seconds: list[float]) -> CycleTime:
    return CycleTime(
        count=len(seconds),
        median_seconds=round(statistics.median(seconds), 3) if seconds else None,
    )


# -- reading the cases from Temporal ------------------------------------------------------------


async def collect(
    client: Client,
    concurrency: int = 8,
    query: str = CASES_QUERY,
    on_read: Callable[[int, int], None] | None = None,
) -> list[CaseRecord]:
    """Every case in the namespace (workflows with a ``CaseType`` that count as cases; ``query``
    narrows them), with its open tasks and audit trail. Closed cases answer the ``audit`` query by
    replaying on a worker. ``on_read(done, total)`` is called as each case is read, for
    progress on long reads.

    A case is a workflow ID, the business key: when it has several runs, the case is its latest
    (what ``casework show`` shows) and the others are counted as its runs."""
    latest: dict[str, Any] = {}
    runs: Counter[str] = Counter()
    # A child counts when it is a case of its own; helper workflows (agent regions) are their
    # parent case's to report.
    case_types = discover().case_workflow_types
    async for execution in client.list_workflows(query):
        if execution.parent_id and execution.workflow_type not in case_types:
            continue
        runs[execution.id] += 1
        known = latest.get(execution.id)
        if known is None or execution.start_time > known.start_time:
            latest[execution.id] = execution
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def read(execution: Any) -> CaseRecord:
        nonlocal done
        async with limit:
            record = await _read_case(client, execution)
        record.runs = runs[execution.id]
        done += 1
        if on_read is not None:
            on_read(done, len(latest))
        return record

    return list(await asyncio.gather(*(read(execution) for execution in latest.values())))


async def _read_case(client: Client, execution: Any) -> CaseRecord:
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    status = execution.status or WorkflowExecutionStatus.RUNNING
    record = CaseRecord(
        case_id=execution.id,
        case_type=execution.typed_search_attributes.get(sa.CASE_TYPE) or "",
        case_status=execution.typed_search_attributes.get(sa.CASE_STATUS) or "",
        execution_status=execution_word(status),
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )
    try:
        record.audit = await handle.query(
            "audit", result_type=list[AuditEvent], rpc_timeout=QUERY_TIMEOUT
        )
        if status is WorkflowExecutionStatus.RUNNING:
            record.open_tasks = await handle.query(
                "open_tasks", result_type=list[HumanTask], rpc_timeout=QUERY_TIMEOUT
            )
    except UNREADABLE_ERRORS:
        record.audit = None
    if status is WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as error:
            record.failure = failure_text(error, with_type=True)
        except UNREADABLE_ERRORS as error:
            record.failure = f"(unreadable: {error})"
    return record


async def build(client: Client) -> Report:
    return compute(await collect(client))


# -- as text ------------------------------------------------------------------------------------


def _percent(rate: Rate) -> str:
    return "-" if rate.rate is None else f"{rate.rate:.0%} ({rate.count} of {rate.of})"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def render_text(report: Report) -> str:
    runs = f" ({report.runs} workflow runs)" if report.runs != report.cases else ""
    lines = [
        f"casework report, {report.generated_at:%Y-%m-%d %H:%M} UTC: {report.cases} cases{runs}",
        "by how they stand: "
        + ", ".join(f"{word.replace('_', ' ')} {n}" for word, n in report.cases_by_ending.items()),
        "",
    ]
    rows = [
        [kind, str(count), status]
        for kind, statuses in report.cases_by_process_and_status.items()
        for status, count in statuses.items()
    ]
    lines += [table(["process", "cases", "status"], rows), ""]
    lines.append(
        "approval backlog: "
        + (", ".join(f"{r} {n}" for r, n in report.backlog_by_role.items()) or "none")
    )
    lines.append(
        f"SLA: {report.sla.on_track} on track, {report.sla.at_risk} at risk (80% of the SLA "
        f"passed), {report.sla.breached} breached"
    )
    lines.append(f"auto-approval rate: {_percent(report.auto_approval)}")
    lines.append(f"override rate: {_percent(report.override)}")
    conf = report.confidence
    lines.append(
        f"agent confidence: {conf.count} proposals, median "
        + ("-" if conf.median is None else f"{conf.median:.2f}")
        + ", by tenth: "
        + " ".join(str(n) for n in conf.buckets)
    )
    lines.append(
        f"median cycle time: {_duration(report.cycle_time.median_seconds)} over "
        f"{report.cycle_time.count} closed cases"
    )
    flow = report.flow
    lines.append(f"SLA attainment of closed human tasks: {_percent(flow.sla_attainment)}")
    days = list(flow.throughput_per_day.items())[-THROUGHPUT_DAYS_SHOWN:]
    lines.append(
        "cases closed per day: " + (", ".join(f"{day} {n}" for day, n in days) or "none yet")
    )
    stalls = [
        [
            kind,
            step,
            str(times.count),
            _duration(times.median_seconds),
            _duration(times.p90_seconds),
        ]
        for kind, steps in flow.step_times.items()
        for step, times in sorted(steps.items(), key=lambda item: -(item[1].p90_seconds or 0.0))[
            :SLOWEST_STEPS_SHOWN
        ]
    ]
    if stalls:
        lines += [
            "",
            f"where cases stall (each process's {SLOWEST_STEPS_SHOWN} slowest steps by p90; time "
            "from an entry to the next):",
            table(["process", "step", "times", "median", "p90"], stalls),
        ]
    tasks = [
        [
            kind,
            task,
            str(times.count),
            _duration(times.median_seconds),
            _duration(times.p90_seconds),
        ]
        for kind, by_task in flow.task_times.items()
        for task, times in by_task.items()
    ]
    if tasks:
        lines += [
            "",
            "human tasks (opened to decided, answered or timed out):",
            table(["process", "task", "closed", "median", "p90"], tasks),
        ]
    if flow.process_maps:
        lines += [
            "",
            "process maps (directly-follows graphs): casework report --json (flow.process_maps) "
            "or the review queue's report page",
        ]
    lines.append("")
    rows = [
        [
            kind,
            str(spend.cases),
            str(spend.model_calls),
            str(spend.tokens),
            f"{spend.cost_usd:.4f}",
            f"{spend.model_calls_per_case or 0:.2f}",
            f"{spend.tokens_per_case or 0:.0f}",
            f"{spend.cost_usd_per_case or 0:.4f}",
        ]
        for kind, spend in [*report.model_usage_by_process.items(), ("all", report.model_usage)]
    ]
    lines += [
        table(
            [
                "process",
                "cases",
                "calls",
                "tokens",
                "cost $",
                "calls/case",
                "tokens/case",
                "$/case",
            ],
            rows,
        ),
        "",
    ]
    lines.append(f"compensations: {len(report.compensations)}")
    for item in report.compensations:
        lines.append(f"  {item.case_id}: {item.step}" + ("" if item.ok else " (FAILED)"))
    lines.append(f"failures: {len(report.failures)}")
    for failure in report.failures:
        lines.append(f"  {failure.case_id} [{failure.status}]: {failure.reason}")
    if report.unreadable_audit:
        lines.append(
            "cases that could not be read, counted by status only (is a worker running? "
            "see casework show CASE): " + ", ".join(report.unreadable_audit)
        )
    return "\n".join(lines)
