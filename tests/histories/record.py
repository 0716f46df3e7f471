"""Record the stored histories that ``tests/test_replay.py`` replays.

    .venv/bin/python -m tests.histories.record

When to (re)record: only when a change is *meant* to be incompatible with running cases, and
then together with ``workflow.patched()`` so cases already running keep replaying on the old
path; keep the old histories beside the new ones. A replay failure after any other change means
the change would break running cases: fix the code, never the histories.

Each scenario runs one representative case on the time-skipping test server, with the systems
of record faked by activity name (``tests.fake_systems``), and saves its full history as
``invoice_exception_<name>.json``. Ticket-triage scenarios fake the service desk and the model
the same way (``tests.triage_support.FakeItsm``) and save two histories each, as the agent region
is a child workflow with a history of its own: ``ticket_triage_<name>.json`` for the case and
``ticket_triage_<name>.agent.json`` for its region. Refund scenarios fake orders, CRM, fraud
signals, payments and the model (``tests.refund_support.FakeRefundSystems``) and save
``refund_<name>.json``. Loan-application scenarios fake the lending system, KYC, the bureau,
payments and the income reader (``tests.loan_application_support``) and save
``loan_application_<name>.json``. Lead-routing scenarios fake the sales CRM and the lead analyst
(``tests.lead_routing_support.FakeCrm``) and save ``lead_routing_<name>.json``.
Vendor-onboarding scenarios fake the vendor portal, ERP vendor master and document checker
(``tests.vendor_onboarding_support.FakeVendorSystems``) and save ``vendor_onboarding_<name>.json``.

Name scenarios to record only those (re-recording changes timestamps in every file):

    .venv/bin/python -m tests.histories.record severity_1_paged
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.agents.lead_routing import LeadIntent
from activities.agents.ticket_triage import stand_in_turn
from activities.crm_sales import Account
from activities.fraud import FraudAlert
from activities.itsm import ConfigurationItem, KbArticle, Ticket
from activities.kyc import SanctionsHit
from activities.payments import Refund
from activities.vendors import DocumentResubmission
from casework import search_attributes
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.region import AgentRegionWorkflow, RegionOutcome
from casework.agents.tools import FINAL_ANSWER
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseStatus
from casework.case.tasks import HumanTask, TaskDecision
from casework.converter import data_converter
from casework.testing.cases import open_task
from casework.testing.signing import install_test_keys, signed, signed_as_sent
from casework.testing.temporal import BIN, eventually
from tests.fake_systems import FakeSystems, scenario
from tests.lead_routing_support import FakeCrm, make_ae, make_lead, read
from tests.loan_application_support import (
    FakeLending,
    LoanHandle,
    credit_report,
    freelance_statement,
    loan_application,
    reaches_status,
    reading,
    waits_for,
)
from tests.refund_support import FakeRefundSystems, fraud_signal, order
from tests.triage_support import FakeItsm, keep_reading_the_ticket
from tests.vendor_onboarding_support import (
    FOREIGN_IBAN,
    FakeVendorSystems,
    application,
    audited,
    bank_confirmation_text,
    documents_for,
    open_reviews,
    reached,
    resubmission,
    tax_certificate_text,
)
from workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
    Outcome,
)
from workflows.lead_routing import LeadRoutingInput, LeadRoutingResult, LeadRoutingWorkflow
from workflows.lead_routing import Outcome as LeadOutcome
from workflows.loan_application import (
    CREDIT_REPORT,
    FRAUD_ALERT,
    LoanApplicationInput,
    LoanApplicationWorkflow,
)
from workflows.loan_application import Outcome as LoanOutcome
from workflows.refund import Outcome as RefundOutcome
from workflows.refund import RefundInput, RefundResult, RefundWorkflow
from workflows.ticket_triage import (
    Acknowledgement,
    TicketTriageInput,
    TicketTriageResult,
    TicketTriageWorkflow,
)
from workflows.vendor_onboarding import Outcome as VendorOutcome
from workflows.vendor_onboarding import (
    VendorOnboardingInput,
    VendorOnboardingResult,
    VendorOnboardingWorkflow,
)

HISTORIES = Path(__file__).parent
PREFIX = "invoice_exception_"
TRIAGE_PREFIX = "ticket_triage_"
REFUND_PREFIX = "refund_"
LOAN_PREFIX = "loan_application_"
LEAD_PREFIX = "lead_routing_"
VENDOR_PREFIX = "vendor_onboarding_"
REGION_SUFFIX = ".agent"

CaseHandle = WorkflowHandle[InvoiceExceptionWorkflow, InvoiceExceptionResult]
Drive = Callable[[WorkflowEnvironment, CaseHandle], Awaitable[None]]


def history_path(name: str) -> Path:
    return HISTORIES / f"{PREFIX}{name}.json"


def invoice_id_for(name: str) -> str:
    return f"INV-REPLAY-{name}"


def triage_history_path(name: str, *, region: bool = False) -> Path:
    return HISTORIES / f"{TRIAGE_PREFIX}{name}{REGION_SUFFIX if region else ''}.json"


def ticket_id_for(name: str) -> str:
    return f"INC-REPLAY-{name}"


def lead_history_path(name: str) -> Path:
    return HISTORIES / f"{LEAD_PREFIX}{name}.json"


def lead_id_for(name: str) -> str:
    # Lead IDs allow no underscore.
    return f"LEAD-REPLAY-{name.replace('_', '-')}"


def vendor_history_path(name: str) -> Path:
    return HISTORIES / f"{VENDOR_PREFIX}{name}.json"


def vendor_application_id_for(name: str) -> str:
    return f"APP-REPLAY-{name}"


def workflow_id_for(history: Path) -> str:
    """The workflow ID a stored history was recorded under, from its file name."""
    if history.stem.startswith(REFUND_PREFIX):
        return RefundWorkflow.case_id(refund_order_id_for(history.stem.removeprefix(REFUND_PREFIX)))
    if history.stem.startswith(LOAN_PREFIX):
        return LoanApplicationWorkflow.case_id(
            application_id_for(history.stem.removeprefix(LOAN_PREFIX))
        )
    if history.stem.startswith(LEAD_PREFIX):
        return LeadRoutingWorkflow.case_id(lead_id_for(history.stem.removeprefix(LEAD_PREFIX)))
    if history.stem.startswith(VENDOR_PREFIX):
        return VendorOnboardingWorkflow.case_id(
            vendor_application_id_for(history.stem.removeprefix(VENDOR_PREFIX))
        )
    if history.stem.startswith(TRIAGE_PREFIX):
        name = history.stem.removeprefix(TRIAGE_PREFIX)
        case_id = TicketTriageWorkflow.case_id(ticket_id_for(name.removesuffix(REGION_SUFFIX)))
        # The case names its region after itself.
        return f"{case_id}-agent" if name.endswith(REGION_SUFFIX) else case_id
    return InvoiceExceptionWorkflow.case_id(invoice_id_for(history.stem.removeprefix(PREFIX)))


@dataclass(frozen=True)
class Recording:
    name: str
    systems: Callable[[str], FakeSystems]
    """Builds the faked systems of record for the case's invoice ID."""
    drive: Drive
    """What people do while the case runs; returns once the case may run to its end."""
    outcome: Outcome


