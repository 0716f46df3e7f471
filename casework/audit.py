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
- ``task_kind`` (``approval`` / ``question``) on ``task_opened``.
- ``step`` and ``ok`` on ``compensation``: what was undone, and whether undoing it worked.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class AuditKind(StrEnum):
    CASE_STARTED = "case_started"
    POLICY_LOADED = "policy_loaded"
    CONTEXT_RETRIEVED = "context_retrieved"
    AGENT_PROPOSAL = "agent_proposal"
    AGENT_FAILED = "agent_failed"
    POLICY_DECISION = "policy_decision"
    TASK_OPENED = "task_opened"
    TASK_ESCALATED = "task_escalated"
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
    COMPENSATION = "compensation"
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
