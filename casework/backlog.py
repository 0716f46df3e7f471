"""The open tasks across cases, who may decide them, and how they stand against their SLA.

Shared by ``casework inbox``, the review queue and the KPI report, so all three agree: on which
cases are open (running ones only: a terminated case's search attributes still say it waits),
on the status a closed case is shown with, and on skipping, by name, a case that cannot be read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.service import RPCError

from casework import search_attributes as sa
from casework.case import CaseStatus
from casework.case.tasks import HumanTask
from casework.codec import CodecKeyError
from casework.governance.models import Directory

AT_RISK_SHARE = 0.8
"""A task is at risk once this share of its SLA has passed without a decision."""

RUNNING_QUERY = "ExecutionStatus = 'Running'"
"""Search attributes keep what a case last set: a case terminated, failed or timed out while it
waited still says ``awaiting_approval``. Only Temporal's own status says it ended."""

WAITING_QUERY = (
    f"{RUNNING_QUERY} AND {sa.CASE_STATUS.name} IN ('{CaseStatus.AWAITING_APPROVAL.value}', "
    f"'{CaseStatus.AWAITING_INPUT.value}')"
)

QUERY_TIMEOUT = timedelta(seconds=10)
"""How long a list waits for one case to answer a query before naming it unreadable."""

READ_CONCURRENCY = 8

IN_PROGRESS = frozenset(
    {
        CaseStatus.STARTED,
        CaseStatus.ANALYSING,
        CaseStatus.AWAITING_APPROVAL,
        CaseStatus.AWAITING_INPUT,
        CaseStatus.EXECUTING,
        CaseStatus.AWAITING_EXTERNAL,
    }
)
"""Case statuses that mean "not finished": a closed case showing one of them did not end by
itself (terminated, failed, cancelled or timed out), and is shown as such."""

ENDINGS: dict[WorkflowExecutionStatus, str] = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
}
"""Temporal's execution status in the words casework shows: how a case's workflow stands."""

UNREADABLE_ERRORS = (RPCError, WorkflowQueryFailedError, CodecKeyError, RuntimeError)
"""What reading one case can fail with: its workflow task failing (the query cannot replay it),
no worker answering, a payload it cannot convert, or one under a key this client's ring lacks
(CodecKeyError). A client with no key ring at all cannot read any case: that is not one case's
problem, and the CLI says so once."""


def execution_word(status: WorkflowExecutionStatus | None) -> str:
    if status is None:
        return "running"
    return ENDINGS.get(status, status.name.lower())


def shown_status(case_status: str | None, execution: str) -> str:
    """The status people are shown for a case: its own, unless its workflow ended without the
    case reaching an outcome (terminated while waiting, failed at start, cancelled, timed out),
    which then says so: ``workflow_terminated``, ``workflow_failed`` ... ``execution`` is
    :func:`execution_word` of Temporal's status."""
    if execution in ("running", "completed") or (case_status and case_status not in IN_PROGRESS):
        return case_status or execution
    return f"workflow_{execution}"


_WRAPPERS = (WorkflowFailureError, WorkflowUpdateFailedError, ActivityError, ChildWorkflowError)


def failure_text(error: BaseException, with_type: bool = False) -> str:
    """Why a workflow, update, activity or child failed, without Temporal's wrappers around it:
    the first error below them (the case's own InvalidInput rather than the pydantic error it
    was raised from; the termination reason). ``with_type`` prefixes an ApplicationError's type.
    """
    while isinstance(error, _WRAPPERS) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, ApplicationError):
        return f"{error.type}: {error.message}" if with_type and error.type else error.message
    return getattr(error, "message", "") or str(error) or type(error).__name__


def unreadable_reason(error: BaseException) -> str:
    """Why a case could not be read, in one line."""
    message = getattr(error, "message", "") or str(error) or type(error).__name__
    return message.splitlines()[0].rstrip(".")


class SlaState(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"


def sla_state(task: HumanTask, now: datetime) -> SlaState:
    if now > task.due_at:
        return SlaState.BREACHED
    if now >= task.opened_at + (task.due_at - task.opened_at) * AT_RISK_SHARE:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


@dataclass(frozen=True)
class OpenTask:
    case_type: str
    task: HumanTask


@dataclass
class Backlog:
    tasks: list[OpenTask] = field(default_factory=list)
    """Soonest due first."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Waiting cases that could not be read, left out, with why: case ID -> reason."""
    unreadable_roles: dict[str, str | None] = field(default_factory=dict)
    """The role each unreadable case last said it waits for (its ApproverRole): who may be
    told about it, when its trail cannot say who takes part (``casework.visibility``)."""


async def open_tasks(client: Client) -> Backlog:
    """Every open task of every waiting case, soonest due first.

    Visibility finds the waiting cases; each is asked for its open tasks, since the ApproverRole
    search attribute holds one role and a case may hold several tasks (parallel reviews). A case
    that cannot answer is named in ``unreadable`` and left out, so it never hides the others."""
    backlog = Backlog()
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(
        case_id: str, run_id: str | None, case_type: str | None, role: str | None
    ) -> None:
        handle = client.get_workflow_handle(case_id, run_id=run_id)
        async with limit:
            try:
                tasks = await handle.query(
                    "open_tasks", result_type=list[HumanTask], rpc_timeout=QUERY_TIMEOUT
                )
            except UNREADABLE_ERRORS as error:
                backlog.unreadable[case_id] = unreadable_reason(error)
                backlog.unreadable_roles[case_id] = role
                return
        backlog.tasks.extend(OpenTask(case_type or "", task) for task in tasks)

    reads: list[Awaitable[None]] = [
        read(
            execution.id,
            execution.run_id,
            execution.typed_search_attributes.get(sa.CASE_TYPE),
            execution.typed_search_attributes.get(sa.APPROVER_ROLE),
        )
        async for execution in client.list_workflows(WAITING_QUERY)
    ]
    await asyncio.gather(*reads)
    backlog.tasks.sort(key=lambda item: item.task.due_at)
    return backlog


def known_roles(directory: Directory) -> set[str]:
    return set(directory.roles) | {user.role for user in directory.users.values()}


def for_role(role: str, tasks: list[OpenTask]) -> list[OpenTask]:
    """The tasks people holding ``role`` may act on: it is among the task's eligible roles (the
    assigned role and those above it), not only the role the task is assigned to."""
    return [item for item in tasks if role in item.task.eligible_roles]


def may_decide(directory: Directory, user_id: str, task: HumanTask) -> bool:
    """Whether ``user_id`` may act on ``task`` at all: holds an eligible role, and is not the
    case's submitter unless the policy allows. Approval limits are the case's to judge: a person
    over their limit may still reject, and the case says so if they try to approve."""
    user = directory.users.get(user_id)
    if user is None or user.role not in task.eligible_roles:
        return False
    return user_id != task.requested_by or task.submitter_may_decide
