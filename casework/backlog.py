"""The open tasks across cases, who may decide them, and how they stand against their SLA.

Shared by ``casework inbox``, the review queue and the KPI report, so all three agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from temporalio.client import Client

from casework import search_attributes as sa
from casework.policies.models import Directory
from casework.tasks import HumanTask, TaskKind
from casework.workflows.case import CaseStatus

AT_RISK_SHARE = 0.8
"""A task is at risk once this share of its SLA has passed without a decision."""

WAITING_QUERY = (
    f"{sa.CASE_STATUS.name} IN ('{CaseStatus.AWAITING_APPROVAL.value}', "
    f"'{CaseStatus.AWAITING_INPUT.value}')"
)


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


async def open_tasks(client: Client) -> list[OpenTask]:
    """Every open task of every waiting case, soonest due first.

    Visibility finds the waiting cases; each is asked for its open tasks, since the ApproverRole
    search attribute holds one role and a case may hold several tasks (parallel reviews)."""
    found: list[OpenTask] = []
    async for execution in client.list_workflows(WAITING_QUERY):
        case_type = execution.typed_search_attributes.get(sa.CASE_TYPE) or ""
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        tasks = await handle.query("open_tasks", result_type=list[HumanTask])
        found.extend(OpenTask(case_type, task) for task in tasks)
    found.sort(key=lambda item: item.task.due_at)
    return found


def may_decide(directory: Directory, user_id: str, task: HumanTask) -> bool:
    """Whether ``user_id`` may act on ``task`` at all: holds an eligible role, and is not the
    case's submitter unless the policy allows. Approval limits are the case's to judge: a person
    over their limit may still reject, and the case says so if they try to approve."""
    user = directory.users.get(user_id)
    if user is None or user.role not in task.eligible_roles:
        return False
    return user_id != task.requested_by or task.submitter_may_decide


def decidable(directory: Directory, user_id: str, tasks: list[OpenTask]) -> list[OpenTask]:
    """The approval tasks ``user_id`` may decide, in the order given."""
    return [
        item
        for item in tasks
        if item.task.kind is TaskKind.APPROVAL and may_decide(directory, user_id, item.task)
    ]
