"""No payload can fail a workflow task: every signal of every process, sent nothing, two payloads
or garbage, is recorded and ignored, and the case still moves on afterwards.

Issue 21, Why 5: ``temporal workflow signal --name fraud_alert`` with no ``--input`` on a paid-out
loan failed every workflow task of the case for good (``TypeError: ... missing 1 required
positional argument``); ``show`` and ``audit`` failed, and a genuine fraud alert could no longer
reverse the payout. Two ``--input`` values failed the same way, and so did ``resubmit`` on a
vendor case.

One real dev server, the real worker and sandbox; the scripted model refuses every call, so each
agent fails and its case goes to a person (or waits for the outside world), which is where bad
signals arrive in practice. The signal and update names come from each workflow's definition,
so a handler added later is covered without touching this test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState, CaseStatus
from casework.case.tasks import HumanTask
from casework.catalogue import discover
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedReply, scripted_llm_server
from casework.testing.signing import decide
from casework.testing.temporal import eventually, scripted_worker
from demos.insurance_claim import SMALL, MotorClaim, seed_benchmarks, seed_claim
from demos.loan_messages import bureau_report, deliver
from reliability.drivers.base import CaseDriver, Scenario, decider_for
from reliability.drivers.customer_onboarding import LOW_RISK, CustomerOnboardingDriver
from reliability.drivers.incident_review import APPROVE, IncidentReviewDriver
from tests.integration_support import SandboxClient
from tests.lead_routing_support import CrmSales, make_ae, make_lead, software_company
from tests.loan_application_support import LendingSandbox, applicant, loan_application
from tests.refund_support import RefundSystems
from tests.triage_support import Itsm
from tests.vendor_onboarding_support import VendorSystems, new_application
from workflows.customer_onboarding import OnboardingStatus
from workflows.incident_review import ReviewStatus
from workflows.insurance_claim import ClaimStatus, InsuranceClaimInput
from workflows.invoice_exception import InvoiceExceptionInput, InvoiceStatus
from workflows.lead_routing import LeadRoutingInput, LeadStatus
from workflows.loan_application import LoanApplicationInput, LoanStatus
from workflows.refund import RefundInput, RefundStatus
from workflows.ticket_triage import TicketTriageInput, TriageStatus
from workflows.vendor_onboarding import VendorOnboardingInput, VendorStatus

GARBAGE: list[tuple[str, list[Any]]] = [
    ("no payload", []),
    ("two payloads", [{"approver": "bob", "action": "approve"}, {}]),
    ("a string", ["approve it, please"]),
    ("a list", [[1, 2]]),
    ("null", [None]),
    ("an object of nothing it knows", [{"surprise": True}]),
]


def refuse_every_call(server: ScriptedLlmServer) -> None:
    """Every agent fails at once (400 is not retried), so its case goes to a person."""
    server.responder = lambda body: ScriptedReply(
        status=400, error_body={"error": {"message": "no model in this test"}}
    )


@pytest.fixture(scope="module")
async def task_queue(temporal: WorkflowEnvironment, sandbox_url: str) -> AsyncIterator[str]:
    with scripted_llm_server() as server:
        refuse_every_call(server)
        async with scripted_worker(temporal.client, sandbox_url, server, "payloads") as queue:
            yield queue


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as client:
        yield client


@dataclass
class Case:
    """A case of one process, started where bad signals meet it, and how it moves on."""

    process: str
    handle: WorkflowHandle
    submitter: str
    moves_on: Callable[[], Awaitable[str]]
    """Does what the case waits for, properly; returns the status it reached."""


def handler_names(process: str, kind: str) -> list[str]:
    """Every named signal (or update) handler of the process's workflow, from its definition."""
    workflow_type = discover().process(process).workflow_type
    (defined,) = [
        workflow._Definition.must_from_class(w)
        for w in discover().workflows
        if workflow._Definition.must_from_class(w).name == workflow_type
    ]
    handlers = defined.signals if kind == "signal" else defined.updates
    return sorted(name for name in handlers if name)


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


def ignored(events: list[AuditEvent]) -> list[AuditEvent]:
    """What the case recorded as received and ignored."""
    return [
        e
        for e in events
        if e.kind is AuditKind.DECISION_REFUSED
        or (e.kind is AuditKind.MESSAGE_RECEIVED and e.data.get("accepted") is False)
    ]


async def waiting(handle: WorkflowHandle) -> CaseState:
    async def probe() -> CaseState | None:
        state = await handle.query("state", result_type=CaseState)
        waits = state.status in (CaseStatus.AWAITING_APPROVAL, CaseStatus.AWAITING_EXTERNAL)
        return state if waits else None

    return await eventually(probe, what=f"{handle.id} to wait", timeout=60)


