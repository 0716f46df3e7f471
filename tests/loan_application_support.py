"""Helpers for the loan-application tests.

``FakeLending`` fakes the lending system, KYC, the credit bureau, payments, notifications and
the income reader by activity name (``casework.testing.fakes``), for the time-skipping workflow
tests and for recording replay histories; ``LendingSandbox`` seeds and reads the real sandbox
over HTTP for the integration tests. Builders make a loan that the policy approves
automatically unless a test says otherwise: 20,000.00 EUR over 60 months (instalment 395.08)
on 4,000.00 a month of payslip income, with 300.00 of other debt and a bureau score of 760.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.agents.loan_application import IncomeAssessment, IncomeReading
from activities.credit_bureau import (
    CreditReport,
    CreditReportRequest,
    ReportOrder,
    ReportRequestLookup,
)
from activities.fraud import FraudAlert, FraudAlertLookup, RaisedFraudAlert
from activities.kyc import (
    IdentityCheck,
    IdentityVerification,
    SanctionsCheck,
    SanctionsHit,
    SanctionsScreening,
)
from activities.lending import (
    Applicant,
    ApplicantMessage,
    ApplicationLookup,
    ApplicationStatusChange,
    CustomerReply,
    IncomeDocument,
    LoanApplication,
    MessageLookup,
)
from activities.payments import DisbursementRequest, Payment, PaymentLookup, PaymentReversal
from casework.agents.messages import AgentRequest
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.testing.cases import audit, events_of, state
from casework.testing.fakes import FakeAgent, FakeOutbox, Ledger, fake, fake_worker, not_found
from casework.testing.temporal import eventually
from workflows.loan_application import (
    LoanApplicationInput,
    LoanApplicationResult,
    LoanApplicationWorkflow,
)

LoanHandle = WorkflowHandle[LoanApplicationWorkflow, LoanApplicationResult]


def payslip(monthly_amount: str = "4000.00") -> IncomeDocument:
    return IncomeDocument(
        document_id="DOC-PAYSLIP",
        kind="payslip",
        description="March payslip",
        monthly_amount=Decimal(monthly_amount),
    )


def freelance_statement(text: str = "Average monthly income: 4,000.00 EUR") -> IncomeDocument:
    return IncomeDocument(
        document_id="DOC-FREELANCE",
        kind="freelance_statement",
        description="Accountant's statement of freelance income",
        text=text,
    )


def applicant(application_id: str, full_name: str = "Maria Keller") -> Applicant:
    return Applicant(
        customer_id=f"CUST-{application_id}",
        full_name=full_name,
        date_of_birth=date(1985, 4, 12),
        national_id=f"ID-{application_id}",
        country="DE",
        email=f"{application_id.lower()}@customers.example.com",
    )


def loan_application(
    application_id: str,
    *,
    amount: str = "20000.00",
    term_months: int = 60,
    declared_income: str = "4000.00",
    documents: list[IncomeDocument] | None = None,
) -> LoanApplication:
    return LoanApplication(
        application_id=application_id,
        applicant=applicant(application_id),
        amount=Decimal(amount),
        currency="EUR",
        term_months=term_months,
        purpose="car",
        declared_monthly_income=Decimal(declared_income),
        documents=[payslip()] if documents is None else documents,
        status="submitted",
    )


def credit_report(
    application_id: str,
    *,
    score: int = 760,
    debt: str = "300.00",
    defaults: int = 0,
    subject_id: str | None = None,
    report_id: str = "CBREP-1",
) -> CreditReport:
    return CreditReport(
        application_id=application_id,
        report_id=report_id,
        request_id="CBR-1",
        subject_id=subject_id or f"ID-{application_id}",
        score=score,
        monthly_debt_payments=Decimal(debt),
        defaults=defaults,
        issued_at=datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
    )


def reading(
    income: str | None = "4000.00",
    confidence: float = 0.9,
    missing: list[str] | None = None,
) -> IncomeReading:
    return IncomeReading(
        assessment=IncomeAssessment.SUPPORTED if income else IncomeAssessment.INSUFFICIENT,
        verified_monthly_income=Decimal(income) if income else None,
        confidence=confidence,
        findings=["scripted finding"],
        missing=missing or [],
        explanation="scripted reading",
    )


@dataclass
class FakeLending(FakeOutbox, FakeAgent):
    """The lending system, KYC, the credit bureau, fraud monitoring, disbursements, the outbox
    and the income reader, in memory, by activity name."""

    application: LoanApplication
    identity_status: str = "verified"
    sanctions_hits: list[SanctionsHit] = field(default_factory=list)
    readings: list[IncomeReading | ApplicationError] = field(default_factory=lambda: [reading()])
    """The income reader's answers, in order; the last one repeats."""
    kyc_gate: asyncio.Event | None = None
    """When set, identity verification waits for it: holds the case inside its KYC step."""
    disbursement_fails: bool = False
    disbursement_answers_lost: bool = False
    """The disbursement is made, then every answer to it is lost: it fails for good."""
    ledger_unreadable: bool = False
    """Looking a payment up in the ledger fails for good."""
    decided_elsewhere: str | None = None
    """The status someone outside the case gave the application meanwhile: the lending system
    then refuses the case's own decision."""
    verification_started: asyncio.Event = field(default_factory=asyncio.Event)
    status_changes: list[ApplicationStatusChange] = field(default_factory=list)
    disbursements: Ledger[Payment] = field(default_factory=Ledger)
    bureau_report: CreditReport | None = None
    """The bureau's answer to the case's request, read back by the case; None: the builders'
    default report for the application."""
    bureau_pending: bool = False
    """The bureau has not answered (yet): whatever report is signalled is not confirmed."""
    stored_replies: dict[str, ApplicantMessage] = field(default_factory=dict)
    """The lending system's messages from the applicant, by message ID."""
    raised_alerts: dict[str, RaisedFraudAlert] = field(default_factory=dict)
    """Fraud monitoring's alerts, by alert ID."""

    def __post_init__(self) -> None:
        if self.bureau_report is None:
            self.bureau_report = credit_report(self.application.application_id)
        if self.disbursement_fails:
            self.script(
                "payments.disburse",
                ApplicationError(
                    "borrower account closed", type="RequestRejected", non_retryable=True
                ),
            )

    def agent_answer_to(self, request: AgentRequest) -> IncomeReading | ApplicationError:
        return self.readings[min(len(self.agent_requests), len(self.readings)) - 1]

    @property
    def bureau_orders(self) -> list[ReportOrder]:
        return self.calls("credit_bureau.request_report")

    @property
    def reversals(self) -> list[PaymentReversal]:
        return self.calls("payments.reverse")

    @property
    def statuses(self) -> list[str]:
        return [change.status for change in self.status_changes]

    def store_reply(self, reply: CustomerReply) -> CustomerReply:
        """Play the lending system receiving the applicant's reply; the reply as delivered."""
        message_id = f"LMSG-{len(self.stored_replies) + 1}"
        self.stored_replies[message_id] = ApplicantMessage(
            message_id=message_id,
            application_id=reply.application_id,
            text=reply.text,
            documents=reply.documents,
            received_at=datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
        )
        return reply.model_copy(update={"message_id": message_id})

    def raise_alert(self, alert: FraudAlert) -> FraudAlert:
        """Play fraud monitoring raising the alert; the alert as delivered."""
        self.raised_alerts[alert.alert_id] = RaisedFraudAlert(
            alert_id=alert.alert_id,
            application_id=alert.application_id,
            reason=alert.reason,
            source=alert.source,
            raised_at=datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
        )
        return alert

    @fake("lending.get_application")
    async def get_application(self, lookup: ApplicationLookup) -> LoanApplication:
        if lookup.application_id != self.application.application_id:
            raise not_found(f"loan application {lookup.application_id}")
        return self.application

    @fake("lending.set_application_status")
    async def set_application_status(self, change: ApplicationStatusChange) -> LoanApplication:
        app = self.application
        if self.decided_elsewhere is not None:
            raise ApplicationError(
                f"POST /lending/applications/{app.application_id}/status answered 409: loan "
                f"application {app.application_id} is {self.decided_elsewhere}",
                type="RequestConflict",
                non_retryable=True,
            )
        self.status_changes.append(change)
        return app.model_copy(update={"status": change.status})

    @fake("kyc.verify_identity")
    async def verify_identity(self, check: IdentityCheck) -> IdentityVerification:
        self.verification_started.set()
        if self.kyc_gate is not None:
            await self.kyc_gate.wait()
        failed = self.identity_status != "verified"
        return IdentityVerification(
            verification_id="IDV-1",
            status="failed" if failed else "verified",
            reasons=["date of birth does not match the document"] if failed else [],
        )

    @fake("kyc.screen_sanctions")
    async def screen_sanctions(self, check: SanctionsCheck) -> SanctionsScreening:
        return SanctionsScreening(
            screening_id="SCR-1",
            status="hit" if self.sanctions_hits else "clear",
            hits=self.sanctions_hits,
        )

    @fake("credit_bureau.request_report")
    async def request_report(self, order: ReportOrder) -> CreditReportRequest:
        return CreditReportRequest(
            request_id="CBR-1",
            application_id=order.application_id,
            subject_id=order.subject_id,
            status="pending",
        )

    @fake("credit_bureau.get_request")
    async def get_request(self, lookup: ReportRequestLookup) -> CreditReportRequest:
        answered = not self.bureau_pending
        return CreditReportRequest(
            request_id=lookup.request_id,
            application_id=self.application.application_id,
            subject_id=self.application.applicant.national_id,
            status="answered" if answered else "pending",
            report=self.bureau_report if answered else None,
        )

    @fake("lending.get_message")
    async def get_message(self, lookup: MessageLookup) -> ApplicantMessage:
        stored = self.stored_replies.get(lookup.message_id)
        if stored is None or stored.application_id != lookup.application_id:
            raise ApplicationError(
                f"loan application {lookup.application_id} has no message {lookup.message_id}",
                type="RecordNotFound",
                non_retryable=True,
            )
        return stored

    @fake("fraud.get_alert")
    async def get_alert(self, lookup: FraudAlertLookup) -> RaisedFraudAlert:
        stored = self.raised_alerts.get(lookup.alert_id)
        if stored is None:
            raise not_found(f"fraud alert {lookup.alert_id}")
        return stored

    @fake("payments.disburse")
    async def disburse(self, request: DisbursementRequest) -> Payment:
        made = self.disbursements.once(
            request.idempotency_key,
            lambda number: Payment(
                payment_id=f"PAY-{number}",
                invoice_id=request.application_id,
                supplier_id=request.borrower_id,
                amount=request.amount,
                currency=request.currency,
                status="completed",
                idempotency_key=request.idempotency_key,
            ),
        )
        if self.disbursement_answers_lost:
            raise ApplicationError(
                "POST /payments/disbursements answered 503",
                type="RequestFailed",
                non_retryable=True,
            )
        return made

    @fake("payments.find")
    async def find_payment(self, lookup: PaymentLookup) -> Payment | None:
        if self.ledger_unreadable:
            raise ApplicationError(
                "payments answered 503", type="RequestFailed", non_retryable=True
            )
        payment = self.disbursements.get(lookup.idempotency_key)
        return payment if payment is not None and payment.invoice_id == lookup.invoice_id else None

    @fake("payments.reverse")
    async def reverse(self, reversal: PaymentReversal) -> Payment:
        payment = next(
            p for p in self.disbursements.values() if p.payment_id == reversal.payment_id
        )
        payment.status = "reversed"
        return payment


