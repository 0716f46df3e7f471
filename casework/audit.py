"""The typed audit trail every case keeps, readable by query and exportable as JSON lines."""

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
