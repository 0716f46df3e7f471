"""The invoice-exception process with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP, ``llm.propose`` through
litellm), the FastAPI+SQLite sandbox and a scripted OpenAI-compatible model, all on loopback.
Each test checks what the case did to the systems of record, not only what it returned.
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
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditEvent, AuditKind
from casework.case.tasks import HumanTask
from casework.testing.scripted_llm import (
    SCRIPTED_MODEL,
    ScriptedReply,
    case_data,
    scripted_llm_server,
)
from casework.testing.signing import casework_sign, decide
from casework.testing.temporal import BIN, eventually, scripted_worker
from tests.integration_support import SandboxClient, ScriptedAgent, proposal_json
from workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
    Outcome,
)

CaseHandle = WorkflowHandle[InvoiceExceptionWorkflow, InvoiceExceptionResult]

CONFIDENT_APPROVAL = ScriptedReply(
    content=proposal_json("approve", 0.95), prompt_tokens=321, completion_tokens=45
)


# -- the stack, once per module -----------------------------------------------------------------


@pytest.fixture(scope="module")
def agent() -> Iterator[ScriptedAgent]:
    with scripted_llm_server() as server:
        yield ScriptedAgent(server)


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, agent: ScriptedAgent
) -> AsyncIterator[str]:
    async with scripted_worker(temporal.client, sandbox_url, agent.server, "integration") as queue:
        yield queue


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxClient]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        client = SandboxClient(http)
        yield client
        # A test that fails before its fault is used up must not fault the next test's case.
        await client.clear_faults()


# -- helpers ------------------------------------------------------------------------------------


def new_invoice_id(label: str) -> str:
    return f"INV-IT-{label}-{uuid.uuid4().hex[:10]}"


async def start_case(temporal: WorkflowEnvironment, task_queue: str, invoice_id: str) -> CaseHandle:
    return await temporal.client.start_workflow(
        InvoiceExceptionWorkflow.run,
        InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice"),
        id=InvoiceExceptionWorkflow.case_id(invoice_id),
        task_queue=task_queue,
    )


async def wait_for_open_task(handle: WorkflowHandle) -> HumanTask:
    async def probe() -> HumanTask | None:
        return await handle.query("open_task", result_type=HumanTask | None)

    return await eventually(probe, what=f"{handle.id} to open an approval task")


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


def events_of(events: list[AuditEvent], kind: AuditKind) -> list[AuditEvent]:
    return [event for event in events if event.kind is kind]


async def temporal_cli(temporal: WorkflowEnvironment, *args: str) -> str:
    """Run the plain Temporal CLI against the test server, as an operator would."""
    command = [
        str(BIN / "temporal"),
        *args,
        "--address",
        temporal.client.service_client.config.target_host,
        "--namespace",
        temporal.client.namespace,
        # A developer's own profile or TEMPORAL_* variables must not redirect the CLI.
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


# -- the tests ----------------------------------------------------------------------------------


async def test_auto_approved_case_pays_once_and_marks_the_invoice_paid(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: SandboxClient, agent: ScriptedAgent
) -> None:
    invoice_id = new_invoice_id("A")
    invoice = await sandbox.seed_invoice(invoice_id)
    agent.answer(invoice_id, CONFIDENT_APPROVAL)

    handle = await start_case(temporal, task_queue, invoice_id)
    result = await handle.result()
    events = await audit(handle)

    assert result.outcome is Outcome.AUTO_APPROVED
    assert result.amount_paid == invoice.total == Decimal("3000")
    (payment,) = await sandbox.payments(invoice_id)
    assert (payment.status, payment.amount) == ("completed", invoice.total)
    assert payment.payment_id == result.payment_id
    assert (await sandbox.invoice(invoice_id)).status == "paid"
    # The model saw the invoice as data, inside <case_data>, through litellm's real HTTP path.
    (request,) = agent.requests_for(invoice_id)
    sent = case_data(request)
    assert sent is not None and sent["invoice"]["invoice_id"] == invoice_id
    (proposal,) = events_of(events, AuditKind.AGENT_PROPOSAL)
    assert SCRIPTED_MODEL in proposal.summary
    usage = proposal.data["usage"]
    assert (usage["model"], usage["prompt_tokens"], usage["completion_tokens"]) == (
        SCRIPTED_MODEL,
        321,
        45,
    )


async def test_case_needing_approval_is_found_by_visibility_and_approved_by_update(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: SandboxClient, agent: ScriptedAgent
) -> None:
    invoice_id = new_invoice_id("B")
    invoice = await sandbox.seed_invoice(invoice_id, price_variance_percent=Decimal(5))
    agent.answer(invoice_id, ScriptedReply(content=proposal_json("approve", 0.6)))

    handle = await start_case(temporal, task_queue, invoice_id)
    task = await wait_for_open_task(handle)
    assert task.role == "ap_supervisor"
    # The approval backlog is a visibility query over the case's search attributes.
    backlog = (
        f"WorkflowId = '{handle.id}' AND CaseStatus = 'awaiting_approval' "
        "AND ApproverRole = 'ap_supervisor'"
    )

    async def listed() -> str | None:
        async for execution in temporal.client.list_workflows(backlog):
            return execution.id
        return None  # visibility is eventually consistent: not indexed yet

    assert await eventually(listed, what="the case in the ap_supervisor backlog") == handle.id
    receipt = await decide(handle, approver="bob", action="approve")
    result = await handle.result()

    assert receipt.task_id == task.task_id
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "bob")
    (payment,) = await sandbox.payments(invoice_id)
    assert (payment.status, payment.amount) == ("completed", invoice.total)
    assert invoice.total == Decimal("3150")
    assert (await sandbox.invoice(invoice_id)).status == "paid"
    asked = await sandbox.notifications(to="bob@example.com", case_id=handle.id)
    assert [n.subject for n in asked] == [f"Approval needed: {task.title}"]


async def test_case_started_and_approved_with_the_plain_temporal_cli(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: SandboxClient, agent: ScriptedAgent
) -> None:
    invoice_id = new_invoice_id("C")
    invoice = await sandbox.seed_invoice(invoice_id, price_variance_percent=Decimal(5))
    agent.answer(invoice_id, ScriptedReply(content=proposal_json("approve", 0.6)))
    workflow_id = InvoiceExceptionWorkflow.case_id(invoice_id)

    await temporal_cli(
        temporal,
        "workflow",
        "start",
        "--task-queue",
        task_queue,
        "--type",
        "InvoiceException",
        "--workflow-id",
        workflow_id,
        "--input",
        json.dumps({"invoice_id": invoice_id, "submitted_by": "alice"}),
    )
    handle = temporal.client.get_workflow_handle_for(InvoiceExceptionWorkflow.run, workflow_id)
    await wait_for_open_task(handle)
    await temporal_cli(
        temporal,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        "decide",
        "--input",
        await casework_sign(workflow_id, "bob", "approve", "--comment", "ok"),
    )
    result = await handle.result()

    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "bob")
    (payment,) = await sandbox.payments(invoice_id)
    assert (payment.status, payment.amount) == ("completed", invoice.total)
    assert (await sandbox.invoice(invoice_id)).status == "paid"
    (decision,) = events_of(await audit(handle), AuditKind.HUMAN_DECISION)
    assert decision.summary == "bob chose approve: ok"


async def test_lost_payment_response_is_retried_and_pays_exactly_once(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: SandboxClient, agent: ScriptedAgent
) -> None:
    invoice_id = new_invoice_id("D")
    invoice = await sandbox.seed_invoice(invoice_id)
    agent.answer(invoice_id, CONFIDENT_APPROVAL)
    # The sandbox makes the payment, then answers 503 as if the response had been lost.
    await sandbox.inject_fault(method="POST", path="/payments", count=1, status=503, when="after")

    handle = await start_case(temporal, task_queue, invoice_id)
    result = await handle.result()

    assert result.outcome is Outcome.AUTO_APPROVED
    (payment,) = await sandbox.payments(invoice_id)
    assert (payment.status, payment.amount) == ("completed", invoice.total)
    assert payment.payment_id == result.payment_id
    # The history proves the retry happened: the payment activity completed on attempt 2+,
    # after the injected failure, and the idempotency key made that retry a replay.
    history = await handle.fetch_history()
    (scheduled,) = [
        event
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == "payments.pay"
    ]
    (started,) = [
        event.activity_task_started_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id
    ]
    assert started.attempt >= 2
    assert "503" in started.last_failure.message
    assert "(the request was processed)" in started.last_failure.message


async def test_erp_refusing_the_paid_status_reverses_the_real_payment(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: SandboxClient, agent: ScriptedAgent
) -> None:
    invoice_id = new_invoice_id("E")
    await sandbox.seed_invoice(invoice_id)
    agent.answer(invoice_id, CONFIDENT_APPROVAL)
    await sandbox.inject_fault(
        method="POST", path=f"/erp/invoices/{invoice_id}/status", count=5, status=409
    )

    handle = await start_case(temporal, task_queue, invoice_id)
    result = await handle.result()

    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert result.compensation_failed == []
    (payment,) = await sandbox.payments(invoice_id)
    assert payment.status == "reversed"
    assert result.compensated == [f"payment {payment.payment_id} of 3,000.00 EUR reversed"]
    assert (await sandbox.invoice(invoice_id)).status != "paid"


async def test_model_refusing_the_credentials_sends_the_case_to_a_person(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: SandboxClient, agent: ScriptedAgent
) -> None:
    invoice_id = new_invoice_id("F")
    await sandbox.seed_invoice(invoice_id)
    agent.answer(invoice_id, ScriptedReply(status=401))

    handle = await start_case(temporal, task_queue, invoice_id)
    task = await wait_for_open_task(handle)
    (failure,) = events_of(await audit(handle), AuditKind.AGENT_FAILED)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    assert failure.summary.startswith("invoice_analyst gave no usable proposal")
    assert "401" in failure.summary
    assert "no agent proposal" in task.summary
    # A rejected request is not retried: it would fail the same way every time.
    assert len(agent.requests_for(invoice_id)) == 1
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    assert await sandbox.payments(invoice_id) == []
    assert (await sandbox.invoice(invoice_id)).status == "exception"