# -- driving a case -----------------------------------------------------------------------------


def loan_worker(env: WorkflowEnvironment, systems: FakeLending) -> AbstractAsyncContextManager[str]:
    return fake_worker(env.client, systems, LoanApplicationWorkflow)


async def start_loan(
    env: WorkflowEnvironment,
    task_queue: str,
    application_id: str,
    *,
    workflow_id: str | None = None,
    submitted_by: str = "paul",
) -> LoanHandle:
    return await env.client.start_workflow(
        LoanApplicationWorkflow.run,
        LoanApplicationInput(application_id=application_id, submitted_by=submitted_by),
        id=workflow_id or LoanApplicationWorkflow.case_id(application_id),
        task_queue=task_queue,
    )


async def reaches_status(handle: WorkflowHandle, status: str, timeout: float = 15.0) -> CaseState:
    async def probe() -> CaseState | None:
        current = await state(handle)
        return current if current.status == status else None

    return await eventually(probe, what=f"{handle.id} to reach {status}", timeout=timeout)


async def waits_for(handle: WorkflowHandle, words: str) -> CaseState:
    """Until the case says it waits for something mentioning ``words``."""

    async def probe() -> CaseState | None:
        current = await state(handle)
        return current if current.waiting_on and words in current.waiting_on else None

    return await eventually(probe, what=f"{handle.id} to wait for {words!r}")


