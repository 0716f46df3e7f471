"""Loan application: KYC, a late credit report, an agent reading income documents, a fraud watch.

Flow: load policy -> read the application -> request the bureau's report (it answers later, as
a message) -> verify identity and screen sanctions in parallel (a failure or a hit rejects) ->
the income reader agent reads non-standard income documents -> wait for the bureau's report,
which may long have arrived -> the rules approve, reject, refer to an underwriter, or ask the
applicant for more (a reply re-runs the reading; silence for three days refers to an
underwriter) -> record the approval, disburse, and keep a fraud watch open: a fraud alert in it
reverses the disbursement and the approval, and the case ends ``failed_compensated`` saying so.

Messages from outside (``credit_report``, ``customer_reply``, ``fraud_alert``) are signals
routed by application ID (``demos.loan_messages``). Each is buffered when it arrives, whatever
step the case is at, and checked: a malformed one, or one for another application, is recorded
and ignored with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from activities.agents.loan_application import (
        INCOME_READER,
        INCOME_READER_AGENT,
        IncomeReading,
    )
    from activities.credit_bureau import (
        CreditBureauActivities,
        CreditReport,
        CreditReportRequest,
        ReportOrder,
        ReportRequestLookup,
    )
    from activities.fraud import FraudActivities, FraudAlert, FraudAlertLookup, RaisedFraudAlert
    from activities.kyc import IdentityCheck, KycActivities, SanctionsCheck
    from activities.lending import (
        ApplicantMessage,
        ApplicationLookup,
        ApplicationStatusChange,
        CustomerReply,
        IncomeDocument,
        LendingActivities,
        LoanApplication,
        Message,
        MessageLookup,
    )
    from activities.payments import (
        DisbursementRequest,
        Payment,
        PaymentActivities,
        PaymentLookup,
        PaymentReversal,
    )
    from casework.agents.checks import ProposalChecks
    from casework.amounts import money
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        TOOL_RETRY,
        AmountLimits,
        ApprovalOutcome,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        Ending,
        compensation_summary,
        failure_message,
        wait_within,
    )
    from casework.case.saga import CompensationReport, Saga
    from casework.case.tasks import DecisionAction, TaskKind
    from casework.converter import validation_problems
    from casework.governance.models import PolicyRef, format_duration
    from casework.systems.http import REQUEST_CONFLICT
    from casework.systems.notifications import NotificationActivities, NotificationRequest
    from policies.loan_application import (
        LoanApplicationPolicy,
        LoanDecision,
        LoanRoute,
        check_income_reading,
        decide_loan,
        kyc_refusals,
        non_standard_documents,
        refer_to_underwriting,
    )

MessageT = TypeVar("MessageT", bound=Message)

CREDIT_REPORT = "credit_report"
CUSTOMER_REPLY = "customer_reply"
FRAUD_ALERT = "fraud_alert"

CONFIRMED_MESSAGES = "loan-confirmed-messages"
"""Patch ID: a message counts only once its source confirms it (the bureau's report read back by
the case's request ID, a reply read back from the lending system, an alert from fraud
monitoring), and a confirmed fraud alert during underwriting withdraws the underwriter's task.
Cases started before believed a message on its say-so, and keep doing so on replay."""
DECIDED_ONCE = "loan-decided-once"
"""Patch ID: when the lending system refuses the approval because the application was decided
meanwhile (by another case, or a person), the case ends ``superseded`` having paid nothing.
Cases that failed there before keep failing on replay."""
DISBURSEMENT_LOOKED_UP = "loan-disbursement-looked-up"
"""Patch ID: a disbursement that failed for good is looked up in the ledger by its idempotency
key; one made anyway (every answer lost) is taken as made, and the case carries on with it.
Cases that failed there before ended compensated without looking, and keep doing so on replay."""


class LoanApplicationInput(BaseModel):
    # Unknown keys are refused so that a misspelt field fails at start, by name.
    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    submitted_by: str = Field(
        default="paul",
        min_length=1,
        description="Directory user who opened the case for the applicant.",
    )


class LoanStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    DISBURSED = "disbursed"


class Outcome(StrEnum):
    AUTO_APPROVED = "auto_approved"
    APPROVED = "approved"
    """By an underwriter or credit officer."""
    REJECTED = "rejected"
    """By the rules."""
    REJECTED_BY_UNDERWRITER = "rejected_by_underwriter"
    SANCTIONS_HIT = "sanctions_hit"
    IDENTITY_NOT_VERIFIED = "identity_not_verified"
    FRAUD_ALERT = "fraud_alert"
    """Rejected: a fraud alert arrived before the money went out."""
    NO_DECISION = "no_decision"
    REVERSED_AFTER_FRAUD_ALERT = "reversed_after_fraud_alert"
    DISBURSEMENT_FAILED = "disbursement_failed"
    DECIDED_ELSEWHERE = "decided_elsewhere"
    """The application was decided meanwhile, outside this case: nothing paid out."""


class LoanApplicationResult(BaseModel):
    case_id: str
    application_id: str
    status: CaseStatus | LoanStatus
    outcome: Outcome
    message: str
    decided_by: str | None = None
    reasons: list[str] = Field(default_factory=list)
    amount_disbursed: Decimal | None = None
    payment_id: str | None = None
    compensated: list[str] = Field(default_factory=list)
    compensation_failed: list[str] = Field(default_factory=list)
    policy: PolicyRef


class _ReplyRequest(BaseModel):
    due_at: datetime
    missing: list[str]
    reply: CustomerReply | None = None
    notices: list[CustomerReply] = Field(default_factory=list)
    """Replies received, until the lending system confirms one."""


def reader_context(
    application: LoanApplication, unread: list[IncomeDocument], replies: list[CustomerReply]
) -> dict[str, Any]:
    """What the income reader is shown: the application, the documents no payroll feed covers
    and the applicant's replies. Also what its evaluation on labelled cases shows it
    (``evals/loan_application.py``)."""
    currency = application.currency
    return {
        "application": {
            "application_id": application.application_id,
            "amount": str(application.amount),
            "currency": currency,
            "term_months": application.term_months,
            "purpose": application.purpose,
            "declared_monthly_income": str(application.declared_monthly_income),
        },
        "documents": [document.model_dump(mode="json") for document in unread],
        "customer_replies": [{"text": reply.text} for reply in replies],
    }


@workflow.defn(name="LoanApplication")
class LoanApplicationWorkflow(CaseWorkflow):
    case_type = "loan-application"
    description = (
        "KYC, a late credit report and an income-reading agent decide a loan; "
        "a fraud alert after disbursement reverses it"
    )
    input_model = LoanApplicationInput
    business_key = "application_id"
    statuses = LoanStatus

    @workflow.init
    def __init__(self, request: LoanApplicationInput) -> None:
        super().__init__()
        # Known before any message is handled: a message can arrive in the case's first moment.
        self._application_id = request.application_id
        self._saga = Saga()
        self._application: LoanApplication | None = None
        self._bureau_request: CreditReportRequest | None = None
        self._report: CreditReport | None = None
        self._messages_before_application: list[Message] = []
        self._waiting_for_report = False
        self._reply_request: _ReplyRequest | None = None
        self._fraud_alert: FraudAlert | None = None
        self._confirms_messages = False
        # Messages that answer what the case waits for, until their source confirms them.
        self._report_notices: list[CreditReport] = []
        self._report_closed = False
        self._alert_notices: list[FraudAlert] = []
        self._replies_taken: set[str] = set()
        self._watch_until: datetime | None = None
        self._reversal_reason = ""

    @workflow.run
    async def run(self, request: LoanApplicationInput) -> LoanApplicationResult:
        self._confirms_messages = workflow.patched(CONFIRMED_MESSAGES)
        self.begin(
            request,
            request.submitted_by,
            f"Loan application {request.application_id}",
            f"{request.submitted_by} opened loan application {request.application_id}",
        )
        policy, policy_ref = await self.load_governance(LoanApplicationPolicy)
        application: LoanApplication = await self.call_tool(
            LendingActivities.get_application,
            ApplicationLookup(application_id=request.application_id),
        )
        if application.status != "submitted":
            raise ApplicationError(
                f"loan application {application.application_id} is already {application.status}; "
                "nothing to decide",
                type="ApplicationAlreadyDecided",
                non_retryable=True,
            )
        self._application = application
        for message in self._messages_before_application:
            self._take(message)
        self._facts.update(
            application_id=application.application_id,
            applicant=application.applicant.full_name,
            amount=application.amount,
            currency=application.currency,
            term_months=application.term_months,
        )
        self.set_status(CaseStatus.ANALYSING, amount=application.amount)
        try:
            result = await self._decide_and_execute(policy, policy_ref, application)
        except asyncio.CancelledError:
            # A cancelled case must not leave money out or an approval standing: undo, report.
            self.record_cancellation(await self._compensate("the case was cancelled"))
            raise
        return await self.complete(result)

    # -- steps ------------------------------------------------------------------------------

    async def _decide_and_execute(
        self, policy: LoanApplicationPolicy, ref: PolicyRef, application: LoanApplication
    ) -> LoanApplicationResult:
        applicant = application.applicant
        case_id = workflow.info().workflow_id
        # Asked first: the bureau takes its time, and KYC and the income reading run meanwhile.
        self._bureau_request = await self.call_tool(
            CreditBureauActivities.request_report,
            ReportOrder(
                application_id=application.application_id,
                subject_id=applicant.national_id,
                reference=case_id,
                idempotency_key=self.idempotency_key("credit-report-request"),
            ),
            summary=f"requested a credit report on {applicant.national_id} from the bureau",
        )
        self._facts["bureau_request"] = self._bureau_request.request_id
        identity, screening = await asyncio.gather(
            self.call_tool(
                KycActivities.verify_identity,
                IdentityCheck(
                    full_name=applicant.full_name,
                    date_of_birth=applicant.date_of_birth,
                    document_number=applicant.national_id,
                    reference=case_id,
                    idempotency_key=self.idempotency_key("kyc-identity"),
                ),
                summary=f"verified the identity of {applicant.full_name}",
            ),
            self.call_tool(
                KycActivities.screen_sanctions,
                SanctionsCheck(
                    full_name=applicant.full_name,
                    date_of_birth=applicant.date_of_birth,
                    country=applicant.country,
                    reference=case_id,
                    idempotency_key=self.idempotency_key("kyc-sanctions"),
                ),
                summary=f"screened {applicant.full_name} against the sanctions list",
            ),
        )
        self.record(
            AuditKind.CONTEXT_RETRIEVED,
            f"KYC: identity {identity.status} ({identity.verification_id}), sanctions screening "
            f"{screening.status} ({screening.screening_id})",
            identity=identity,
            screening=screening,
        )
        self._facts.update(identity=identity.status, sanctions=screening.status)
        refusals = kyc_refusals(identity, screening)
        if refusals:
            self._record_decision(
                LoanDecision(route=LoanRoute.REJECT, reasons=refusals, policy=ref), ref
            )
            outcome = (
                Outcome.SANCTIONS_HIT
                if screening.status == "hit"
                else Outcome.IDENTITY_NOT_VERIFIED
            )
            return await self._decline(ref, application, refusals, outcome, "policy")

        documents = list(application.documents)
        replies: list[CustomerReply] = []
        reading, reading_problem, checks = await self._read_income(
            policy, application, documents, replies
        )
        report, report_missing = await self._await_report(policy, application)
        decision = decide_loan(
            policy,
            ref,
            application,
            documents,
            report,
            reading,
            report_missing_reason=report_missing,
            reading_problem=reading_problem,
            reading_checks=checks,
        )
        self._record_decision(decision, ref)
        while decision.route is LoanRoute.MORE_INFORMATION:
            reply = await self._ask_applicant(policy, application, decision, len(replies) + 1)
            if reply is None:
                decision = refer_to_underwriting(
                    policy,
                    decision,
                    f"the applicant did not reply within "
                    f"{format_duration(policy.more_information.reply_within)}",
                    application.amount,
                    application.currency,
                )
                self._record_decision(decision, ref)
                break
            replies.append(reply)
            documents += reply.documents
            reading, reading_problem, checks = await self._read_income(
                policy, application, documents, replies
            )
            decision = decide_loan(
                policy,
                ref,
                application,
                documents,
                report,
                reading,
                report_missing_reason=report_missing,
                reading_problem=reading_problem,
                information_requests=len(replies),
                reading_checks=checks,
            )
            self._record_decision(decision, ref)

        if decision.route is LoanRoute.REJECT:
            return await self._decline(
                ref, application, decision.reasons, Outcome.REJECTED, "policy"
            )
        if decision.route is LoanRoute.AUTO_APPROVE:
            return await self._approve(
                policy, ref, application, application.amount, "policy", Outcome.AUTO_APPROVED
            )
        return await self._underwrite(policy, ref, application, decision, report, reading)

    def _record_decision(self, decision: LoanDecision, ref: PolicyRef) -> None:
        self.record_decision(decision)
        if decision.debt_to_income is not None:
            self._facts["debt_to_income"] = decision.debt_to_income

    async def _read_income(
        self,
        policy: LoanApplicationPolicy,
        application: LoanApplication,
        documents: list[IncomeDocument],
        replies: list[CustomerReply],
    ) -> tuple[IncomeReading | None, str, ProposalChecks | None]:
        """The income reader's view of the non-standard documents and how its figure checked
        out, or why there is none."""
        unread = non_standard_documents(policy, documents)
        if not unread:
            return None, "", None
        currency = application.currency
        # Without a reading the case still proceeds, to a person.
        consultation = await self.consult(
            INCOME_READER_AGENT,
            reader_context(application, unread, replies),
            settings=INCOME_READER_AGENT.settings_in(policy.agents),
            check=lambda reading: check_income_reading(policy, application, documents, reading),
            describe=lambda reading: _describe_reading(reading, currency),
            failure=f"{INCOME_READER} gave no usable reading",
            activity_summary=f"{INCOME_READER} reading {len(unread)} document(s)",
        )
        reading = consultation.answer
        if reading is None:
            return None, consultation.why_none, None
        self._facts.update(
            income_reading=reading.assessment.value, income_confidence=reading.confidence
        )
        return reading, "", consultation.checks

    async def _await_report(
        self, policy: LoanApplicationPolicy, application: LoanApplication
    ) -> tuple[CreditReport | None, str]:
        """The bureau's report: at once when it came early, else as it arrives, else None."""
        if self._confirms_messages:
            return await self._await_confirmed_report(policy, application)
        if self._report is None:
            self._waiting_for_report = True
            self.set_status(CaseStatus.AWAITING_EXTERNAL, amount=application.amount)
            arrived = await wait_within(
                lambda: self._report is not None, policy.credit_bureau.report_within
            )
            self._waiting_for_report = False
            self.set_status(CaseStatus.ANALYSING, amount=application.amount)
            if not arrived:
                assert self._bureau_request is not None
                reason = (
                    f"no credit bureau report within "
                    f"{format_duration(policy.credit_bureau.report_within)} "
                    f"(request {self._bureau_request.request_id})"
                )
                self.record(AuditKind.TASK_TIMED_OUT, reason)
                return None, reason
        return self._report, ""

    async def _await_confirmed_report(
        self, policy: LoanApplicationPolicy, application: LoanApplication
    ) -> tuple[CreditReport | None, str]:
        """Each report received is read back from the bureau by the case's own request ID; the
        first the bureau confirms is the report. None when none is confirmed in time."""
        request = self._bureau_request
        assert request is not None
        due_at = workflow.now() + policy.credit_bureau.report_within
        while self._report is None:
            if not self._report_notices:
                self._waiting_for_report = True
                self.set_status(CaseStatus.AWAITING_EXTERNAL, amount=application.amount)
                remaining = due_at - workflow.now()
                arrived = remaining > timedelta(0) and await wait_within(
                    lambda: bool(self._report_notices), remaining
                )
                self._waiting_for_report = False
                self.set_status(CaseStatus.ANALYSING, amount=application.amount)
                if not arrived:
                    self._report_closed = True
                    reason = (
                        f"no credit bureau report within "
                        f"{format_duration(policy.credit_bureau.report_within)} "
                        f"(request {request.request_id})"
                    )
                    self.record(AuditKind.TASK_TIMED_OUT, reason)
                    return None, reason
            await self._confirm_report(self._report_notices.pop(0))
        for late in self._report_notices:
            self._ignore("credit report", self._report_on_file(late), message=late)
        self._report_notices.clear()
        return self._report, ""

    async def _ask_applicant(
        self,
        policy: LoanApplicationPolicy,
        application: LoanApplication,
        decision: LoanDecision,
        round_number: int,
    ) -> CustomerReply | None:
        """Ask the applicant for what is missing; None when no reply comes in time."""
        sla = policy.more_information.reply_within
        request = _ReplyRequest(due_at=workflow.now() + sla, missing=decision.missing)
        self._reply_request = request
        self.set_status(CaseStatus.AWAITING_EXTERNAL, amount=application.amount)
        self.record(
            AuditKind.TASK_OPENED,
            f"asked the applicant for more information, reply due {request.due_at.isoformat()}: "
            + "; ".join(request.missing),
            # A question to the applicant, not an approval: the case is not routed to a person
            # by asking, and the KPI report must not count it so.
            task_kind=TaskKind.QUESTION,
            missing=request.missing,
            due_at=request.due_at,
        )
        await self._tell_applicant(
            application,
            f"More information needed for loan application {application.application_id}",
            "To decide on your application we need:\n"
            + "\n".join(f"- {item}" for item in request.missing)
            + f"\n\nPlease reply by {request.due_at:%Y-%m-%d %H:%M} UTC.",
            step=f"more-information-{round_number}",
        )
        if self._confirms_messages:
            replied = await self._await_confirmed_reply(request)
        else:
            replied = await wait_within(lambda: request.reply is not None, sla)
        self._reply_request = None
        self.set_status(CaseStatus.ANALYSING, amount=application.amount)
        if not replied:
            self.record(
                AuditKind.TASK_ESCALATED,
                f"the applicant did not reply within {format_duration(sla)}; "
                "referred to underwriting",
            )
            return None
        return request.reply

    async def _await_confirmed_reply(self, request: _ReplyRequest) -> bool:
        """Each reply received is read back from the lending system; True once one is confirmed,
        False when none is by the due date."""
        while request.reply is None:
            remaining = request.due_at - workflow.now()
            if remaining <= timedelta(0) or not await wait_within(
                lambda: bool(request.notices), remaining
            ):
                return False
            await self._confirm_reply(request, request.notices.pop(0))
        assert request.reply is not None
        for late in request.notices:
            self._ignore(
                "customer reply",
                f"{late.message_id}: reply {request.reply.message_id} was already taken",
                message=late,
            )
        request.notices.clear()
        return True

    async def _underwrite(
        self,
        policy: LoanApplicationPolicy,
        ref: PolicyRef,
        application: LoanApplication,
        decision: LoanDecision,
        report: CreditReport | None,
        reading: IncomeReading | None,
    ) -> LoanApplicationResult:
        assert decision.tier is not None
        approval = self.request_approval(
            ApprovalRequest(
                title=(
                    f"Loan {application.application_id}: {money(application.amount)} "
                    f"{application.currency} for {application.applicant.full_name}"
                ),
                summary=_summary(application, decision, report, reading),
                evidence={
                    "decision": decision.model_dump(mode="json"),
                    "credit_report": report.model_dump(mode="json") if report else None,
                    "income_reading": reading.model_dump(mode="json") if reading else None,
                },
                amount=application.amount,
                currency=application.currency,
                tiers=policy.underwriting.tiers,
                start_tier=decision.tier,
                escalate=policy.underwriting.escalate_on_sla,
                limits=AmountLimits(
                    currency=policy.currency,
                    minimum=policy.limits.min_amount,
                    maximum=policy.limits.max_amount,
                ),
            )
        )
        if self._confirms_messages:
            outcome = await self._underwrite_unless_fraud(approval)
            if outcome is None:
                return await self._decline_for_fraud(ref, application)
        else:
            outcome = await approval
        human = outcome.decision
        if human is None:
            return await self._put_on_hold(policy, ref, application)
        if human.action == DecisionAction.REJECT:
            return await self._decline(
                ref,
                application,
                [f"rejected by {human.approver}: {human.comment}"],
                Outcome.REJECTED_BY_UNDERWRITER,
                human.approver,
            )
        amount = application.amount if human.amount is None else human.amount
        return await self._approve(
            policy, ref, application, amount, human.approver, Outcome.APPROVED
        )

    async def _underwrite_unless_fraud(
        self, approval: Coroutine[Any, Any, ApprovalOutcome]
    ) -> ApprovalOutcome | None:
        """The underwriters' decision, or None when a confirmed fraud alert ends the case first:
        their open task is then withdrawn, so a decision sent for it later is refused."""
        deciding = asyncio.create_task(approval)
        while not deciding.done():
            await workflow.wait_condition(lambda: deciding.done() or bool(self._alert_notices))
            alert = await self._confirmed_alert()
            if alert is None:
                continue
            deciding.cancel()
            # The task ends cancelled; any other end is an error to surface.
            (end,) = await asyncio.gather(deciding, return_exceptions=True)
            if isinstance(end, BaseException) and not isinstance(end, asyncio.CancelledError):
                raise end
            withdrawn = self.withdraw_open_tasks(
                f"fraud alert {alert.alert_id} from {alert.source}: the application is declined"
            )
            for task in withdrawn:
                await self.notify_role(
                    task.role,
                    f"No longer needed: {task.title}",
                    f"A fraud alert ({alert.alert_id}) ended this case; nothing to decide.",
                    step=f"{task.task_id}-withdrawn",
                )
            return None
        return deciding.result()

    async def _decline_for_fraud(
        self, ref: PolicyRef, application: LoanApplication
    ) -> LoanApplicationResult:
        alert = self._fraud_alert
        assert alert is not None
        return await self._decline(
            ref,
            application,
            [f"fraud alert {alert.alert_id} from {alert.source}: {alert.reason}"],
            Outcome.FRAUD_ALERT,
            "policy",
        )

    async def _approve(
        self,
        policy: LoanApplicationPolicy,
        ref: PolicyRef,
        application: LoanApplication,
        amount: Decimal,
        decided_by: str,
        outcome: Outcome,
    ) -> LoanApplicationResult:
        if await self._confirmed_alert() is not None:
            return await self._decline_for_fraud(ref, application)
        application_id, currency = application.application_id, application.currency
        self.set_status(CaseStatus.EXECUTING, amount=amount)
        try:
            await self._set_application_status(
                application_id, "approved", f"approved by {decided_by}", approved_amount=amount
            )
        except ActivityError as error:
            # The lending system holds the one decision on an application: refused here, it
            # was taken meanwhile by someone else, and this case pays nothing.
            if not (_conflict(error) and workflow.patched(DECIDED_ONCE)):
                raise
            return self._decided_elsewhere(ref, application, decided_by, error)
        self._saga.add(
            f"approval of {application_id} reversed",
            lambda: self._set_application_status(
                application_id,
                "approval_reversed",
                self._reversal_reason,
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        try:
            payment: Payment = await self.call_tool(
                PaymentActivities.disburse,
                DisbursementRequest(
                    application_id=application_id,
                    borrower_id=application.applicant.customer_id,
                    amount=amount,
                    currency=currency,
                    reference=workflow.info().workflow_id,
                    idempotency_key=self.idempotency_key("disbursement"),
                ),
                summary=f"disbursed {money(amount)} {currency} to the borrower",
            )
        except ActivityError as error:
            found = (
                await self._disbursed_anyway(application_id)
                if workflow.patched(DISBURSEMENT_LOOKED_UP)
                else None
            )
            if found is None:
                return await self._fail_compensated(ref, application, decided_by, error)
            payment = found
        self._saga.add(
            f"disbursement {payment.payment_id} of {money(amount)} {currency} reversed",
            lambda: self.call_tool(
                PaymentActivities.reverse,
                PaymentReversal(
                    payment_id=payment.payment_id,
                    reason=self._reversal_reason,
                    idempotency_key=self.idempotency_key("disbursement-reversal"),
                ),
                retry_policy=COMPENSATION_RETRY,
                summary=f"reversed disbursement {payment.payment_id}",
            ),
        )
        self._facts.update(amount_disbursed=amount, payment_id=payment.payment_id)
        how = (
            "auto-approved by policy"
            if outcome is Outcome.AUTO_APPROVED
            else f"approved by {decided_by}"
        )
        await self._tell_applicant(
            application,
            f"Your loan {application_id} has been paid out",
            f"{money(amount)} {currency} is on its way to you (payment {payment.payment_id}).",
            step="disbursed",
        )
        return await self._watch_for_fraud(
            policy, ref, application, payment, decided_by, outcome, how
        )

    async def _disbursed_anyway(self, application_id: str) -> Payment | None:
        """After a disbursement that failed for good, the ledger says whether it went through
        anyway. When the ledger cannot be read either, the money may be out: the compensation
        says so, and a person must look."""
        key = self.idempotency_key("disbursement")
        try:
            return await self.made_anyway(
                PaymentActivities.find,
                PaymentLookup(invoice_id=application_id, idempotency_key=key),
                write=f"the disbursement of {application_id}",
                idempotency_key=key,
                pick=lambda payment: payment,
                retry_policy=COMPENSATION_RETRY,
                summary=f"looked up the disbursement of {application_id} after it failed",
            )
        except ActivityError:
            self._saga.add_unconfirmed(
                f"a possible disbursement of {application_id} (the ledger could not be read)",
                f"check the ledger for {key}",
            )
            return None

    async def _watch_for_fraud(
        self,
        policy: LoanApplicationPolicy,
        ref: PolicyRef,
        application: LoanApplication,
        payment: Payment,
        decided_by: str,
        outcome: Outcome,
        how: str,
    ) -> LoanApplicationResult:
        """Keep the case open for the fraud-watch window; an alert in it reverses the loan."""
        window = policy.fraud_watch.window
        self._watch_until = workflow.now() + window
        self._facts["fraud_watch_until"] = self._watch_until
        self.set_status(LoanStatus.DISBURSED, amount=payment.amount)
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {ref}: fraud watch open until {self._watch_until.isoformat()} "
            f"({format_duration(window)})",
            fraud_watch_until=self._watch_until,
        )
        ended_early = False
        try:
            alerted = await (
                self._watch_for_confirmed_alert()
                if self._confirms_messages
                else wait_within(lambda: self._fraud_alert is not None, window)
            )
        except asyncio.CancelledError:
            # The money went out on a sound decision: cancelling the case ends the watch, it
            # does not claw the loan back. Only a fraud alert does that.
            alerted, ended_early = False, True
        self._watch_until = None
        self._facts.pop("fraud_watch_until", None)
        disbursed = f"disbursed {money(payment.amount)} {payment.currency} ({payment.payment_id})"
        if alerted:
            return await self._reverse(policy, ref, application, payment, decided_by, how)
        message = f"{how}; {disbursed}; " + (
            "fraud watch ended early: the case was cancelled"
            if ended_early
            else f"no fraud alert within {format_duration(window)}"
        )
        return LoanApplicationResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            status=LoanStatus.DISBURSED,
            outcome=outcome,
            message=message,
            decided_by=decided_by,
            amount_disbursed=payment.amount,
            payment_id=payment.payment_id,
            policy=ref,
        )

    async def _watch_for_confirmed_alert(self) -> bool:
        """Until the watch ends: each alert received is confirmed with fraud monitoring; True
        once one is."""
        assert self._watch_until is not None
        while True:
            remaining = self._watch_until - workflow.now()
            if remaining <= timedelta(0) or not await wait_within(
                lambda: bool(self._alert_notices), remaining
            ):
                return False
            if await self._confirmed_alert() is not None:
                return True

    async def _reverse(
        self,
        policy: LoanApplicationPolicy,
        ref: PolicyRef,
        application: LoanApplication,
        payment: Payment,
        decided_by: str,
        how: str,
    ) -> LoanApplicationResult:
        alert = self._fraud_alert
        assert alert is not None
        why = f"fraud alert {alert.alert_id} from {alert.source}: {alert.reason}"
        report = await self._compensate(why)
        ending = Ending.after_compensation(
            report, f"{how}, then reversed after {why}; {compensation_summary(report)}"
        )
        self.set_status(ending.status)
        for role in policy.fraud_watch.notify_roles:
            await self.notify_role(
                role,
                f"Loan {application.application_id} reversed after a fraud alert",
                ending.message,
                "fraud-reversal",
            )
        return LoanApplicationResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            outcome=Outcome.REVERSED_AFTER_FRAUD_ALERT,
            decided_by=decided_by,
            reasons=[why],
            payment_id=payment.payment_id,
            policy=ref,
            **ending.result_fields(),
        )

    def _decided_elsewhere(
        self, ref: PolicyRef, application: LoanApplication, decided_by: str, error: ActivityError
    ) -> LoanApplicationResult:
        message = (
            f"approved by {decided_by}, but not paid out: the application was decided meanwhile "
            f"outside this case ({failure_message(error)})"
        )
        self.record(AuditKind.POLICY_DECISION, message)
        self.set_status(CaseStatus.SUPERSEDED)
        return LoanApplicationResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            status=CaseStatus.SUPERSEDED,
            outcome=Outcome.DECIDED_ELSEWHERE,
            message=message,
            decided_by=decided_by,
            policy=ref,
        )

    async def _fail_compensated(
        self, ref: PolicyRef, application: LoanApplication, decided_by: str, error: ActivityError
    ) -> LoanApplicationResult:
        cause = failure_message(error)
        # The reversals tell the lending system and the payments API why, in their own records.
        self._reversal_reason = (
            f"case {workflow.info().workflow_id}: the disbursement failed: {cause}"[:2000]
        )
        ending = await self.fail_compensated(
            self._saga,
            error,
            failed=f"approved by {decided_by}, but the disbursement",
            reason="the disbursement failed",
        )
        return LoanApplicationResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            outcome=Outcome.DISBURSEMENT_FAILED,
            decided_by=decided_by,
            reasons=[cause],
            policy=ref,
            **ending.result_fields(),
        )

    async def _decline(
        self,
        ref: PolicyRef,
        application: LoanApplication,
        reasons: list[str],
        outcome: Outcome,
        decided_by: str,
    ) -> LoanApplicationResult:
        self.set_status(CaseStatus.EXECUTING)
        await self._set_application_status(
            application.application_id, "declined", "; ".join(reasons)[:2000]
        )
        ending = await self.close_rejected(
            "rejected: " + "; ".join(reasons),
            letter=lambda: self._tell_applicant(
                application,
                f"Your loan application {application.application_id}",
                "We are unable to offer you this loan.",
                step="declined",
            ),
        )
        return LoanApplicationResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            outcome=outcome,
            decided_by=decided_by,
            reasons=reasons,
            policy=ref,
            **ending.result_fields(),
        )

    async def _put_on_hold(
        self, policy: LoanApplicationPolicy, ref: PolicyRef, application: LoanApplication
    ) -> LoanApplicationResult:
        await self._set_application_status(
            application.application_id,
            "on_hold",
            "no underwriting decision within the SLAs of every tier",
        )
        ending = await self.put_on_hold(
            "no underwriting decision in time at any tier; application put on hold",
            notify_roles=[tier.role for tier in policy.underwriting.tiers],
            subject=f"Loan {application.application_id} on hold",
            step="on-hold",
        )
        return LoanApplicationResult(
            case_id=workflow.info().workflow_id,
            application_id=application.application_id,
            outcome=Outcome.NO_DECISION,
            policy=ref,
            **ending.result_fields(),
        )

    async def _compensate(self, why: str) -> CompensationReport:
        # The reversals tell the lending system and the payments API why, in their own records.
        self._reversal_reason = f"case {workflow.info().workflow_id}: {why}"[:2000]
        return await self.compensate(self._saga, why)

    # -- writes and letters -----------------------------------------------------------------

    async def _set_application_status(
        self,
        application_id: str,
        status: str,
        note: str,
        *,
        approved_amount: Decimal | None = None,
        retry_policy: RetryPolicy = TOOL_RETRY,
    ) -> LoanApplication:
        change = ApplicationStatusChange(
            application_id=application_id,
            status=status,
            note=note or None,
            approved_amount=approved_amount,
            idempotency_key=self.idempotency_key(f"status-{status}"),
        )
        return await self.call_tool(
            LendingActivities.set_application_status,
            change,
            retry_policy=retry_policy,
            summary=f"marked application {application_id} {status}",
        )

    async def _tell_applicant(
        self, application: LoanApplication, subject: str, body: str, step: str
    ) -> None:
        """A letter to the applicant, who is a customer, not a directory user."""
        await self.call_tool(
            NotificationActivities.send,
            NotificationRequest(
                to=application.applicant.email,
                subject=subject,
                body=body,
                case_id=workflow.info().workflow_id,
                idempotency_key=self.idempotency_key(f"applicant:{step}"),
            ),
            summary=f"wrote to the applicant: {subject}",
        )

    # -- messages from outside --------------------------------------------------------------

    def _received(
        self, what: str, model: type[MessageT], payloads: tuple[Any, ...]
    ) -> MessageT | None:
        """The message, validated and meant for this case; None (recorded) when it is not.

        Handlers take whatever was sent: one declared argument would make a signal with no
        payload, or two, fail every workflow task of the case (the SDK cannot call the handler),
        and the case would never move again."""
        if len(payloads) != 1:
            self._ignore(
                what, f"malformed: expected one {model.__name__}, got {len(payloads)} payloads"
            )
            return None
        raw = payloads[0]
        try:
            message = model.model_validate(raw)
        except ValidationError as error:
            self._ignore(what, f"malformed: {validation_problems(error, 5)}", message=raw)
            return None
        if message.application_id != self._application_id:
            self._ignore(
                what,
                f"it is for application {message.application_id}, this case is for "
                f"{self._application_id}",
                message=message,
            )
            return None
        return message

    def _awaiting_confirmation(self, what: str, until: str, message: Message) -> None:
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"received {what}; it counts once {until}",
            confirming=True,
            message=message,
        )

    def _ignore(self, what: str, reason: str, **data: Any) -> None:
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"ignored {what}: {reason}",
            accepted=False,
            reason=reason,
            **data,
        )

    @workflow.signal(name=CREDIT_REPORT)
    def credit_report(self, *payloads: Any) -> None:
        report = self._received("credit report", CreditReport, payloads)
        if report is not None:
            self._take(report)

    @workflow.signal(name=CUSTOMER_REPLY)
    def customer_reply(self, *payloads: Any) -> None:
        reply = self._received("customer reply", CustomerReply, payloads)
        if reply is not None:
            self._take(reply)

    @workflow.signal(name=FRAUD_ALERT)
    def fraud_alert(self, *payloads: Any) -> None:
        alert = self._received("fraud alert", FraudAlert, payloads)
        if alert is not None:
            self._take(alert)

    def _take(self, message: Message) -> None:
        """Handle a message meant for this application, once the application has been read:
        until then it is too early to tell (whether a report is about the applicant, say), so
        it is kept until then."""
        if self._application is None:
            self._messages_before_application.append(message)
        elif isinstance(message, CreditReport):
            if self._confirms_messages:
                self._note_report(message)
            else:
                self._file_report(message)
        elif isinstance(message, CustomerReply):
            self._take_reply(message)
        elif isinstance(message, FraudAlert):
            if self._confirms_messages:
                self._note_alert(message)
            else:
                self._file_alert(message)

    def _file_report(self, report: CreditReport) -> None:
        """Cases started before messages were confirmed: the report is believed as sent."""
        assert self._application is not None
        subject = self._application.applicant.national_id
        if report.subject_id != subject:
            self._ignore(
                "credit report",
                f"{report.report_id} is about {report.subject_id}, not the applicant ({subject})",
                message=report,
            )
        elif self._report is not None:
            self._ignore("credit report", self._report_on_file(report), message=report)
        else:
            self._accept_report(report, "")

    def _report_on_file(self, report: CreditReport) -> str:
        assert self._report is not None
        on_file = self._report.report_id
        return (
            f"{on_file} is already on file (delivered again)"
            if report.report_id == on_file
            else f"{report.report_id}: report {on_file} is already on file"
        )

    def _accept_report(self, report: CreditReport, source: str) -> None:
        self._report = report
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"credit report {report.report_id} from the bureau{source}: score {report.score}, "
            f"{money(report.monthly_debt_payments)} monthly debt, {report.defaults} default(s)"
            + (
                "; kept until the credit step needs it"
                if not (self._waiting_for_report or self._confirms_messages)
                else ""
            ),
            accepted=True,
            message=report,
        )
        self._facts["credit_score"] = report.score

    def _note_report(self, report: CreditReport) -> None:
        """A report counts only as the answer to this case's own open request, and only in the
        bureau's own copy: it is kept until the credit step reads that copy back."""
        request = self._bureau_request
        if self._report is not None:
            self._ignore("credit report", self._report_on_file(report), message=report)
        elif self._report_closed:
            self._ignore(
                "credit report",
                f"{report.report_id}: the case no longer waits for a report (it went on without)",
                message=report,
            )
        elif request is not None and report.request_id != request.request_id:
            self._ignore(
                "credit report",
                f"{report.report_id} answers request {report.request_id}, not this case's "
                f"request {request.request_id}",
                message=report,
            )
        else:
            self._report_notices.append(report)
            self._awaiting_confirmation(
                f"credit report {report.report_id} (request {report.request_id})",
                "the bureau confirms it",
                report,
            )

    async def _confirm_report(self, notice: CreditReport) -> None:
        """Read the case's own request back from the bureau; its answer, if any, is the report."""
        request = self._bureau_request
        application = self._application
        assert request is not None and application is not None
        if notice.request_id != request.request_id:
            # Kept before the request was made, when this could not be told yet.
            self._note_report(notice)
            return
        try:
            answered: CreditReportRequest = await self.call_tool(
                CreditBureauActivities.get_request,
                ReportRequestLookup(request_id=request.request_id),
                summary=f"read request {request.request_id} back from the bureau",
            )
        except ActivityError as error:
            self._ignore(
                "credit report",
                f"{notice.report_id}: the bureau could not confirm it ({failure_message(error)})",
                message=notice,
            )
            return
        report = answered.report
        subject = application.applicant.national_id
        if report is None:
            self._ignore(
                "credit report",
                f"{notice.report_id}: the bureau has not answered request {request.request_id} "
                f"(it is {answered.status}), so the report did not come from the bureau",
                message=notice,
            )
        elif report.subject_id != subject or report.application_id != application.application_id:
            self._ignore(
                "credit report",
                f"the bureau's answer to {request.request_id} is about {report.subject_id} for "
                f"{report.application_id}, not the applicant ({subject})",
                message=notice,
            )
        else:
            differs = sorted(
                name
                for name in ("report_id", "score", "monthly_debt_payments", "defaults")
                if getattr(notice, name) != getattr(report, name)
            )
            self._accept_report(
                report,
                f" (read back by request {request.request_id}"
                + (
                    f"; the message differed in {', '.join(differs)}: the bureau's copy counts)"
                    if differs
                    else ")"
                ),
            )

    def _take_reply(self, reply: CustomerReply) -> None:
        request = self._reply_request
        if request is None or request.reply is not None:
            self._ignore("customer reply", "no request for more information is open", message=reply)
            return
        if not self._confirms_messages:
            self._accept_reply(request, reply, "")
        elif reply.message_id is None:
            self._ignore(
                "customer reply",
                "it names no message_id: a reply counts only as the lending system received it "
                "(casework deliver customer-reply stores it there first)",
                message=reply,
            )
        elif reply.message_id in self._replies_taken:
            self._ignore(
                "customer reply", f"message {reply.message_id} was already taken", message=reply
            )
        else:
            request.notices.append(reply)
            self._awaiting_confirmation(
                f"the applicant's reply {reply.message_id}",
                "the lending system confirms it",
                reply,
            )

    def _accept_reply(self, request: _ReplyRequest, reply: CustomerReply, source: str) -> None:
        request.reply = reply
        if reply.message_id is not None:
            self._replies_taken.add(reply.message_id)
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"the applicant replied with {len(reply.documents)} document(s){source}: {reply.text}",
            accepted=True,
            message=reply,
        )

    async def _confirm_reply(self, request: _ReplyRequest, notice: CustomerReply) -> None:
        """Read the reply back from the lending system, which received it; only its copy counts."""
        assert notice.message_id is not None
        try:
            stored: ApplicantMessage = await self.call_tool(
                LendingActivities.get_message,
                MessageLookup(application_id=self._application_id, message_id=notice.message_id),
                summary=f"read reply {notice.message_id} back from the lending system",
            )
        except ActivityError as error:
            self._ignore(
                "customer reply",
                f"the lending system does not confirm message {notice.message_id} "
                f"({failure_message(error)})",
                message=notice,
            )
            return
        if notice.message_id in self._replies_taken:
            self._ignore(
                "customer reply", f"message {notice.message_id} was already taken", message=notice
            )
            return
        reply = CustomerReply(
            application_id=stored.application_id,
            text=stored.text,
            documents=stored.documents,
            message_id=stored.message_id,
        )
        self._accept_reply(
            request, reply, f" (message {stored.message_id}, read back from the lending system)"
        )

    def _file_alert(self, alert: FraudAlert) -> None:
        """Cases started before messages were confirmed: the alert is believed as sent."""
        if self._fraud_alert is not None:
            self._ignore(
                "fraud alert",
                f"{alert.alert_id}: alert {self._fraud_alert.alert_id} is already on file",
                message=alert,
            )
            return
        self._accept_alert(alert, "")

    def _accept_alert(self, alert: FraudAlert, source: str) -> None:
        self._fraud_alert = alert
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"fraud alert {alert.alert_id} from {alert.source}{source}: {alert.reason}",
            accepted=True,
            message=alert,
        )
        self._facts["fraud_alert"] = alert.alert_id

    def _note_alert(self, alert: FraudAlert) -> None:
        if self._fraud_alert is not None:
            self._file_alert(alert)
        else:
            self._alert_notices.append(alert)
            self._awaiting_confirmation(
                f"fraud alert {alert.alert_id}", "fraud monitoring confirms it", alert
            )

    async def _confirmed_alert(self) -> FraudAlert | None:
        """Confirm the alerts received so far with fraud monitoring; the alert on file, if any.

        Cases started before messages were confirmed have their alert on file already."""
        while self._fraud_alert is None and self._alert_notices:
            notice = self._alert_notices.pop(0)
            try:
                stored: RaisedFraudAlert = await self.call_tool(
                    FraudActivities.get_alert,
                    FraudAlertLookup(alert_id=notice.alert_id),
                    summary=f"read alert {notice.alert_id} back from fraud monitoring",
                )
            except ActivityError as error:
                self._ignore(
                    "fraud alert",
                    f"fraud monitoring does not confirm alert {notice.alert_id} "
                    f"({failure_message(error)})",
                    message=notice,
                )
                continue
            if stored.application_id != self._application_id:
                self._ignore(
                    "fraud alert",
                    f"fraud monitoring raised {stored.alert_id} on application "
                    f"{stored.application_id}, not {self._application_id}",
                    message=notice,
                )
                continue
            self._accept_alert(
                FraudAlert(
                    application_id=stored.application_id,
                    alert_id=stored.alert_id,
                    reason=stored.reason[:2000],
                    source=stored.source[:200],
                ),
                " (read back from fraud monitoring)",
            )
        if self._fraud_alert is not None:
            for late in self._alert_notices:
                self._file_alert(late)
            self._alert_notices.clear()
        return self._fraud_alert

    def waiting_on(self) -> str | None:
        people = super().waiting_on()
        if people:
            return people
        application_id = self._application_id
        if self._waiting_for_report and self._bureau_request is not None:
            request_id = self._bureau_request.request_id
            return (
                f"the credit bureau's report (request {request_id}): "
                f"casework deliver credit-report {request_id}"
            )
        if self._reply_request is not None and self._reply_request.reply is None:
            return (
                f"a reply from the applicant by {self._reply_request.due_at:%Y-%m-%d %H:%M} UTC: "
                f'casework deliver customer-reply {application_id} --text "..."'
            )
        if self._watch_until is not None:
            return (
                f"a fraud alert, if any, until {self._watch_until:%Y-%m-%d %H:%M} UTC (the loan is "
                f'paid out): casework deliver fraud-alert {application_id} --reason "..."'
            )
        return None