async def approve_until_done(handle: WorkflowHandle, submitter: str) -> str:
    """Decide every open task as an eligible person would, until the case completes."""
    for _ in range(5):
        state = await waiting_or_done(handle)
        if state is None:
            break
        for task in state.open_tasks:
            person = decider_for(task, not_user=submitter)
            assert person is not None, f"nobody may decide {task.task_id}"
            await decide(handle, approver=person, action="approve", task_id=task.task_id)
    result: dict[str, Any] = await handle.result()
    return str(result["status"])


async def waiting_or_done(handle: WorkflowHandle) -> CaseState | None:
    """The case's state once it waits for a decision; None once it has completed."""

    async def probe() -> CaseState | bool | None:
        description = await handle.describe()
        if description.status is not None and description.status.name != "RUNNING":
            return False
        state = await handle.query("state", result_type=CaseState)
        return state if state.open_tasks else None

    found = await eventually(probe, what=f"{handle.id} to wait or finish", timeout=60)
    return found if isinstance(found, CaseState) else None


# -- one waiting case per process ---------------------------------------------------------------


async def invoice_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    invoice_id = f"INV-SIG-{uuid.uuid4().hex[:8]}"
    await SandboxClient(http).seed_invoice(invoice_id, price_variance_percent=Decimal(5))
    request = InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice")
    handle = await start(client, queue, "invoice-exception", request)
    return Case("invoice-exception", handle, "alice", lambda: approve_until_done(handle, "alice"))


async def triage_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    ticket_id = f"INC-SIG-{uuid.uuid4().hex[:8]}"
    await Itsm(http).create_ticket(ticket_id)
    request = TicketTriageInput(ticket_id=ticket_id, submitted_by="erin")
    handle = await start(client, queue, "ticket-triage", request)
    return Case("ticket-triage", handle, "erin", lambda: approve_until_done(handle, "erin"))


async def refund_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    order_id = f"ORD-SIG-{uuid.uuid4().hex[:8]}"
    await RefundSystems(http).seed(order_id, total="240.00")
    request = RefundInput(order_id=order_id, amount=Decimal("240.00"), reason="It broke.")
    handle = await start(client, queue, "refund", request)
    return Case("refund", handle, "erin", lambda: approve_until_done(handle, "erin"))


async def lead_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    lead_id = f"LEAD-SIG-{uuid.uuid4().hex[:8]}"
    crm = CrmSales(http)
    domain = f"{lead_id.lower()}.example"
    await crm.create_ae(make_ae(f"AE-{lead_id}", 0, 10))
    await crm.create_firmographics(software_company(domain))
    await crm.create_lead(make_lead(lead_id, domain=domain, email=f"anna@{domain}"))
    request = LeadRoutingInput(lead_id=lead_id, submitted_by="erin")
    handle = await start(client, queue, "lead-routing", request)
    return Case("lead-routing", handle, "erin", lambda: approve_until_done(handle, "erin"))


async def vendor_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    application = new_application("SIG")
    await VendorSystems(http).seed(application)
    request = VendorOnboardingInput(application_id=application.application_id, submitted_by="alice")
    handle = await start(client, queue, "vendor-onboarding", request)
    return Case("vendor-onboarding", handle, "alice", lambda: approve_until_done(handle, "alice"))


async def loan_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    application_id = f"APP-SIG-{uuid.uuid4().hex[:8]}"
    application = loan_application(application_id).model_copy(
        update={"applicant": applicant(application_id, full_name="Lena Ostrowski")}
    )
    lending = LendingSandbox(http)
    await lending.seed(application)
    request = LoanApplicationInput(application_id=application_id)
    handle = await start(client, queue, "loan-application", request)

    async def bureau_answers() -> str:
        asked = await lending.bureau_request(application_id)
        assert asked is not None
        await lending.answer(asked["request_id"])
        await deliver(client, await bureau_report(http, asked["request_id"]))

        async def paid_out() -> str | None:
            state = await handle.query("state", result_type=CaseState)
            return state.status if state.status == LoanStatus.DISBURSED else None

        status = await eventually(paid_out, what=f"{handle.id} to pay out", timeout=60)
        await handle.terminate("the fraud watch is not part of this test")
        return status

    return Case("loan-application", handle, "paul", bureau_answers)


