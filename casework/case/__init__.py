"""The case base: declarations, audit, status, queries, human tasks, agents, endings and saga.

Process workflows import what they need from here::

    from casework.case import CaseWorkflow, ApprovalRequest, Saga
"""

from casework.case.agents import AGENT_RETRY, AGENT_TIMEOUT, usage_of_call
from casework.case.base import (
    COMPENSATION_RETRY,
    DECISION_REFUSED,
    TOOL_RETRY,
    TOOL_TIMEOUT,
    CaseResult,
    CaseState,
    CaseStatus,
    activity_name,
    at_once_or_in_turn,
    failure_message,
    refuse_update,
    wait_within,
)
from casework.case.endings import Ending, compensation_summary
from casework.case.human import AmountLimits, ApprovalOutcome, ApprovalRequest
from casework.case.patches import EDITED_AMOUNT_RULES, PROPOSALS_CHECKED, SIGNED_DECISIONS
from casework.case.saga import CompensationReport, Saga
from casework.case.workflow import CaseWorkflow

__all__ = [
    "AGENT_RETRY",
    "AGENT_TIMEOUT",
    "COMPENSATION_RETRY",
    "DECISION_REFUSED",
    "EDITED_AMOUNT_RULES",
    "PROPOSALS_CHECKED",
    "SIGNED_DECISIONS",
    "TOOL_RETRY",
    "TOOL_TIMEOUT",
    "AmountLimits",
    "ApprovalOutcome",
    "ApprovalRequest",
    "CaseResult",
    "CaseState",
    "CaseStatus",
    "CaseWorkflow",
    "CompensationReport",
    "Ending",
    "Saga",
    "activity_name",
    "at_once_or_in_turn",
    "compensation_summary",
    "failure_message",
    "refuse_update",
    "usage_of_call",
    "wait_within",
]