def _conflict(error: ActivityError) -> bool:
    """Whether the system refused the write as conflicting with what it holds now (a 409)."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == REQUEST_CONFLICT


def _describe_reading(reading: IncomeReading, currency: str) -> str:
    income = reading.verified_monthly_income
    return (
        f"reads income {reading.assessment.value}"
        + (f", {money(income)} {currency} a month" if income is not None else "")
        + f", confidence {reading.confidence:.2f}"
    )


def _summary(
    application: LoanApplication,
    decision: LoanDecision,
    report: CreditReport | None,
    reading: IncomeReading | None,
) -> str:
    currency = application.currency
    lines = [
        f"{application.applicant.full_name} asks for {money(application.amount)} {currency} over "
        f"{application.term_months} months ({application.purpose}); declared income "
        f"{money(application.declared_monthly_income)} {currency} a month.",
        f"Instalment {money(decision.monthly_instalment or Decimal(0))} {currency}; evidenced "
        f"income {money(decision.verified_monthly_income or Decimal(0))} {currency}; "
        f"debt-to-income {'-' if decision.debt_to_income is None else decision.debt_to_income}.",
    ]
    if report is None:
        lines.append("Credit bureau: no report.")
    else:
        lines.append(
            f"Credit bureau ({report.report_id}): score {report.score}, "
            f"{money(report.monthly_debt_payments)} {currency} monthly debt, "
            f"{report.defaults} default(s)."
        )
    if reading is not None:
        lines.append(
            f"Income reader: {reading.assessment.value} (confidence {reading.confidence:.2f}): "
            f"{reading.explanation}"
        )
        lines += [f"- {finding}" for finding in reading.findings]
    lines.append("Needs a person because: " + "; ".join(decision.reasons) + ".")
    return "\n".join(lines)