async def claim_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    number = f"SIG-{uuid.uuid4().hex[:8]}"
    await seed_benchmarks(http)
    claim_id = await seed_claim(http, number, MotorClaim("collision", "Rear-ended.", SMALL))
    handle = await start(client, queue, "insurance-claim", InsuranceClaimInput(claim_id=claim_id))

    async def paid() -> str:
        # The coordinator failed (no model here): an adjuster approves, and the claim is paid.
        state = await waiting_or_done(handle)
        assert state is not None
        for task in state.open_tasks:
            person = decider_for(task, not_user="alice")
            assert person is not None, f"nobody may decide {task.task_id}"
            await decide(handle, approver=person, action="approve", task_id=task.task_id)

        async def is_paid() -> str | None:
            state = await handle.query("state", result_type=CaseState)
            return state.status if state.status == ClaimStatus.PAID else None

        status = await eventually(is_paid, what=f"{handle.id} to pay", timeout=60)
        await handle.terminate("the recovery watch is not part of this test")
        return status

    return Case("insurance-claim", handle, "alice", paid)


async def onboarding_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    # No identity reading (no model here): compliance decides, and the applicant is onboarded.
    return await driven_case(CustomerOnboardingDriver(), LOW_RISK, client, queue, http)


async def incident_case(client: Client, queue: str, http: httpx.AsyncClient) -> Case:
    # No draft (no model here): the incident manager approves the review without follow-ups.
    return await driven_case(IncidentReviewDriver(), APPROVE, client, queue, http)


async def driven_case(
    driver: CaseDriver,
    scenario: Scenario,
    client: Client,
    queue: str,
    http: httpx.AsyncClient,
) -> Case:
    """A case seeded and started as the fault suite's driver for its process does it."""
    key = driver.new_key(f"SIG{uuid.uuid4().hex[:6].upper()}", 1)
    await driver.seed(http, key, scenario)
    handle = await start(client, queue, driver.process, driver.case_input(key))
    submitter = driver.submitter
    return Case(driver.process, handle, submitter, lambda: approve_until_done(handle, submitter))


async def start(client: Client, queue: str, process: str, request: Any) -> WorkflowHandle:
    # The business key itself: messages from outside are routed by it.
    case_id = discover().process(process).case_id(request)
    workflow_type = discover().process(process).workflow_type
    return await client.start_workflow(workflow_type, request, id=case_id, task_queue=queue)


CASES = [
    invoice_case,
    triage_case,
    refund_case,
    lead_case,
    vendor_case,
    loan_case,
    claim_case,
    onboarding_case,
    incident_case,
]


def test_every_process_is_covered() -> None:
    assert len(CASES) == len(discover().processes)


@pytest.mark.parametrize("make_case", CASES, ids=lambda f: f.__name__)
async def test_no_payload_fails_a_workflow_task_and_the_case_moves_on(
    temporal: WorkflowEnvironment,
    task_queue: str,
    http: httpx.AsyncClient,
    make_case: Callable[[Client, str, httpx.AsyncClient], Awaitable[Case]],
) -> None:
    case = await make_case(temporal.client, task_queue, http)
    handle = case.handle
    await waiting(handle)
    before = len(ignored(await audit(handle)))
    signals = handler_names(case.process, "signal")
    for name in signals:
        for _, payloads in GARBAGE:
            await handle.signal(name, args=payloads)
    sent = len(signals) * len(GARBAGE)

    async def all_recorded() -> list[AuditEvent] | None:
        found = ignored(await audit(handle))[before:]
        return found if len(found) >= sent else None

    recorded = await eventually(all_recorded, what=f"{sent} ignored signals in {handle.id}")
    # Updates are refused to the sender before they reach the case.
    for name in handler_names(case.process, "update"):
        for _, payloads in GARBAGE:
            with pytest.raises((WorkflowUpdateFailedError, RPCError)):
                await handle.execute_update(name, args=payloads)
    still = await handle.query("state", result_type=CaseState)
    open_tasks: list[HumanTask] = still.open_tasks
    reached = await case.moves_on()
    history = await handle.fetch_history()

    assert len(recorded) == sent
    assert still.status in (CaseStatus.AWAITING_APPROVAL, CaseStatus.AWAITING_EXTERNAL)
    assert all(task.status.value == "open" for task in open_tasks)
    failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed == []
    assert reached not in ("", CaseStatus.FAILED_NEEDS_ATTENTION)
    assert reached in {
        InvoiceStatus.PAID,
        TriageStatus.ASSIGNED,
        RefundStatus.REFUNDED,
        LeadStatus.ROUTED,
        VendorStatus.ONBOARDED,
        LoanStatus.DISBURSED,
        ClaimStatus.PAID,
        OnboardingStatus.ONBOARDED,
        ReviewStatus.FOLLOW_UPS_CREATED,
    }
