"""Several human tasks open at once on one case: each decision reaches the task it is for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

from temporalio import activity, workflow
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

# The workflow below is defined here, so the sandbox re-imports this module: pass through.
with workflow.unsafe.imports_passed_through():
    import pytest

    from casework.case import ApprovalRequest, CaseState, CaseWorkflow
    from casework.case.tasks import DecisionReceipt, HumanTask
    from casework.governance import activity as policy
    from casework.governance.models import ApprovalTier
    from casework.systems.notifications import Notification, NotificationRequest
    from casework.testing.signing import decide, signed
    from policies.invoice_exception import InvoiceExceptionPolicy


def review(title: str, role: str) -> ApprovalRequest:
    return ApprovalRequest(
        title=title,
        summary=f"{title} of vendor V-1",
        amount=Decimal(0),
        currency="EUR",
        tiers=[ApprovalTier(role=role, max_amount=None, sla=timedelta(days=2))],
        start_tier=0,
    )


@workflow.defn(name="ParallelReviews")
class ParallelReviewsWorkflow(CaseWorkflow):
    case_type = "parallel-reviews"

    @workflow.run
    async def run(self, submitted_by: str) -> list[str]:
        self._requested_by = submitted_by
        await self.load_governance(InvoiceExceptionPolicy)
        legal, finance = await asyncio.gather(
            self.request_approval(review("Legal review", "legal_counsel")),
            self.request_approval(review("Finance review", "finance_manager")),
        )
        await self.finish_handlers()
        return [
            f"{outcome.task.role}:{outcome.decision.action if outcome.decision else 'none'}"
            for outcome in (legal, finance)
        ]


@activity.defn(name="notifications.send")
async def send(request: NotificationRequest) -> Notification:
    return Notification(notification_id=f"N-{uuid.uuid4().hex[:6]}", to=request.to, subject="-")


@asynccontextmanager
async def started_case(env: WorkflowEnvironment) -> AsyncIterator[WorkflowHandle]:
    task_queue = f"test-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ParallelReviewsWorkflow],
        activities=[policy.load, send],
    ):
        handle = await env.client.start_workflow(
            "ParallelReviews", "alice", id=f"parallel-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        yield handle


async def both_open(handle: WorkflowHandle) -> list[HumanTask]:
    for _ in range(200):
        tasks = await handle.query("open_tasks", result_type=list[HumanTask])
        if len(tasks) == 2:
            return tasks
        await asyncio.sleep(0.05)
    raise AssertionError("the case never opened both reviews")


async def test_each_reviewer_decides_their_own_task_without_naming_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    async with started_case(time_skipping_env) as handle:
        legal, finance = await both_open(handle)
        state = await handle.query("state", result_type=CaseState)
        assert state.waiting_on is not None and f"--task {legal.task_id}" in state.waiting_on

        receipt = await decide(handle, approver="carol", action="reject", comment="no tax ID")
        assert receipt.task_id == finance.task_id
        remaining = await handle.query("open_tasks", result_type=list[HumanTask])
        assert [task.task_id for task in remaining] == [legal.task_id]

        await decide(handle, approver="mia", action="approve", task_id=legal.task_id)
        assert await handle.result() == ["legal_counsel:approve", "finance_manager:reject"]


async def test_a_decision_for_a_task_the_sender_may_not_decide_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    async with started_case(time_skipping_env) as handle:
        _, finance = await both_open(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, approver="mia", action="approve", task_id=finance.task_id)
        assert "mia (legal_counsel) may not decide this task" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await decide(handle, approver="mia", action="approve", task_id="no-such-task")
        assert "this case has no task no-such-task" in str(unknown.value.cause)

        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        assert await handle.result() == ["legal_counsel:approve", "finance_manager:approve"]


async def test_a_signed_decision_counts_once_and_is_not_replayed_on_another_task(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    async with started_case(time_skipping_env) as handle:
        await both_open(handle)
        approval = signed(handle.id, approver="carol", action="approve")
        await handle.execute_update("decide", approval, result_type=DecisionReceipt)
        with pytest.raises(WorkflowUpdateFailedError) as replayed:
            await handle.execute_update("decide", approval, result_type=DecisionReceipt)
        assert "already used on this case (a replay)" in str(replayed.value.cause)

        await decide(handle, approver="mia", action="approve")
        assert await handle.result() == ["legal_counsel:approve", "finance_manager:approve"]
