"""The typed audit trail every case keeps, readable by query and exportable as JSON lines.

Besides each event's own data, a few keys mean the same in every process, so that the KPI
report (``casework report``) and the worker's metrics read every process alike. Processes set
them through ``CaseWorkflow``'s helpers (``record_proposal``, ``record_model_usage``,
``record_compensation``) rather than by hand:

- ``model_usage`` (:class:`ModelUsage`), on any event of a case's own trail: model calls the
  case paid for, each counted exactly once. An agent region's calls are counted in its parent
  case, when the region ends.
- ``recommended_action`` (``approve`` / ``reject`` / None) and ``confidence`` (0..1 or None) on
  ``agent_proposal``: what the agent's proposal means for the human task that may follow.
  Approving the task follows the agent when it recommends ``approve``; rejecting follows it
  when it recommends ``reject``. A person who does otherwise overrides the agent.
- ``agent`` and ``unverified`` on ``proposal_checked``: whose proposal was checked, and how many
  of its values could not be verified (and so were not used).
- ``task_kind`` (``approval`` / ``question``) on ``task_opened``.
- ``step`` and ``ok`` on ``compensation``: what was undone, and whether undoing it worked.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError


class AuditKind(StrEnum):
    CASE_STARTED = "case_started"
    POLICY_LOADED = "policy_loaded"
    CONTEXT_RETRIEVED = "context_retrieved"
    AGENT_PROPOSAL = "agent_proposal"
    AGENT_FAILED = "agent_failed"
    PROPOSAL_CHECKED = "proposal_checked"
    """How each value an agent proposed was checked before a policy or a write used it
    (``casework.agents.checks``): ``agent``, ``checks`` and ``unverified`` (how many failed)."""
    POLICY_DECISION = "policy_decision"
    TASK_OPENED = "task_opened"
    TASK_ESCALATED = "task_escalated"
    TASK_REASSIGNED = "task_reassigned"
    """A person handed a task on (``act_kind``: reassign or delegate), ``by`` whom and why."""
    TASK_TIMED_OUT = "task_timed_out"
    HUMAN_DECISION = "human_decision"
    HUMAN_ANSWER = "human_answer"
    MODEL_CALL = "model_call"
    TOOL_REFUSED = "tool_refused"
    AGENT_REGION_ENDED = "agent_region_ended"
    PAGE_SENT = "page_sent"
    PAGE_ACKNOWLEDGED = "page_acknowledged"
    DECISION_REFUSED = "decision_refused"
    TOOL_CALL = "tool_call"
    TOOL_FAILED = "tool_failed"
    DELEGATION_STARTED = "delegation_started"
    """An agent region asked a specialist (a child region) for its part, or handed its task over:
    ``specialist``, ``agent``, ``region_id``, ``task``."""
    DELEGATION_ENDED = "delegation_ended"
    """What that child region ended with: ``specialist``, ``outcome``, ``region_id``, ``spend``."""
    COMPENSATION = "compensation"
    WRITE_LOOKED_UP = "write_looked_up"
    """A write that failed for good, looked up afterwards in its system by its idempotency key
    (its answers may have been lost after the system made it): ``activity``,
    ``idempotency_key``, ``found``."""
    MESSAGE_RECEIVED = "message_received"
    """A message from outside (a resubmitted document, a bureau report, a fraud alert)."""
    CASE_COMPLETED = "case_completed"


class AuditEvent(BaseModel):
    seq: int
    at: datetime
    kind: AuditKind
    summary: str
    data: dict[str, Any] = {}


MODEL_USAGE = "model_usage"
RECOMMENDED_ACTION = "recommended_action"
CONFIDENCE = "confidence"


class ModelUsage(BaseModel):
    """What one agent's model calls cost a case: the unit of the cost KPIs and metrics."""

    agent: str
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    """0 where the price is unknown (self-hosted models) or nothing was spent (the stand-in)."""
    models: list[str] = []

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# -- tamper-evident export ------------------------------------------------------------------

CHAIN_VERSION = 1


class AuditChainError(Exception):
    """An exported audit file does not verify; ``line`` is the first line found at fault."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


class ExportedEvent(BaseModel):
    """One line of ``casework audit --jsonl``: the event, chained to the line before it."""

    case_id: str
    event: AuditEvent
    prev: str
    hash: str


class ExportEnd(BaseModel):
    """The last line: how many events the export holds, so a cut-off file is detected."""

    case_id: str
    end: bool = True
    count: int
    hash: str
    """The chain head: record it elsewhere to detect a file rewritten as a whole."""


def _genesis(case_id: str) -> str:
    return hashlib.sha256(f"casework-audit-v{CHAIN_VERSION}:{case_id}".encode()).hexdigest()


def _link(prev: str, case_id: str, event: AuditEvent) -> str:
    body = json.dumps(
        {"case_id": case_id, "event": event.model_dump(mode="json"), "prev": prev},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def export_lines(case_id: str, events: list[AuditEvent]) -> list[str]:
    """The audit trail as hash-chained JSON lines: each line's hash covers the line before it,
    so editing, removing or reordering any line breaks the chain from there on."""
    lines = []
    prev = _genesis(case_id)
    for event in events:
        digest = _link(prev, case_id, event)
        lines.append(
            ExportedEvent(case_id=case_id, event=event, prev=prev, hash=digest).model_dump_json()
        )
        prev = digest
    lines.append(ExportEnd(case_id=case_id, count=len(events), hash=prev).model_dump_json())
    return lines


def verify_lines(lines: list[str]) -> ExportEnd:
    """Check an exported audit file; raises ``AuditChainError`` naming the first bad line."""
    if not lines:
        raise AuditChainError(1, "the file is empty")
    case_id: str | None = None
    prev = ""
    for number, line in enumerate(lines, start=1):
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise AuditChainError(number, f"not JSON ({error.msg})") from error
        if isinstance(raw, dict) and raw.get("end") is True:
            try:
                end = ExportEnd.model_validate(raw)
            except ValidationError as error:
                raise AuditChainError(number, f"malformed end record: {error}") from error
            if number != len(lines):
                raise AuditChainError(number + 1, "lines follow the end record")
            if case_id is None:
                case_id, prev = end.case_id, _genesis(end.case_id)
            if end.case_id != case_id or end.hash != prev:
                raise AuditChainError(number, "the end record does not match the chain")
            if end.count != number - 1:
                raise AuditChainError(
                    number, f"the end record counts {end.count} events, the file has {number - 1}"
                )
            return end
        try:
            exported = ExportedEvent.model_validate(raw)
        except ValidationError as error:
            raise AuditChainError(number, f"malformed event line: {error}") from error
        if case_id is None:
            case_id = exported.case_id
            prev = _genesis(case_id)
        if exported.case_id != case_id:
            raise AuditChainError(number, f"belongs to case {exported.case_id}, not {case_id}")
        if exported.prev != prev:
            raise AuditChainError(
                number, "does not follow the line before it (a line was removed or reordered)"
            )
        if _link(prev, case_id, exported.event) != exported.hash:
            raise AuditChainError(number, "its content does not match its hash (it was edited)")
        prev = exported.hash
    raise AuditChainError(len(lines), "no end record: the file was cut off")