async def _open_task(handle: CaseHandle) -> HumanTask:
    async def probe() -> HumanTask | None:
        return await handle.query("open_task", result_type=HumanTask | None)

    return await eventually(probe, what=f"{handle.id} to open an approval task")


async def _decide(handle: CaseHandle, **decision: str) -> None:
    await handle.execute_update("decide", signed(handle.id, **decision))


async def _nothing(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    """Nobody acts: the case runs on its own (time skips through any SLA)."""


async def _escalate_then_approve(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    first = await _open_task(handle)
    # Past the ap_supervisor's 24h SLA: the task moves to finance_manager, where bob is no
    # longer eligible, so carol decides.
    await env.sleep(timedelta(hours=25))

    async def escalated() -> HumanTask | None:
        task = await handle.query("open_task", result_type=HumanTask | None)
        return task if task is not None and task.task_id != first.task_id else None

    task = await eventually(escalated, what="the task to escalate")
    if task.role != "finance_manager":
        raise RuntimeError(f"expected the task to escalate to finance_manager, not {task.role}")
    await _decide(handle, approver="carol", action="approve")


async def _reject(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await _open_task(handle)
    await _decide(handle, approver="bob", action="reject", comment="no surcharge was agreed")


async def _invalid_signal_then_update(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await _open_task(handle)
    # alice submitted the case: her signal is recorded as refused and the task stays open.
    await handle.signal("decide", signed(handle.id, approver="alice", action="approve"))
    await _refusals_recorded(handle, 1)
    await _decide(handle, approver="bob", action="approve")


async def _refusals_recorded(handle: CaseHandle, count: int) -> None:
    """Wait for signals to land first, so the history always holds them before what follows."""

    async def refused() -> list[AuditEvent] | None:
        events = await handle.query("audit", result_type=list[AuditEvent])
        found = [e for e in events if e.kind is AuditKind.DECISION_REFUSED]
        return found if len(found) >= count else None

    await eventually(refused, what=f"{count} refused signal(s) to be recorded")


async def _unsigned_and_forged_then_signed(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await _open_task(handle)
    await handle.signal("decide", TaskDecision(approver="bob", action="approve"))
    # Signed by carol's key but claiming to be bob: the signature is not bob's.
    forged = signed(handle.id, approver="carol", action="approve").model_copy(
        update={"approver": "bob"}
    )
    await handle.signal("decide", forged)
    await _refusals_recorded(handle, 2)
    await handle.signal("decide", signed(handle.id, approver="bob", action="approve"))


async def _edited_amounts_refused_then_approved(
    env: WorkflowEnvironment, handle: CaseHandle
) -> None:
    await _open_task(handle)
    # No task could allow this amount: recorded as malformed, where it once failed the task.
    await handle.signal("decide", signed_as_sent(handle.id, "bob", "1E+400"))
    # Finer than the euro's cent: refused by the rules, recorded, ignored.
    await handle.signal("decide", signed_as_sent(handle.id, "bob", "0.001"))
    await _refusals_recorded(handle, 2)
    await _decide(handle, approver="bob", action="approve", amount="3000.00")


def _price_variance(invoice_id: str) -> FakeSystems:
    # 5% over the PO on 3,000.00: outside tolerance, within the ap_supervisor's limit.
    return FakeSystems(scenario(invoice_id, invoice_price="31.50"))


RECORDINGS = (
    Recording(
        "auto_approved",
        lambda invoice_id: FakeSystems(scenario(invoice_id)),
        _nothing,
        Outcome.AUTO_APPROVED,
    ),
    Recording("escalated_approved", _price_variance, _escalate_then_approve, Outcome.APPROVED),
    Recording("rejected", _price_variance, _reject, Outcome.REJECTED),
    Recording(
        "failed_compensated",
        lambda invoice_id: FakeSystems(scenario(invoice_id), failing_statuses={"paid"}),
        _nothing,
        Outcome.FAILED_COMPENSATED,
    ),
    Recording("timed_out", _price_variance, _nothing, Outcome.TIMED_OUT),
    Recording(
        "invalid_signal_then_update",
        _price_variance,
        _invalid_signal_then_update,
        Outcome.APPROVED,
    ),
    # Behind workflow.patched("signed-decisions"): every history above that holds a decision
    # was first recorded before decisions were signed, and replays on the unpatched path.
    Recording(
        "unsigned_and_forged_then_signed",
        _price_variance,
        _unsigned_and_forged_then_signed,
        Outcome.APPROVED,
    ),
    # Behind workflow.patched("edited-amount-rules"): signals are judged by the currency's minor
    # unit (histories above replay the unpatched path, where only 0 < amount <= total counted).
    Recording(
        "edited_amounts_refused_then_approved",
        _price_variance,
        _edited_amounts_refused_then_approved,
        Outcome.APPROVED,
    ),
    # Behind workflow.patched("reconcile-failed-payment"): the payment went through but every
    # answer was lost; the case finds it in the ledger and reverses it.
    Recording(
        "payment_outcome_unknown",
        lambda invoice_id: FakeSystems(scenario(invoice_id), lose_payment_answers=True),
        _nothing,
        Outcome.FAILED_COMPENSATED,
    ),
)


# -- ticket triage ------------------------------------------------------------------------------

TriageHandle = WorkflowHandle[TicketTriageWorkflow, TicketTriageResult]
TriageDrive = Callable[[WorkflowEnvironment, TriageHandle], Awaitable[None]]

PASSWORD_ARTICLE = KbArticle(
    article_id="KB-101",
    title="Reset a forgotten password and unlock your account",
    body="Open the self-service portal, choose 'Forgot password', then sign in again.",
    category="access",
    tags=["password", "locked", "account"],
)
PAYMENTS_DB = ConfigurationItem(
    ci_id="CI-PAYDB",
    name="payments database",
    kind="database",
    owner_team="database-ops",
    oncall="ivy",
    criticality="critical",
)


@dataclass(frozen=True)
class TriageRecording:
    name: str
    systems: Callable[[str], FakeItsm]
    """Builds the faked service desk and model for the case's ticket ID."""
    drive: TriageDrive
    status: CaseStatus
    agent_outcome: RegionOutcome


def _ticket(ticket_id: str, title: str, description: str, **fields: object) -> dict[str, Ticket]:
    ticket = Ticket(
        ticket_id=ticket_id,
        title=title,
        description=description,
        requester="erin",
        status="new",
        **fields,
    )
    return {ticket_id: ticket}


def _password_reset(ticket_id: str) -> FakeItsm:
    # The offline stand-in finds the article and proposes resolving with it.
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Forgot my password, locked out",
            "I changed my password on Friday and now I am locked out of my account.",
        ),
        articles={PASSWORD_ARTICLE.article_id: PASSWORD_ARTICLE},
        turn=stand_in_turn,
    )


def _endless_lookups(ticket_id: str) -> FakeItsm:
    # A model that never answers: the region ends at its model-call budget.
    return FakeItsm(
        tickets=_ticket(ticket_id, "Strange noise from the coffee machine", "It hums loudly."),
        turn=keep_reading_the_ticket,
    )


def _outage(ticket_id: str) -> FakeItsm:
    # The stand-in escalates an outage of a critical item as severity 1: its on-call is paged.
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Payments database down",
            "The payments database is not responding; all users see checkout errors.",
            ci_id=PAYMENTS_DB.ci_id,
        ),
        items={PAYMENTS_DB.ci_id: PAYMENTS_DB},
        turn=stand_in_turn,
    )


def _database_outage_called_a_password_problem(messages: list[ChatMessage]) -> ChatMessage:
    """A model that calls the outage of a critical item a password problem and cites the
    password article, confidently: the ticket's own category and severity say otherwise."""
    answer = {
        "category": "access",
        "severity": 1,
        "action": "auto_resolve",
        "kb_article_id": PASSWORD_ARTICLE.article_id,
        "reasons": ["the users cannot sign in"],
        "confidence": 0.95,
    }
    return ChatMessage(
        role="assistant",
        tool_calls=[ToolCall(id="call-1", name=FINAL_ANSWER, arguments=json.dumps(answer))],
    )


def _categorised_outage(ticket_id: str) -> FakeItsm:
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Payments database down for all users",
            "The payments database is not responding; all users see checkout errors.",
            ci_id=PAYMENTS_DB.ci_id,
            category="database",
            severity=1,
        ),
        items={PAYMENTS_DB.ci_id: PAYMENTS_DB},
        articles={PASSWORD_ARTICLE.article_id: PASSWORD_ARTICLE},
        turn=_database_outage_called_a_password_problem,
    )


