"""Customer onboarding: identity checked, screened, risk rated, then provisioned across systems.

Flow: load policy -> look the applicant's document up in the KYC registry -> the identity reader
reads the identity document, and its name, date of birth and document number are checked against
the document's text, the application and the registry -> the KYC service verifies the identity
-> sanctions and PEP screening run in parallel -> the policy rates the risk: a failed
verification or a sanctions hit rejects; high risk goes to enhanced due diligence by
``compliance_officer`` (escalating to ``head_of_compliance`` when the SLA passes, on hold at the
final timeout) -> provisioning in order: core-banking account, CRM customer, online-banking
login, card order, welcome message. Each write carries an idempotency key and registers its undo
on a ``Saga``: a step that fails for good undoes the earlier ones, newest first. A ``withdraw``
signal at any point ends the case: open tasks are withdrawn, everything provisioned so far is
undone, and the result says what was compensated.
"""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from activities.agents.customer_onboarding import (
        IDENTITY_READER,
        IDENTITY_READER_AGENT,
        check_reading,
    )
    from activities.cards import (
        CardActivities,
        CardOrder,
        CardOrderCancellation,
        CardOrderRequest,
        CardOrderSearch,
    )
    from activities.core_banking import (
        Account,
        AccountClosing,
        AccountOpening,
        AccountSearch,
        CoreBankingActivities,
    )
    from activities.crm import (
        CrmActivities,
        CustomerClosing,
        CustomerRegistration,
        RegistrationRequest,
        RegistrationSearch,
    )
    from activities.kyc import (
        IdentityCheck,
        IdentityLookup,
        IdentityVerification,
        KycActivities,
        RegisteredIdentity,
        SanctionsCheck,
        SanctionsScreening,
    )
    from activities.online_banking import (
        Login,
        LoginCreation,
        LoginRevocation,
        LoginSearch,
        OnlineBankingActivities,
    )
    from activities.pep import PepActivities, PepCheck, PepScreening
    from casework import search_attributes as sa
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        ApprovalOutcome,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        Ending,
        Saga,
        compensation_summary,
    )
    from casework.case.tasks import DecisionAction
    from casework.governance.models import PolicyRef
    from casework.systems.http import RECORD_NOT_FOUND
    from casework.systems.notifications import NotificationActivities, NotificationRequest
    from policies.customer_onboarding import (
        Applicant,
        CustomerOnboardingPolicy,
        OnboardingDecision,
        OnboardingRoute,
        RiskRating,
        decide_onboarding,
    )

# The sandbox's limit for notes and message bodies.
MAX_TEXT = 2000
FINDS_UNANSWERED_WRITES = "onboarding-finds-unanswered-writes"
"""Patch ID: a provisioning step that fails for good is looked for by application before the
undo, so a write made with every answer lost is undone too. Cases before it did not look."""


class CustomerOnboardingInput(BaseModel):
    # Unknown keys are refused so that a misspelt field fails at start, by name.
    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    submitted_by: str = Field(min_length=1, description="Directory user who opened the case.")
    full_name: str = Field(min_length=1, max_length=200, description="As the applicant gave it.")
    date_of_birth: date
    nationality: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2.")
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    document_number: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    identity_document: str = Field(
        min_length=1, max_length=20000, description="The identity document's text, as scanned."
    )
    username: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9._-]{2,31}$",
        description="The online-banking username the applicant chose (default: from the "
        "application ID).",
    )


