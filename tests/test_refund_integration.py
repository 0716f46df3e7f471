"""The refund process with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP, ``llm.propose`` through
litellm), the FastAPI+SQLite sandbox and a scripted OpenAI-compatible model, all on loopback.
Each test checks what the case did to the systems of record: the refund ledger in the payments
system, the CRM's refund notes, the notification outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditEvent, AuditKind
from casework.case.tasks import HumanTask
from casework.testing.scripted_llm import SCRIPTED_MODEL, case_data, scripted_llm_server
from casework.testing.signing import casework_sign, decide
from casework.testing.temporal import BIN, eventually, scripted_worker
from tests.refund_support import RefundSystems, ScriptedRefundAnalyst
from workflows.refund import Outcome, RefundInput, RefundResult, RefundWorkflow

RefundHandle = WorkflowHandle[RefundWorkflow, RefundResult]


# -- the stack, once per module -----------------------------------------------------------------


@pytest.fixture(scope="module")
def analyst() -> Iterator[ScriptedRefundAnalyst]:
    with scripted_llm_server() as server:
        yield ScriptedRefundAnalyst(server)


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, analyst: ScriptedRefundAnalyst
) -> AsyncIterator[str]:
    async with scripted_worker(temporal.client, sandbox_url, analyst.server, "refund") as queue:
        yield queue


@pytest.fixture
async def systems(sandbox_url: str) -> AsyncIterator[RefundSystems]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        client = RefundSystems(http)
        yield client
        # A test that fails before its fault is used up must not fault the next test's case.
        await client.clear_faults()


# -- helpers ------------------------------------------------------------------------------------


def new_order_id(label: str) -> str:
    return f"ORD-IT-{label}-{uuid.uuid4().hex[:8]}"


async def start_case(
    temporal: WorkflowEnvironment, task_queue: str, order_id: str, amount: str
) -> RefundHandle:
    return await temporal.client.start_workflow(
        RefundWorkflow.run,
        RefundInput(order_id=order_id, amount=Decimal(amount), reason="The mug arrived broken."),
        id=RefundWorkflow.case_id(order_id),
        task_queue=task_queue,
    )


async def wait_for_open_task(handle: WorkflowHandle) -> HumanTask:
    async def probe() -> HumanTask | None:
        return await handle.query("open_task", result_type=HumanTask | None)

    return await eventually(probe, what=f"{handle.id} to open an approval task")


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


async def temporal_cli(temporal: WorkflowEnvironment, *args: str) -> str:
    """Run the plain Temporal CLI against the dev server, as an operator would."""
    command = [
        str(BIN / "temporal"),
        *args,
        "--address",
        temporal.client.service_client.config.target_host,
        "--namespace",
        temporal.client.namespace,
        "--disable-config-file",
        "--disable-config-env",
    ]
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEMPORAL_")}
    # In a thread: the worker serving the case runs on this event loop and must keep running.
    completed = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=30, env=env
    )
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout}{completed.stderr}"
    return completed.stdout


async def activity_attempts(handle: WorkflowHandle, activity_type: str) -> list[tuple[int, str]]:
    """For each activity of this type: the attempt last started, and the failure before it."""
    history = await handle.fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }
    return [
        (attributes.attempt, attributes.last_failure.message)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and (attributes := event.activity_task_started_event_attributes).scheduled_event_id
        in scheduled
    ]


# -- the tests ----------------------------------------------------------------------------------


async def test_small_refund_is_issued_once_noted_in_the_crm_and_told_to_the_customer(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: RefundSystems,
    analyst: ScriptedRefundAnalyst,
) -> None:
    order_id = new_order_id("A")
    customer_id = await systems.seed(order_id, total="30.00")
    analyst.recommend(order_id, "approve", 0.93)

    handle = await start_case(temporal, task_queue, order_id, "30.00")
    result = await handle.result()

    assert result.outcome is Outcome.AUTO_REFUNDED
    (refund,) = await systems.refunds(order_id)
    assert (refund.refund_id, refund.amount, refund.status) == (
        result.refund_id,
        Decimal("30.00"),
        "issued",
    )
    assert refund.idempotency_key == f"{handle.id}:refund"
    (note,) = await systems.refund_notes(customer_id)
    assert (note.refund_id, note.amount) == (refund.refund_id, Decimal("30.00"))
    told = await systems.notifications(to=f"{customer_id.lower()}@example.com", case_id=handle.id)
    assert [n.subject for n in told] == [f"Your refund for order {order_id}"]
    # The model read the customer's words as data, through litellm's real HTTP path.
    (request,) = analyst.requests_for(order_id)
    sent = case_data(request)
    assert sent is not None and sent["request"]["reason"] == "The mug arrived broken."
    (proposal,) = [e for e in await audit(handle) if e.kind is AuditKind.AGENT_PROPOSAL]
    assert proposal.data["usage"]["prompt_tokens"] == 250
    assert SCRIPTED_MODEL in proposal.summary


async def test_support_lead_finds_the_request_in_the_backlog_and_approves_it(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: RefundSystems,
    analyst: ScriptedRefundAnalyst,
) -> None:
    order_id = new_order_id("B")
    await systems.seed(order_id, total="240.00")
    analyst.recommend(order_id, "approve", 0.9)

    handle = await start_case(temporal, task_queue, order_id, "240.00")
    task = await wait_for_open_task(handle)
    backlog = (
        f"WorkflowId = '{handle.id}' AND CaseType = 'refund' AND CaseStatus = 'awaiting_approval' "
        "AND ApproverRole = 'support_lead'"
    )

    async def listed() -> str | None:
        async for execution in temporal.client.list_workflows(backlog):
            return execution.id
        return None  # visibility is eventually consistent: not indexed yet

    assert await eventually(listed, what="the case in the support_lead backlog") == handle.id
    receipt = await decide(
        handle, approver="judy", action="approve", comment="photo shows the damage"
    )
    result = await handle.result()

    assert (task.role, receipt.task_id) == ("support_lead", task.task_id)
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "judy")
    (refund,) = await systems.refunds(order_id)
    assert (refund.amount, refund.status) == (Decimal("240.00"), "issued")
    asked = await systems.notifications(to="judy@example.com", case_id=handle.id)
    assert [n.subject for n in asked] == [f"Approval needed: {task.title}"]


async def test_fraud_investigator_clears_a_flagged_refund_with_the_plain_temporal_cli(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: RefundSystems,
    analyst: ScriptedRefundAnalyst,
) -> None:
    order_id = new_order_id("C")
    await systems.seed(order_id, total="20.00", fraud=True)
    analyst.recommend(order_id, "investigate", 0.8)
    workflow_id = RefundWorkflow.case_id(order_id)

    await temporal_cli(
        temporal,
        "workflow",
        "start",
        "--task-queue",
        task_queue,
        "--type",
        "Refund",
        "--workflow-id",
        workflow_id,
        "--input",
        json.dumps({"order_id": order_id, "amount": "20.00", "reason": "never arrived"}),
    )
    handle = temporal.client.get_workflow_handle_for(RefundWorkflow.run, workflow_id)
    task = await wait_for_open_task(handle)
    assert task.role == "fraud_investigator"
    assert "card_mismatch" in task.summary
    await temporal_cli(
        temporal,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        "decide",
        "--input",
        await casework_sign(workflow_id, "kate", "approve", "--comment", "travelling abroad"),
    )
    result = await handle.result()

    assert (result.outcome, result.decided_by) == (Outcome.FRAUD_CLEARED, "kate")
    (refund,) = await systems.refunds(order_id)
    assert (refund.amount, refund.status) == (Decimal("20.00"), "issued")


async def test_crm_refusing_the_note_for_good_reverses_the_refund_in_the_ledger(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: RefundSystems,
    analyst: ScriptedRefundAnalyst,
) -> None:
    order_id = new_order_id("D")
    customer_id = await systems.seed(order_id, total="30.00")
    analyst.recommend(order_id, "approve", 0.95)
    # Every attempt the retry policy allows is refused (the CRM is down, then gives up).
    await systems.inject_fault(
        method="POST", path=f"/crm/customers/{customer_id}/refund-notes", count=4, status=503
    )

    handle = await start_case(temporal, task_queue, order_id, "30.00")
    result = await handle.result()

    assert (result.outcome, result.status) == (Outcome.FAILED_COMPENSATED, "failed_compensated")
    (refund,) = await systems.refunds(order_id)
    assert refund.status == "reversed"
    assert refund.reversed_at is not None
    assert result.compensated == [f"refund {refund.refund_id} of 30.00 EUR reversed"]
    assert result.compensation_failed == []
    assert "503" in result.message and "compensated: refund" in result.message
    assert await systems.refund_notes(customer_id) == []
    assert [attempt for attempt, _ in await activity_attempts(handle, "crm.add_refund_note")] == [4]


async def test_lost_refund_response_is_retried_and_refunds_exactly_once(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: RefundSystems,
    analyst: ScriptedRefundAnalyst,
) -> None:
    order_id = new_order_id("E")
    await systems.seed(order_id, total="30.00")
    analyst.recommend(order_id, "approve", 0.95)
    # The payments system issues the refund, then answers 503 as if the response was lost.
    await systems.inject_fault(
        method="POST", path="/payments/refunds", count=1, status=503, when="after"
    )

    handle = await start_case(temporal, task_queue, order_id, "30.00")
    result = await handle.result()

    assert result.outcome is Outcome.AUTO_REFUNDED
    (refund,) = await systems.refunds(order_id)
    assert (refund.refund_id, refund.status) == (result.refund_id, "issued")
    # The history proves the retry happened, and the idempotency key made it a replay.
    ((attempt, last_failure),) = await activity_attempts(handle, "payments.issue_refund")
    assert attempt >= 2
    assert "503" in last_failure and "(the request was processed)" in last_failure


async def test_two_cases_on_one_order_never_refund_more_than_was_paid(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: RefundSystems,
    analyst: ScriptedRefundAnalyst,
) -> None:
    """Issue 21, Why 6: two refund requests of 600.00 on a 1,000.00 order (the second started
    with its own ID, as the docs suggest), both approved, refunded 1,200.00."""
    order_id = new_order_id("TWICE")
    await systems.seed(order_id, total="1000.00")
    analyst.recommend(order_id, "approve", 0.9)
    first = await start_case(temporal, task_queue, order_id, "600.00")
    second: RefundHandle = await temporal.client.start_workflow(
        RefundWorkflow.run,
        RefundInput(order_id=order_id, amount=Decimal("600.00"), reason="The sofa is scratched."),
        id=f"{RefundWorkflow.case_id(order_id)}-2",
        task_queue=task_queue,
    )
    await asyncio.gather(wait_for_open_task(first), wait_for_open_task(second))
    # Both approved at once: whichever pays second is refused what would over-refund.
    await asyncio.gather(
        decide(first, approver="carol", action="approve", comment="damaged"),
        decide(second, approver="carol", action="approve", comment="damaged"),
    )
    results = await asyncio.gather(first.result(), second.result())

    refunds = [r for r in await systems.refunds(order_id) if r.status == "issued"]
    assert [r.amount for r in refunds] == [Decimal("600.00")]
    (paid,) = [result for result in results if result.outcome is Outcome.APPROVED]
    (refused,) = [result for result in results if result.outcome is not Outcome.APPROVED]
    assert paid.refund_id == refunds[0].refund_id
    # Refused by its own re-check, or (approved at the same moment) by the payments system.
    assert refused.outcome in (Outcome.NOT_REFUNDABLE_ANY_MORE, Outcome.REFUND_REFUSED)
    assert refused.refund_id is None
    assert "refund" in refused.message and "600.00" in refused.message
    told = await systems.notifications(to="carol@example.com", case_id=refused.case_id)
    assert told[-1].subject == f"Refund on {order_id} not made"