async def recorded(handle: WorkflowHandle, kind: AuditKind, count: int = 1) -> list[AuditEvent]:
    """Until the audit trail holds ``count`` events of ``kind``; returns them."""

    async def probe() -> list[AuditEvent] | None:
        found = events_of(await audit(handle), kind)
        return found if len(found) >= count else None

    return await eventually(probe, what=f"{count} {kind.value} event(s) in {handle.id}")


# -- the real sandbox ---------------------------------------------------------------------------


def new_application_id(label: str) -> str:
    return f"APP-{label}-{uuid.uuid4().hex[:8]}"


class LendingSandbox:
    """The sandbox's lending system, KYC lists, credit bureau and ledger, over HTTP."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(path, json=body)
        assert response.is_success, f"POST {path}: {response.status_code} {response.text}"
        return response.json()

    async def _get(self, path: str, **params: str) -> Any:
        response = await self.http.get(path, params=params)
        assert response.is_success, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    async def seed(
        self,
        application: LoanApplication,
        *,
        score: int = 760,
        debt: str = "300.00",
        defaults: int = 0,
        identity_status: str = "valid",
    ) -> None:
        """The application, the applicant's identity document and credit file."""
        person = application.applicant
        await self._post(
            "/kyc/identities",
            {
                "document_number": person.national_id,
                "full_name": person.full_name,
                "date_of_birth": person.date_of_birth.isoformat(),
                "status": identity_status,
            },
        )
        await self._post(
            "/credit-bureau/files",
            {
                "subject_id": person.national_id,
                "score": score,
                "monthly_debt_payments": debt,
                "defaults": defaults,
            },
        )
        await self._post(
            "/lending/applications",
            application.model_dump(
                mode="json", exclude={"status", "approved_amount"}, exclude_none=True
            ),
        )

    async def list_sanctioned(self, entry_id: str, name: str, dob: date | None = None) -> None:
        body: dict[str, Any] = {"entry_id": entry_id, "name": name, "program": "EU list"}
        if dob is not None:
            body["date_of_birth"] = dob.isoformat()
        await self._post("/kyc/sanctions", body)

    async def bureau_request(self, application_id: str) -> dict[str, Any] | None:
        requests = await self._get("/credit-bureau/requests", application_id=application_id)
        return requests[0] if requests else None

    async def answer(self, request_id: str) -> dict[str, Any]:
        """Play the bureau: answer a report request."""
        answer: dict[str, Any] = await self._post(f"/credit-bureau/requests/{request_id}/answer")
        return answer

    async def application(self, application_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._get(f"/lending/applications/{application_id}")
        return found

    async def ledger(self, application_id: str) -> list[Payment]:
        rows = await self._get("/payments", invoice_id=application_id)
        return [Payment.model_validate(row) for row in rows]

    async def inject_fault(self, **spec: Any) -> None:
        await self._post("/_faults", spec)