async def _events(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


async def _reject_review(env: WorkflowEnvironment, handle: TriageHandle) -> None:
    task = await _open_task(handle)
    if task.role != "service_desk_lead":
        raise RuntimeError(f"expected a review by service_desk_lead, not {task.role}")
    await _decide(handle, approver="frank", action="reject", comment="not for the agent")


async def _page_escalates_then_acknowledge(env: WorkflowEnvironment, handle: TriageHandle) -> None:
    async def paged(count: int) -> list[AuditEvent] | None:
        events = [e for e in await _events(handle) if e.kind is AuditKind.PAGE_SENT]
        return events if len(events) >= count else None

    async def sla_timer_started() -> bool | None:
        history = await handle.fetch_history()
        return any(e.HasField("timer_started_event_attributes") for e in history.events) or None

    await eventually(lambda: paged(1), what="the on-call to be paged")
    await eventually(sla_timer_started, what="the acknowledgement SLA's timer")
    # Past the 15-minute acknowledgement SLA: the service desk lead is paged next.
    await env.sleep(timedelta(minutes=16))
    second = (await eventually(lambda: paged(2), what="the page to escalate"))[1]
    if second.data["paged"] != ["frank"]:
        raise RuntimeError(f"expected frank to be paged second, not {second.data['paged']}")
    await handle.execute_update("acknowledge", Acknowledgement(responder="frank"))


TRIAGE_RECORDINGS = (
    TriageRecording(
        "auto_resolved", _password_reset, _nothing, CaseStatus.RESOLVED, RegionOutcome.ANSWERED
    ),
    TriageRecording(
        "budget_exhausted_reviewed",
        _endless_lookups,
        _reject_review,
        CaseStatus.ASSIGNED,
        RegionOutcome.BUDGET_EXHAUSTED,
    ),
    TriageRecording(
        "severity_1_paged",
        _outage,
        _page_escalates_then_acknowledge,
        CaseStatus.ESCALATED,
        RegionOutcome.ANSWERED,
    ),
    # The agent's word contradicts the ticket: checked (patch agent-proposals-checked), reviewed.
    TriageRecording(
        "proposal_contradicted_reviewed",
        _categorised_outage,
        _reject_review,
        CaseStatus.ASSIGNED,
        RegionOutcome.ANSWERED,
    ),
)


async def record_triage(env: WorkflowEnvironment, recording: TriageRecording) -> list[Path]:
    ticket_id = ticket_id_for(recording.name)
    systems = recording.systems(ticket_id)
    task_queue = f"record-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[TicketTriageWorkflow, AgentRegionWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            TicketTriageWorkflow.run,
            TicketTriageInput(ticket_id=ticket_id, submitted_by="erin"),
            id=TicketTriageWorkflow.case_id(ticket_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if (result.status, result.agent_outcome) != (recording.status, recording.agent_outcome):
        raise RuntimeError(
            f"{recording.name}: expected {recording.status} after "
            f"{recording.agent_outcome}, got {result}"
        )
    paths = []
    for workflow_id, path in (
        (handle.id, triage_history_path(recording.name)),
        (f"{handle.id}-agent", triage_history_path(recording.name, region=True)),
    ):
        history = await env.client.get_workflow_handle(workflow_id).fetch_history()
        path.write_text(history.to_json() + "\n")
        paths.append(path)
    return paths


# -- refunds ------------------------------------------------------------------------------------

RefundHandle = WorkflowHandle[RefundWorkflow, RefundResult]
RefundDrive = Callable[[WorkflowEnvironment, RefundHandle], Awaitable[None]]


def refund_history_path(name: str) -> Path:
    return HISTORIES / f"{REFUND_PREFIX}{name}.json"


def refund_order_id_for(name: str) -> str:
    return f"ORD-REPLAY-{name}"


@dataclass(frozen=True)
class RefundRecording:
    name: str
    systems: Callable[[str, datetime], FakeRefundSystems]
    """Builds the faked systems for the case's order ID, dated from the server's clock."""
    drive: RefundDrive
    outcome: RefundOutcome


def _refund_order(total: str, **fields: Any) -> Callable[[str, datetime], FakeRefundSystems]:
    def build(order_id: str, now: datetime) -> FakeRefundSystems:
        return FakeRefundSystems(order(order_id, now, total=total), **fields)

    return build


def _refund_decision(role: str, **decision: str) -> RefundDrive:
    async def drive(env: WorkflowEnvironment, handle: RefundHandle) -> None:
        task = await _open_task(handle)
        if task.role != role:
            raise RuntimeError(f"expected a task for {role}, not {task.role}")
        await _decide(handle, **decision)

    return drive


REFUND_RECORDINGS = (
    RefundRecording("auto_refunded", _refund_order("30.00"), _nothing, RefundOutcome.AUTO_REFUNDED),
    RefundRecording(
        "support_lead_approved",
        _refund_order("180.00"),
        _refund_decision("support_lead", approver="judy", action="approve", comment="broken"),
        RefundOutcome.APPROVED,
    ),
    RefundRecording(
        "finance_approved",
        _refund_order("1200.00"),
        _refund_decision("finance_manager", approver="carol", action="approve"),
        RefundOutcome.APPROVED,
    ),
    RefundRecording(
        "lead_rejected",
        _refund_order("120.00"),
        _refund_decision("support_lead", approver="judy", action="reject", comment="used"),
        RefundOutcome.REJECTED,
    ),
    RefundRecording(
        "rejected_by_policy",
        lambda order_id, now: FakeRefundSystems(order(order_id, now, payment_status="pending")),
        _nothing,
        RefundOutcome.REJECTED_BY_POLICY,
    ),
    RefundRecording(
        "fraud_cleared",
        _refund_order("30.00", signals=[fraud_signal()]),
        _refund_decision("fraud_investigator", approver="kate", action="approve"),
        RefundOutcome.FRAUD_CLEARED,
    ),
    RefundRecording(
        "fraud_confirmed",
        _refund_order("30.00", signals=[fraud_signal()]),
        _refund_decision("fraud_investigator", approver="kate", action="reject", comment="fraud"),
        RefundOutcome.FRAUD_CONFIRMED,
    ),
    RefundRecording(
        "no_decision_on_hold", _refund_order("180.00"), _nothing, RefundOutcome.TIMED_OUT
    ),
    RefundRecording(
        "crm_failed_reversed",
        _refund_order("30.00", crm_fails=True),
        _nothing,
        RefundOutcome.FAILED_COMPENSATED,
    ),
    # The order, not the case, is the unit of money: another case refunded 600.00 of it while
    # this one (the whole 1,000.00) waited for finance; the re-check before paying refuses it.
    RefundRecording(
        "refunded_elsewhere_meanwhile",
        lambda order_id, now: FakeRefundSystems(
            order(order_id, now, total="1000.00"),
            refunds_meanwhile=[
                Refund(
                    refund_id="REF-OTHER",
                    order_id=order_id,
                    customer_id="CUS-1",
                    amount=Decimal("600.00"),
                    currency="EUR",
                    status="issued",
                    idempotency_key=f"refund-{order_id}-2:refund",
                )
            ],
        ),
        _refund_decision("finance_manager", approver="carol", action="approve"),
        RefundOutcome.NOT_REFUNDABLE_ANY_MORE,
    ),
    RefundRecording(
        "payments_refused",
        _refund_order(
            "180.00",
            refund_error=ApplicationError(
                "POST /payments/refunds answered 422: amount: too many decimal places",
                type="RequestRejected",
                non_retryable=True,
            ),
        ),
        _refund_decision("support_lead", approver="judy", action="approve", comment="broken"),
        RefundOutcome.REFUND_REFUSED,
    ),
)


async def record_refund(env: WorkflowEnvironment, recording: RefundRecording) -> Path:
    order_id = refund_order_id_for(recording.name)
    systems = recording.systems(order_id, await env.get_current_time())
    task_queue = f"record-refund-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[RefundWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            RefundWorkflow.run,
            RefundInput(
                order_id=order_id,
                amount=systems.order.total,
                reason="The mug arrived broken.",
            ),
            id=RefundWorkflow.case_id(order_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if result.outcome is not recording.outcome:
        raise RuntimeError(f"{recording.name}: expected {recording.outcome}, got {result}")
    path = refund_history_path(recording.name)
    path.write_text((await handle.fetch_history()).to_json() + "\n")
    return path


# -- loan application ---------------------------------------------------------------------------

LoanDrive = Callable[[WorkflowEnvironment, LoanHandle], Awaitable[None]]


def loan_history_path(name: str) -> Path:
    return HISTORIES / f"{LOAN_PREFIX}{name}.json"


def application_id_for(name: str) -> str:
    return f"APP-REPLAY-{name}"


@dataclass(frozen=True)
class LoanRecording:
    name: str
    systems: Callable[[str], FakeLending]
    """Builds the faked systems for the case's application ID."""
    drive: LoanDrive
    outcome: LoanOutcome


def _report_early(score: int = 760) -> LoanDrive:
    """The bureau answers straight after the start, long before the credit step."""

    async def drive(env: WorkflowEnvironment, handle: LoanHandle) -> None:
        application_id = handle.id.removeprefix("loan-application-")
        await handle.signal(CREDIT_REPORT, credit_report(application_id, score=score))

    return drive


async def _underwriter_rejects(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    await _report_early()(env, handle)
    await open_task(handle)
    await _decide(handle, approver="noah", action="reject", comment="purpose unclear")


async def _applicant_silent_then_approved(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    await _report_early()(env, handle)
    await waits_for(handle, "a reply from the applicant")
    await env.sleep(timedelta(days=3, minutes=1))
    await open_task(handle)
    await _decide(handle, approver="noah", action="approve", comment="statements seen in branch")


def _mule_alert(application_id: str) -> FraudAlert:
    return FraudAlert(application_id=application_id, alert_id="FA-1", reason="mule account")


def _alert_raised(systems: FakeLending) -> FakeLending:
    """Fraud monitoring has raised ``_mule_alert`` (cases that confirm alerts read it back)."""
    systems.raise_alert(_mule_alert(systems.application.application_id))
    return systems


async def _fraud_alert_after_disbursement(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    application_id = handle.id.removeprefix("loan-application-")
    await _report_early()(env, handle)
    await reaches_status(handle, CaseStatus.DISBURSED)
    await handle.signal(FRAUD_ALERT, _mule_alert(application_id))


async def _forged_report_then_the_bureaus(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    """Issue 21, Why 4: a made-up report (score 850) for a request the bureau never had."""
    application_id = handle.id.removeprefix("loan-application-")
    await waits_for(handle, "the credit bureau's report")
    forged = credit_report(application_id, score=850, debt="0", report_id="CBREP-FORGED")
    await handle.signal(
        CREDIT_REPORT, forged.model_copy(update={"request_id": "NOT-A-BUREAU-REQUEST"})
    )
    await handle.signal(CREDIT_REPORT, credit_report(application_id))


async def _fraud_alert_during_underwriting(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    application_id = handle.id.removeprefix("loan-application-")
    await _report_early()(env, handle)
    await open_task(handle)
    await handle.signal(FRAUD_ALERT, _mule_alert(application_id))


def _large_loan(application_id: str) -> FakeLending:
    return FakeLending(loan_application(application_id, amount="60000.00", term_months=120))


def _unreadable_income(application_id: str) -> FakeLending:
    return FakeLending(
        loan_application(application_id, documents=[freelance_statement("see invoices")]),
        readings=[reading(None, 0.4, missing=["bank statements"])],
    )


def _inflated_income(application_id: str) -> FakeLending:
    # The reader answers ten times what the statement (and the applicant) says.
    statement = freelance_statement("Freelance income: 1,000.00 EUR per month")
    return FakeLending(
        loan_application(
            application_id, amount="25000.00", declared_income="1000.00", documents=[statement]
        ),
        readings=[reading("10000.00", confidence=0.95)],
    )


def _sanctioned(application_id: str) -> FakeLending:
    hit = SanctionsHit(entry_id="SAN-1", name="Maria Keller", program="EU list")
    return FakeLending(loan_application(application_id), sanctions_hits=[hit])


LOAN_RECORDINGS = (
    LoanRecording(
        "disbursed",
        lambda application_id: FakeLending(loan_application(application_id)),
        _report_early(),
        LoanOutcome.AUTO_APPROVED,
    ),
    LoanRecording(
        "rules_rejected",
        lambda application_id: FakeLending(
            loan_application(application_id),
            bureau_report=credit_report(application_id, score=480),
        ),
        _report_early(score=480),
        LoanOutcome.REJECTED,
    ),
    LoanRecording(
        "underwriter_rejected",
        _large_loan,
        _underwriter_rejects,
        LoanOutcome.REJECTED_BY_UNDERWRITER,
    ),
    LoanRecording(
        "more_information_escalated",
        _unreadable_income,
        _applicant_silent_then_approved,
        LoanOutcome.APPROVED,
    ),
    LoanRecording("sanctions_hit", _sanctioned, _nothing, LoanOutcome.SANCTIONS_HIT),
    LoanRecording(
        "income_not_borne_out",
        _inflated_income,
        _underwriter_rejects,
        LoanOutcome.REJECTED_BY_UNDERWRITER,
    ),
    LoanRecording(
        "fraud_reversed",
        lambda application_id: _alert_raised(FakeLending(loan_application(application_id))),
        _fraud_alert_after_disbursement,
        LoanOutcome.REVERSED_AFTER_FRAUD_ALERT,
    ),
    LoanRecording(
        "forged_report_ignored",
        lambda application_id: FakeLending(loan_application(application_id)),
        _forged_report_then_the_bureaus,
        LoanOutcome.AUTO_APPROVED,
    ),
    LoanRecording(
        "fraud_alert_withdraws_underwriting",
        lambda application_id: _alert_raised(_large_loan(application_id)),
        _fraud_alert_during_underwriting,
        LoanOutcome.FRAUD_ALERT,
    ),
)


async def record_loan(env: WorkflowEnvironment, recording: LoanRecording) -> Path:
    application_id = application_id_for(recording.name)
    systems = recording.systems(application_id)
    async with Worker(
        env.client,
        task_queue=f"record-{recording.name}",
        workflows=[LoanApplicationWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            LoanApplicationWorkflow.run,
            LoanApplicationInput(application_id=application_id, submitted_by="paul"),
            id=LoanApplicationWorkflow.case_id(application_id),
            task_queue=f"record-{recording.name}",
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if result.outcome is not recording.outcome:
        raise RuntimeError(f"{recording.name}: expected {recording.outcome}, got {result}")
    path = loan_history_path(recording.name)
    path.write_text((await handle.fetch_history()).to_json() + "\n")
    return path


# -- lead routing -------------------------------------------------------------------------------

LeadHandle = WorkflowHandle[LeadRoutingWorkflow, LeadRoutingResult]
LeadDrive = Callable[[WorkflowEnvironment, LeadHandle], Awaitable[None]]


@dataclass(frozen=True)
class LeadRecording:
    name: str
    systems: Callable[[str], FakeCrm]
    """Builds the faked CRM, outbox and model for the case's lead ID."""
    drive: LeadDrive
    outcome: LeadOutcome
    status: CaseStatus


def _confident_lead(lead_id: str) -> FakeCrm:
    return FakeCrm(make_lead(lead_id))


def _unsure_lead(lead_id: str) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id, message="Hello, just looking around."),
        agent_answer=read(LeadIntent.UNCLEAR, 0.3),
    )


def _existing_account(lead_id: str) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        roster=[make_ae("AE-OWNER", 12, 12), make_ae("AE-E2", 3, 10)],
        account=Account(
            account_id="ACC-REPLAY",
            name="Nordwind",
            domain="nordwind.example",
            owner_ae_id="AE-OWNER",
        ),
    )


def _full_territory(lead_id: str) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        roster=[make_ae("AE-E1", 10, 10), make_ae("AE-IS", 5, 50, territory="inside_sales")],
    )


def _nobody_free(lead_id: str) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        roster=[make_ae("AE-E1", 10, 10), make_ae("AE-IS", 50, 50, territory="inside_sales")],
    )


def _first_touch_refused(lead_id: str) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        first_touch_error=ApplicationError(
            "lead is on the do-not-contact list", type="RequestConflict", non_retryable=True
        ),
    )


async def _sales_ops_approves(env: WorkflowEnvironment, handle: LeadHandle) -> None:
    await _open_task(handle)
    await _decide(handle, approver="paul", action="approve", comment="worth a call")


async def _sales_ops_rejects(env: WorkflowEnvironment, handle: LeadHandle) -> None:
    await _open_task(handle)
    await _decide(handle, approver="paul", action="reject", comment="student project")


LEAD_RECORDINGS = (
    LeadRecording(
        "straight_through",
        _confident_lead,
        _nothing,
        LeadOutcome.STRAIGHT_THROUGH,
        CaseStatus.ROUTED,
    ),
    LeadRecording(
        "account_owner",
        _existing_account,
        _nothing,
        LeadOutcome.STRAIGHT_THROUGH,
        CaseStatus.ROUTED,
    ),
    LeadRecording(
        "fallback_territory",
        _full_territory,
        _nothing,
        LeadOutcome.STRAIGHT_THROUGH,
        CaseStatus.ROUTED,
    ),
    LeadRecording(
        "review_approved",
        _unsure_lead,
        _sales_ops_approves,
        LeadOutcome.APPROVED,
        CaseStatus.ROUTED,
    ),
    LeadRecording(
        "review_rejected",
        _unsure_lead,
        _sales_ops_rejects,
        LeadOutcome.REJECTED,
        CaseStatus.REJECTED,
    ),
    LeadRecording(
        "review_timed_out", _unsure_lead, _nothing, LeadOutcome.TIMED_OUT, CaseStatus.ON_HOLD
    ),
    LeadRecording(
        "no_capacity_nurtured",
        _nobody_free,
        _nothing,
        LeadOutcome.NO_CAPACITY,
        CaseStatus.ON_HOLD,
    ),
    LeadRecording(
        "first_touch_failed_unassigned",
        _first_touch_refused,
        _nothing,
        LeadOutcome.FAILED_COMPENSATED,
        CaseStatus.FAILED_COMPENSATED,
    ),
    # Another case (or a person) assigns the lead once this case has read it.
    LeadRecording(
        "taken_elsewhere",
        lambda lead_id: FakeCrm(make_lead(lead_id), taken_once_read_by="AE-E1"),
        _nothing,
        LeadOutcome.TAKEN_ELSEWHERE,
        CaseStatus.SUPERSEDED,
    ),
)


async def record_lead(env: WorkflowEnvironment, recording: LeadRecording) -> Path:
    lead_id = lead_id_for(recording.name)
    crm = recording.systems(lead_id)
    task_queue = f"record-lead-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[LeadRoutingWorkflow],
        activities=crm.activities(),
    ):
        handle = await env.client.start_workflow(
            LeadRoutingWorkflow.run,
            LeadRoutingInput(lead_id=lead_id),
            id=LeadRoutingWorkflow.case_id(lead_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if (result.outcome, result.status) != (recording.outcome, recording.status):
        raise RuntimeError(
            f"{recording.name}: expected {recording.outcome} / {recording.status}, got {result}"
        )
    path = lead_history_path(recording.name)
    path.write_text((await handle.fetch_history()).to_json() + "\n")
    return path


# -- vendor onboarding --------------------------------------------------------------------------

VendorHandle = WorkflowHandle[VendorOnboardingWorkflow, VendorOnboardingResult]
VendorDrive = Callable[[WorkflowEnvironment, VendorHandle], Awaitable[None]]


@dataclass(frozen=True)
class VendorRecording:
    name: str
    systems: Callable[[str], FakeVendorSystems]
    """Builds the faked vendor portal, ERP vendor master and checker for the application ID."""
    drive: VendorDrive
    outcome: VendorOutcome


def _vendor_in_order(application_id: str) -> FakeVendorSystems:
    return FakeVendorSystems(application(application_id))


def _vendor_expired_tax_certificate(application_id: str) -> FakeVendorSystems:
    expired = tax_certificate_text(valid_until="2020-12-31")
    return FakeVendorSystems(
        application(application_id, documents_for(application_id, tax_certificate=expired))
    )


def _vendor_foreign_bank_account(application_id: str) -> FakeVendorSystems:
    foreign = bank_confirmation_text(iban=FOREIGN_IBAN)
    documents = documents_for(application_id, bank_confirmation=foreign)
    return FakeVendorSystems(application(application_id, documents, bank_account=FOREIGN_IBAN))


def _vendor_bank_letter_unread(application_id: str) -> FakeVendorSystems:
    # The checker cannot read a letter that states another account: the reviewers approve it.
    other = bank_confirmation_text(iban="DE02 1203 0000 0000 2020 51")
    return FakeVendorSystems(
        application(application_id, documents_for(application_id, bank_confirmation=other)),
        extractions={
            f"{application_id}-BANK": ApplicationError("model unavailable", non_retryable=True)
        },
    )


def _vendor_invalid_iban(application_id: str) -> FakeVendorSystems:
    letter = bank_confirmation_text(iban="DE00 1234")
    return FakeVendorSystems(
        application(
            application_id,
            documents_for(application_id, bank_confirmation=letter),
            bank_account="DE00 1234",
        )
    )


def _vendor_tax_certificate_uploaded(application_id: str) -> FakeVendorSystems:
    """An expired certificate, and the current one the vendor uploads to the portal."""
    systems = _vendor_expired_tax_certificate(application_id)
    systems.upload(_current_tax_certificate(application_id))
    return systems


def _current_tax_certificate(application_id: str) -> DocumentResubmission:
    return resubmission(
        application_id, f"{application_id}-TAX-2", "tax_certificate", tax_certificate_text()
    )


def _reviewers(*decisions: tuple[str, str]) -> VendorDrive:
    """Each (approver, action) in turn, once every review task is open."""

    async def drive(env: WorkflowEnvironment, handle: VendorHandle) -> None:
        reviews = 3 if any(approver == "liam" for approver, _ in decisions) else 2
        await open_reviews(handle, reviews)
        for approver, action in decisions:
            await _decide(handle, approver=approver, action=action, comment=f"{approver}: {action}")

    return drive


async def _resubmit_then_approve(env: WorkflowEnvironment, handle: VendorHandle) -> None:
    await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    valid = _current_tax_certificate(handle.id.removeprefix("vendor-onboarding-"))
    # A malformed resubmission first: recorded and ignored; then the real one.
    await handle.signal("resubmit", valid.model_dump(exclude={"content"}))
    await audited(handle, AuditKind.DECISION_REFUSED)
    await handle.signal("resubmit", valid)
    await _reviewers(("mia", "approve"), ("carol", "approve"))(env, handle)


async def _unuploaded_then_uploaded(env: WorkflowEnvironment, handle: VendorHandle) -> None:
    """A document the portal does not have is ignored; the one the vendor uploaded counts."""
    await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    valid = _current_tax_certificate(handle.id.removeprefix("vendor-onboarding-"))
    await handle.signal("resubmit", valid.model_copy(update={"document_id": "NOT-UPLOADED"}))
    await audited(handle, AuditKind.DECISION_REFUSED)
    await handle.signal("resubmit", valid)
    await _reviewers(("mia", "approve"), ("carol", "approve"))(env, handle)


VENDOR_RECORDINGS = (
    VendorRecording(
        "onboarded",
        _vendor_in_order,
        _reviewers(("mia", "approve"), ("carol", "approve")),
        VendorOutcome.ONBOARDED,
    ),
    VendorRecording(
        "legal_approved_finance_rejected",
        _vendor_in_order,
        _reviewers(("mia", "approve"), ("carol", "reject")),
        VendorOutcome.REJECTED,
    ),
    VendorRecording(
        "legal_rejected_finance_withdrawn",
        _vendor_in_order,
        _reviewers(("mia", "reject")),
        VendorOutcome.REJECTED,
    ),
    VendorRecording(
        "procurement_rejected",
        _vendor_foreign_bank_account,
        _reviewers(("mia", "approve"), ("carol", "approve"), ("liam", "reject")),
        VendorOutcome.REJECTED,
    ),
    VendorRecording(
        "resubmitted",
        _vendor_tax_certificate_uploaded,
        _resubmit_then_approve,
        VendorOutcome.ONBOARDED,
    ),
    VendorRecording(
        "resubmitted_from_portal",
        _vendor_tax_certificate_uploaded,
        _unuploaded_then_uploaded,
        VendorOutcome.ONBOARDED,
    ),
    VendorRecording(
        "documents_timed_out",
        _vendor_expired_tax_certificate,
        _nothing,
        VendorOutcome.DOCUMENTS_TIMED_OUT,
    ),
    VendorRecording(
        "legal_undecided_on_hold", _vendor_in_order, _nothing, VendorOutcome.REVIEW_TIMED_OUT
    ),
    # Patches agent-proposals-checked and erp-bank-account-checked: approved, nothing written.
    VendorRecording(
        "bank_account_unconfirmed",
        _vendor_bank_letter_unread,
        _reviewers(("mia", "approve"), ("carol", "approve")),
        VendorOutcome.BANK_ACCOUNT_UNCONFIRMED,
    ),
    VendorRecording("invalid_iban_refused", _vendor_invalid_iban, _nothing, VendorOutcome.REJECTED),
)


async def record_vendor(env: WorkflowEnvironment, recording: VendorRecording) -> Path:
    application_id = vendor_application_id_for(recording.name)
    systems = recording.systems(application_id)
    task_queue = f"record-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[VendorOnboardingWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            VendorOnboardingWorkflow.run,
            VendorOnboardingInput(application_id=application_id, submitted_by="alice"),
            id=VendorOnboardingWorkflow.case_id(application_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if result.outcome is not recording.outcome:
        raise RuntimeError(f"{recording.name}: expected {recording.outcome}, got {result}")
    path = vendor_history_path(recording.name)
    path.write_text((await handle.fetch_history()).to_json() + "\n")
    return path


async def record(env: WorkflowEnvironment, recording: Recording) -> Path:
    invoice_id = invoice_id_for(recording.name)
    systems = recording.systems(invoice_id)
    # Fixed names (each run has a fresh server) keep a re-recording's diff to what changed.
    task_queue = f"record-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[InvoiceExceptionWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            InvoiceExceptionWorkflow.run,
            InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice"),
            id=InvoiceExceptionWorkflow.case_id(invoice_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if result.outcome is not recording.outcome:
        raise RuntimeError(f"{recording.name}: expected {recording.outcome}, got {result}")
    path = history_path(recording.name)
    path.write_text((await handle.fetch_history()).to_json() + "\n")
    return path


async def record_all(names: list[str] | None = None) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter,
        # Not "<pid>@<host>": a re-recording then differs only where the workflow does.
        identity="casework-history-recorder",
        # A runtime of its own, released in main(): the process-wide default one, torn down
        # during interpreter shutdown, can abort the process (temporalio/sdk-python#300). Core
        # warns about every worker's server lacking a capability the test server never has.
        runtime=Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        ),
    )
    with tempfile.TemporaryDirectory(prefix="casework-record-keys-") as keys:
        async with env:
            await search_attributes.register(env.client, "default")
            install_test_keys(Path(keys))
            for recording in RECORDINGS:
                if names is None or recording.name in names:
                    path = await record(env, recording)
                    print(f"recorded {path}")
            for triage in TRIAGE_RECORDINGS:
                if names is None or triage.name in names:
                    for path in await record_triage(env, triage):
                        print(f"recorded {path}")
            for refund in REFUND_RECORDINGS:
                if names is None or refund.name in names:
                    print(f"recorded {await record_refund(env, refund)}")
            for loan in LOAN_RECORDINGS:
                if names is None or loan.name in names:
                    print(f"recorded {await record_loan(env, loan)}")
            for lead in LEAD_RECORDINGS:
                if names is None or lead.name in names:
                    print(f"recorded {await record_lead(env, lead)}")
            for vendor in VENDOR_RECORDINGS:
                if names is None or vendor.name in names:
                    path = await record_vendor(env, vendor)
                    print(f"recorded {path}")


def main() -> None:
    # The failed_compensated case fails an activity on purpose; its traceback is not news.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    known = (
        {r.name for r in RECORDINGS}
        | {r.name for r in TRIAGE_RECORDINGS}
        | {r.name for r in REFUND_RECORDINGS}
        | {r.name for r in LOAN_RECORDINGS}
        | {r.name for r in LEAD_RECORDINGS}
        | {r.name for r in VENDOR_RECORDINGS}
    )
    names = sys.argv[1:] or None
    if unknown := set(names or ()) - known:
        sys.exit(f"unknown scenarios {sorted(unknown)}; known: {sorted(known)}")
    try:
        asyncio.run(record_all(names))
    finally:
        gc.collect()


if __name__ == "__main__":
    main()