class Withdrawal(BaseModel):
    """The applicant withdraws: whatever was provisioned is undone."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)
    requested_by: str = Field(default="the applicant", min_length=1, max_length=200)


class OnboardingStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    ONBOARDED = "onboarded"
    WITHDRAWN = "withdrawn"


class Outcome(StrEnum):
    ONBOARDED = "onboarded"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    DUE_DILIGENCE_TIMED_OUT = "due_diligence_timed_out"
    FAILED_COMPENSATED = "failed_compensated"


class CustomerOnboardingResult(BaseModel):
    case_id: str
    application_id: str
    status: str
    outcome: Outcome
    message: str
    risk: RiskRating | None = None
    risk_score: int | None = None
    decided_by: str | None = None
    account_id: str | None = None
    customer_id: str | None = None
    login_id: str | None = None
    card_order_id: str | None = None
    provisioned: list[str] = []
    compensated: list[str] = []
    compensation_failed: list[str] = []
    policy: PolicyRef


class Provisioned(BaseModel):
    """What the case has written so far, by system."""

    account: Account | None = None
    customer: CustomerRegistration | None = None
    login: Login | None = None
    card: CardOrder | None = None
    welcomed: bool = False

    def described(self) -> list[str]:
        done = [
            f"account {self.account.account_id}" if self.account else "",
            f"CRM customer {self.customer.customer_id}" if self.customer else "",
            f"online-banking login {self.login.login_id}" if self.login else "",
            f"card order {self.card.order_id}" if self.card else "",
            "welcome message" if self.welcomed else "",
        ]
        return [item for item in done if item]


class Withdrawn(Exception):
    """Raised inside the case when a withdrawal has arrived; ends it through ``_withdrawn``."""


@workflow.defn(name="CustomerOnboarding")
class CustomerOnboardingWorkflow(CaseWorkflow):
    case_type = "customer-onboarding"
    description = (
        "verify an applicant's identity, screen and rate the risk; provision accounts with undo"
    )
    input_model = CustomerOnboardingInput
    business_key = "application_id"
    statuses = OnboardingStatus

    def __init__(self) -> None:
        super().__init__()
        self._saga = Saga()
        self._provisioned = Provisioned()
        self._withdrawal: Withdrawal | None = None
        self._settled = False
        """Onboarded, rejected or withdrawn: a withdrawal now changes nothing."""
        self._decision: OnboardingDecision | None = None
        self._undo_reason = "the onboarding was undone"
        self._finds_unanswered_writes = False
        """Why the saga undoes what it does, as each system records it on the closed record."""

    @workflow.run
    async def run(self, request: CustomerOnboardingInput) -> CustomerOnboardingResult:
        self._finds_unanswered_writes = workflow.patched(FINDS_UNANSWERED_WRITES)
        self.begin(
            request,
            request.submitted_by,
            f"Customer onboarding {request.application_id}",
            f"{request.submitted_by} opened onboarding of {request.full_name} "
            f"(application {request.application_id})",
        )
        self._facts.update(application_id=request.application_id, applicant=request.full_name)
        policy, ref = await self.load_governance(CustomerOnboardingPolicy)
        try:
            try:
                result = await self._onboard(request, policy, ref)
            except Withdrawn:
                result = await self._withdrawn(request, ref)
        except asyncio.CancelledError:
            self.withdraw_open_tasks("the case was cancelled")
            self._undo_reason = f"onboarding {request.application_id}: the case was cancelled"
            self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))
            raise
        return await self.complete(result)

    # -- the steps --------------------------------------------------------------------------

    async def _onboard(
        self, request: CustomerOnboardingInput, policy: CustomerOnboardingPolicy, ref: PolicyRef
    ) -> CustomerOnboardingResult:
        registered = await self._registered_identity(request)
        self._unless_withdrawn()
        reading = await self._read_document(request, policy, registered)
        self._unless_withdrawn()
        verification: IdentityVerification = await self.call_tool(
            KycActivities.verify_identity,
            IdentityCheck(
                full_name=request.full_name,
                date_of_birth=request.date_of_birth,
                document_number=request.document_number,
                reference=request.application_id,
                idempotency_key=self.idempotency_key("kyc-verification"),
            ),
            summary=f"KYC verification of document {request.document_number}",
        )
        self._unless_withdrawn()
        sanctions, pep = await self._screen(request)
        self._unless_withdrawn()

        decision = decide_onboarding(
            policy,
            ref,
            Applicant(
                full_name=request.full_name,
                date_of_birth=request.date_of_birth,
                nationality=request.nationality,
            ),
            reading.answer,
            reading.checks,
            verification,
            sanctions,
            pep,
        )
        self._decision = decision
        self.record_decision(decision)
        workflow.upsert_search_attributes([sa.CASE_RISK.value_set(decision.risk.value)])
        self._facts.update(risk=decision.risk.value, risk_score=decision.score)

        if decision.route is OnboardingRoute.REJECT:
            return await self._reject(request, ref, "; ".join(decision.reasons), "policy")
        decided_by = "policy"
        if decision.route is OnboardingRoute.DUE_DILIGENCE:
            outcome = await self._due_diligence(request, policy, decision)
            human = outcome.decision
            if human is None:
                ending = await self.put_on_hold(
                    "enhanced due diligence: no decision in time at any tier; nothing provisioned",
                    notify_roles=policy.due_diligence.final_timeout.notify_roles,
                    subject=f"Customer onboarding {request.application_id} timed out",
                    tell_submitter=f"Customer onboarding {request.application_id} on hold",
                )
                return self._result(request, ref, Outcome.DUE_DILIGENCE_TIMED_OUT, ending)
            if human.action == DecisionAction.REJECT:
                return await self._reject(
                    request,
                    ref,
                    f"enhanced due diligence: rejected by {human.approver}: {human.comment}",
                    human.approver,
                )
            decided_by = human.approver
        self._unless_withdrawn()
        return await self._provision(request, policy, ref, decided_by)

    async def _registered_identity(
        self, request: CustomerOnboardingInput
    ) -> RegisteredIdentity | None:
        """The document as the KYC registry holds it; None when the registry has no such one."""
        try:
            found: RegisteredIdentity = await self.call_tool(
                KycActivities.get_identity,
                IdentityLookup(document_number=request.document_number),
                summary=f"looked up document {request.document_number} in the KYC registry",
            )
        except ActivityError as error:
            if not (
                isinstance(error.cause, ApplicationError) and error.cause.type == RECORD_NOT_FOUND
            ):
                raise
            return None
        return found

    async def _read_document(
        self,
        request: CustomerOnboardingInput,
        policy: CustomerOnboardingPolicy,
        registered: RegisteredIdentity | None,
    ) -> Any:
        application = {
            "full_name": request.full_name,
            "date_of_birth": request.date_of_birth,
            "document_number": request.document_number,
        }
        registry = registered.model_dump() if registered is not None else None
        return await self.consult(
            IDENTITY_READER_AGENT,
            reader_context(request),
            settings=IDENTITY_READER_AGENT.settings_in(policy.agents),
            check=lambda reading: check_reading(
                reading, request.identity_document, application, registry
            ),
            failure=f"{IDENTITY_READER} could not read the identity document",
        )

    async def _screen(
        self, request: CustomerOnboardingInput
    ) -> tuple[SanctionsScreening, PepScreening]:
        """Sanctions and PEP screening at once: neither waits for the other."""
        sanctions, pep = await asyncio.gather(
            self.call_tool(
                KycActivities.screen_sanctions,
                SanctionsCheck(
                    full_name=request.full_name,
                    date_of_birth=request.date_of_birth,
                    country=request.nationality,
                    reference=request.application_id,
                    idempotency_key=self.idempotency_key("sanctions-screening"),
                ),
                summary="sanctions screening",
            ),
            self.call_tool(
                PepActivities.screen,
                PepCheck(
                    full_name=request.full_name,
                    date_of_birth=request.date_of_birth,
                    reference=request.application_id,
                    idempotency_key=self.idempotency_key("pep-screening"),
                ),
                summary="PEP screening",
            ),
        )
        self._facts.update(sanctions=sanctions.status, pep=pep.status)
        return sanctions, pep

    async def _due_diligence(
        self,
        request: CustomerOnboardingInput,
        policy: CustomerOnboardingPolicy,
        decision: OnboardingDecision,
    ) -> ApprovalOutcome:
        """Compliance decides on a high-risk applicant; a withdrawal meanwhile ends the wait and
        withdraws their task, so a decision sent for it later is refused."""
        deciding = asyncio.create_task(
            self.request_approval(
                ApprovalRequest(
                    title=f"Enhanced due diligence: {request.full_name} ({request.application_id})",
                    summary=f"{request.full_name}, born {request.date_of_birth}, nationality "
                    f"{request.nationality}, document {request.document_number}. Risk score "
                    f"{decision.score} is high: " + "; ".join(decision.findings),
                    evidence={"findings": decision.findings, "risk_score": decision.score},
                    amount=Decimal(0),
                    currency="",
                    tiers=policy.due_diligence.tiers,
                    start_tier=0,
                    escalate=policy.due_diligence.escalate,
                )
            )
        )
        await workflow.wait_condition(lambda: deciding.done() or self._withdrawal is not None)
        if deciding.done():
            return deciding.result()
        deciding.cancel()
        # The task ends cancelled; any other end is an error to surface.
        (end,) = await asyncio.gather(deciding, return_exceptions=True)
        if isinstance(end, BaseException) and not isinstance(end, asyncio.CancelledError):
            raise end
        raise Withdrawn

    async def _provision(
        self,
        request: CustomerOnboardingInput,
        policy: CustomerOnboardingPolicy,
        ref: PolicyRef,
        decided_by: str,
    ) -> CustomerOnboardingResult:
        """Write to each system in order, each write registering its undo; a step that fails for
        good undoes the earlier ones, newest first."""
        self.set_status(CaseStatus.EXECUTING)
        done = self._provisioned
        step = "account"
        try:
            account = self._keep_account(
                await self.call_tool(
                    CoreBankingActivities.open_account,
                    AccountOpening(
                        application_id=request.application_id,
                        holder_name=request.full_name,
                        product=policy.products.account,
                        currency=policy.products.currency,
                        idempotency_key=self.idempotency_key("account"),
                    ),
                    summary="opened a core-banking account",
                )
            )
            self._unless_withdrawn()

            step = "CRM customer"
            customer = self._keep_customer(
                await self.call_tool(
                    CrmActivities.register_customer,
                    RegistrationRequest(
                        application_id=request.application_id,
                        name=request.full_name,
                        email=request.email,
                        idempotency_key=self.idempotency_key("crm-customer"),
                    ),
                    summary="registered the CRM customer",
                )
            )
            self._unless_withdrawn()

            step = "online-banking login"
            login = self._keep_login(
                await self.call_tool(
                    OnlineBankingActivities.create_login,
                    LoginCreation(
                        application_id=request.application_id,
                        customer_id=customer.customer_id,
                        username=request.username or request.application_id.lower(),
                        email=request.email,
                        idempotency_key=self.idempotency_key("login"),
                    ),
                    summary="created the online-banking login",
                )
            )
            self._unless_withdrawn()

            step = "card order"
            card = self._keep_card(
                await self.call_tool(
                    CardActivities.order_card,
                    CardOrderRequest(
                        application_id=request.application_id,
                        account_id=account.account_id,
                        cardholder_name=request.full_name,
                        idempotency_key=self.idempotency_key("card"),
                    ),
                    summary="ordered the debit card",
                )
            )
            self._unless_withdrawn()

            # The last step: a letter cannot be unsent, and nothing after it can fail.
            step = "welcome message"
            await self._write_to_applicant(
                request,
                f"Welcome, {request.full_name}",
                f"Your account {account.account_id} is open; sign in to online banking as "
                f"{login.username}. Your debit card ({card.order_id}) is on its way.",
                "welcome",
            )
            done.welcomed = True
        except ActivityError as error:
            self._undo_reason = _clip(
                f"onboarding {request.application_id} failed: provisioning the {step} failed"
            )
            if self._finds_unanswered_writes:
                await self._keep_unanswered_write(step, request)
            ending = await self.fail_compensated(
                self._saga,
                error,
                failed=f"provisioning the {step}",
                reason=f"provisioning the {step} failed",
            )
            self._settled = True
            await self.notify(
                self._requested_by,
                f"Customer onboarding {request.application_id} failed",
                ending.message,
                "failed",
            )
            return self._result(request, ref, Outcome.FAILED_COMPENSATED, ending, decided_by)
        self._settled = True
        self.set_status(OnboardingStatus.ONBOARDED)
        message = (
            f"onboarded ({', '.join(done.described())}); risk "
            f"{self._decision.risk.value if self._decision else 'unrated'}, decided by {decided_by}"
        )
        await self.notify(
            self._requested_by, f"Customer {request.full_name} onboarded", message, "onboarded"
        )
        return self._result(
            request,
            ref,
            Outcome.ONBOARDED,
            Ending(status=OnboardingStatus.ONBOARDED, message=message),
            decided_by,
        )

    async def _keep_unanswered_write(self, step: str, request: CustomerOnboardingInput) -> None:
        """The failed step's write may have been made with every answer to it lost (the outcome
        is unknown): look for it by application, and register its undo if it was made."""
        application = request.application_id
        summary = f"looked for a {step} made for {application} whose answer was lost"
        match step:
            case "account":
                for account in await self.call_tool(
                    CoreBankingActivities.find_accounts,
                    AccountSearch(application_id=application),
                    summary=summary,
                ):
                    if account.status == "open":
                        self._keep_account(account)
            case "CRM customer":
                for customer in await self.call_tool(
                    CrmActivities.find_registrations,
                    RegistrationSearch(application_id=application),
                    summary=summary,
                ):
                    if customer.status == "active":
                        self._keep_customer(customer)
            case "online-banking login":
                for login in await self.call_tool(
                    OnlineBankingActivities.find_logins,
                    LoginSearch(application_id=application),
                    summary=summary,
                ):
                    if login.status == "active":
                        self._keep_login(login)
            case "card order":
                for card in await self.call_tool(
                    CardActivities.find_orders,
                    CardOrderSearch(application_id=application),
                    summary=summary,
                ):
                    if card.status == "ordered":
                        self._keep_card(card)

    # -- what was provisioned, and how each is undone --------------------------------------

    def _keep_account(self, account: Account) -> Account:
        self._provisioned.account = account
        self._saga.add(
            f"account {account.account_id} closed",
            lambda: self.call_tool(
                CoreBankingActivities.close_account,
                AccountClosing(
                    account_id=account.account_id,
                    reason=self._undo_reason,
                    idempotency_key=self.idempotency_key("account-closing"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        return account

    def _keep_customer(self, customer: CustomerRegistration) -> CustomerRegistration:
        self._provisioned.customer = customer
        self._saga.add(
            f"CRM customer {customer.customer_id} closed",
            lambda: self.call_tool(
                CrmActivities.close_customer,
                CustomerClosing(
                    customer_id=customer.customer_id,
                    reason=self._undo_reason,
                    idempotency_key=self.idempotency_key("crm-customer-closing"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        return customer

    def _keep_login(self, login: Login) -> Login:
        self._provisioned.login = login
        self._saga.add(
            f"online-banking login {login.login_id} revoked",
            lambda: self.call_tool(
                OnlineBankingActivities.revoke_login,
                LoginRevocation(
                    login_id=login.login_id,
                    reason=self._undo_reason,
                    idempotency_key=self.idempotency_key("login-revocation"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        return login

    def _keep_card(self, card: CardOrder) -> CardOrder:
        self._provisioned.card = card
        self._saga.add(
            f"card order {card.order_id} cancelled",
            lambda: self.call_tool(
                CardActivities.cancel_order,
                CardOrderCancellation(
                    order_id=card.order_id,
                    reason=self._undo_reason,
                    idempotency_key=self.idempotency_key("card-cancellation"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        return card

    # -- endings ----------------------------------------------------------------------------

    async def _reject(
        self, request: CustomerOnboardingInput, ref: PolicyRef, why: str, decided_by: str
    ) -> CustomerOnboardingResult:
        self._settled = True
        ending = await self.close_rejected(
            f"rejected: {why}; nothing provisioned",
            letter=lambda: self._write_to_applicant(
                request,
                f"Your application {request.application_id}",
                "We are unable to open an account for you at this time.",
                "rejected",
            ),
            tell_submitter=f"Customer onboarding {request.application_id} rejected",
        )
        return self._result(request, ref, Outcome.REJECTED, ending, decided_by)

    async def _withdrawn(
        self, request: CustomerOnboardingInput, ref: PolicyRef
    ) -> CustomerOnboardingResult:
        """The applicant withdrew: withdraw open tasks, undo everything provisioned, say what."""
        withdrawal = self._withdrawal
        assert withdrawal is not None
        self._settled = True
        why = f"withdrawn by {withdrawal.requested_by}: {withdrawal.reason}"
        for task in self.withdraw_open_tasks(why):
            await self.notify_role(
                task.role,
                f"No longer needed: {task.title}",
                f"The application was {why}; nothing to decide.",
                step=f"{task.task_id}-withdrawn",
            )
        provisioned = self._provisioned.described()
        self._undo_reason = _clip(f"onboarding {request.application_id} {why}")
        report = await self.compensate(self._saga, why)
        message = f"{why}; " + (
            compensation_summary(report) if provisioned else "nothing was provisioned"
        )
        status = (
            OnboardingStatus.WITHDRAWN if report.complete else CaseStatus.FAILED_NEEDS_ATTENTION
        )
        self.set_status(status)
        await self._write_to_applicant(
            request,
            f"Your application {request.application_id} is withdrawn",
            "As you asked, we have withdrawn your application"
            + (" and closed everything we had opened for you." if provisioned else "."),
            "withdrawn",
        )
        ending = Ending(
            status=status,
            message=message,
            compensated=report.compensated,
            compensation_failed=report.failed,
        )
        return self._result(request, ref, Outcome.WITHDRAWN, ending)

    # -- helpers ----------------------------------------------------------------------------

    def _unless_withdrawn(self) -> None:
        if self._withdrawal is not None:
            raise Withdrawn

    async def _write_to_applicant(
        self, request: CustomerOnboardingInput, subject: str, body: str, step: str
    ) -> None:
        """The applicant is not in the directory: write to the application's address."""
        await self.call_tool(
            NotificationActivities.send,
            NotificationRequest(
                to=request.email,
                subject=_clip(subject),
                body=_clip(body),
                case_id=workflow.info().workflow_id,
                idempotency_key=self.idempotency_key(f"notify:{step}:applicant"),
            ),
            summary=f"wrote to the applicant: {subject}",
        )

    def _result(
        self,
        request: CustomerOnboardingInput,
        ref: PolicyRef,
        outcome: Outcome,
        ending: Ending,
        decided_by: str | None = None,
    ) -> CustomerOnboardingResult:
        done = self._provisioned
        decision = self._decision
        return CustomerOnboardingResult(
            case_id=workflow.info().workflow_id,
            application_id=request.application_id,
            outcome=outcome,
            risk=decision.risk if decision else None,
            risk_score=decision.score if decision else None,
            decided_by=decided_by,
            account_id=done.account.account_id if done.account else None,
            customer_id=done.customer.customer_id if done.customer else None,
            login_id=done.login.login_id if done.login else None,
            card_order_id=done.card.order_id if done.card else None,
            provisioned=done.described(),
            policy=ref,
            **ending.result_fields(),
        )

    # -- the applicant ----------------------------------------------------------------------

    @workflow.signal(name="withdraw")
    def withdraw(self, *payloads: Any) -> None:
        """The applicant withdraws: one ``Withdrawal``. Typed loosely on purpose: a malformed
        signal is recorded and ignored instead of failing the case's workflow tasks."""
        withdrawal = self.signal_input("withdraw", Withdrawal, payloads)
        if withdrawal is None:
            return
        reasons = []
        if self._settled:
            reasons.append("the application is already settled")
        elif self._withdrawal is not None:
            reasons.append("the application is already being withdrawn")
        if self.ignore_signal("withdrawal", withdrawal.requested_by, reasons):
            return
        self._withdrawal = withdrawal
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"{withdrawal.requested_by} withdrew the application: {withdrawal.reason}",
            withdrawal=withdrawal,
        )


def reader_context(request: CustomerOnboardingInput) -> dict[str, Any]:
    """What the identity reader is shown: only the document itself (and which application it
    came with). It is not told what the document is expected to say."""
    return {
        "application_id": request.application_id,
        "document": {"text": request.identity_document},
    }


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
