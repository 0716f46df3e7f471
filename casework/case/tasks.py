"""Human tasks: the durable wait for a person's decision, shared by every process.

Pure pydantic, safe in workflow code. The rules for who may decide live in
``casework.governance.rules.refusal_reasons``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from casework.amounts import size_problem

MAX_COMMENT_CHARS = 2000
"""A decision's comment travels into the audit trail, notifications, the ERP and the ticket:
a person's reason fits in 2,000 characters (the same as an invoice note). Longer is refused."""
MAX_ANSWER_CHARS = 4000
"""An answer goes back to the agent that asked, inside its conversation budget."""


class DecisionAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class TaskDecision(BaseModel):
    """A person's decision on an open task, sent as the ``decide`` update or signal.

    ``action`` is a plain string rather than the enum so that a signal with a misspelt action
    still reaches the workflow, where it is recorded as refused instead of being dropped.
    """

    approver: str
    action: str
    amount: Decimal | None = None
    """Approve with an edited amount (for example only the part that matches the PO). What the
    task allows (its currency's decimals, its bounds) the case checks; an amount no task could
    allow (``1E+400``, NaN) is refused here, so no rule ever computes with it."""
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    task_id: str | None = None
    """Optional: when given, the decision only applies to that task."""
    nonce: str | None = Field(default=None, max_length=64)
    """A one-time value the signature covers, so a signed decision is accepted once."""
    signature: str | None = Field(default=None, max_length=128)
    """The approver's Ed25519 signature (base64) over this decision for this case: see
    ``casework.signing``. A case refuses a decision without a valid one."""

    @field_validator("amount")
    @classmethod
    def _is_an_amount(cls, amount: Decimal | None) -> Decimal | None:
        if amount is not None and (problem := size_problem(amount)):
            raise ValueError(problem)
        return amount


MAX_REASON_CHARS = 2000
"""Why a task was handed on or escalated: a person's reason, like a decision's comment."""


class TaskAnswer(BaseModel):
    """A person's answer to an agent's question, sent as the ``answer`` update or signal."""

    responder: str
    text: str = Field(max_length=MAX_ANSWER_CHARS)
    task_id: str | None = None
    nonce: str | None = Field(default=None, max_length=64)
    signature: str | None = Field(default=None, max_length=128)
    """The responder's signature over this answer for this case (``casework.signing``); a
    question opened since answers are signed refuses an answer without a valid one."""


class PageAcknowledgement(BaseModel):
    """A paged person's acknowledgement, sent as a process's ``acknowledge`` update or signal."""

    responder: str
    nonce: str | None = Field(default=None, max_length=64)
    signature: str | None = Field(default=None, max_length=128)
    """The responder's signature over this acknowledgement for this case; a page sent since
    acknowledgements are signed refuses one without a valid one."""


class OpenPage(BaseModel):
    """A page waiting for its acknowledgement: who was paged, at which level."""

    level: str
    paged: list[str]


class TaskActKind(StrEnum):
    """What a person does with a task besides deciding it; each is its own update and signal."""

    REASSIGN = "reassign"
    """Hand the task to another person or role eligible for it."""
    DELEGATE = "delegate"
    """Hand a task one holds to another eligible person (while away, say), saying why."""
    ESCALATE = "escalate"
    """Move an approval to the next tier now, before its SLA passes."""


class TaskAct(BaseModel):
    """A person's reassignment, delegation or escalation of a task, signed like a decision."""

    actor: str
    reason: str = Field(default="", max_length=MAX_REASON_CHARS)
    task_id: str | None = None
    """Optional when the actor may act on only one open task of the case."""
    to_user: str | None = None
    """Reassign or delegate to this person."""
    to_role: str | None = None
    """Reassign to this role (``reassign`` only)."""
    nonce: str | None = Field(default=None, max_length=64)
    signature: str | None = Field(default=None, max_length=128)


class TaskKind(StrEnum):
    APPROVAL = "approval"
    """Decided with ``decide``: approve or reject."""
    QUESTION = "question"
    """Answered with ``answer``: free text that goes back to the agent that asked."""


class TaskStatus(StrEnum):
    OPEN = "open"
    DECIDED = "decided"
    ESCALATED = "escalated"
    TIMED_OUT = "timed_out"
    WITHDRAWN = "withdrawn"
    """Closed without a decision: the case no longer needs it (a parallel review already
    settled the outcome, or the case was cancelled)."""


class HumanTask(BaseModel):
    task_id: str
    case_id: str
    title: str
    role: str
    """The role the task is assigned to (the current approval tier)."""
    eligible_roles: list[str]
    """Roles that may decide: the assigned tier and every tier above it."""
    amount: Decimal = Decimal(0)
    """What is asked for; an edited amount may be less, never more."""
    currency: str = ""
    """Empty for a task that carries no amount (a review): an amount means nothing there."""
    min_amount: Decimal | None = None
    """The least a person may approve instead (the policy's minimum), in ``currency``."""
    max_amount: Decimal | None = None
    """The most a person may approve (the policy's maximum), in ``currency``; ``amount``
    bounds it too."""
    requested_by: str
    submitter_may_decide: bool = False
    """Whether the policy lets ``requested_by`` decide this task (segregation of duties off)."""
    opened_at: datetime
    due_at: datetime
    tier: int
    summary: str
    """The pre-filled evidence summary the approver reads."""
    evidence: dict[str, Any] = {}
    status: TaskStatus = TaskStatus.OPEN
    assignee: str | None = None
    """The person the task was reassigned or delegated to; None: anyone holding ``role``."""
    escalates_to: str | None = None
    """The next tier's role, when the policy escalates this task (``escalate`` moves it there
    now); None at the last tier, for questions, and in tasks opened before escalating now."""
    decision: TaskDecision | None = None
    kind: TaskKind = TaskKind.APPROVAL
    question: str | None = None
    answer: TaskAnswer | None = None

    @property
    def carries_amount(self) -> bool:
        return bool(self.currency)


class DecisionReceipt(BaseModel):
    task_id: str
    action: str
    approver: str
    message: str
    amount: Decimal | None = None
    """For an approval of a task that carries an amount: the amount approved."""
    currency: str = ""
