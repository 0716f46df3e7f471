"""Customer onboarding's systems faked by activity name, for its workflow tests and histories.

The fakes keep one ledger of what each write made and what each undo closed, in order
(``writes``), so a test can check that compensation undid everything, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agents.customer_onboarding import IdentityReading
from activities.cards import CardOrder, CardOrderCancellation, CardOrderRequest, CardOrderSearch
from activities.core_banking import Account, AccountClosing, AccountOpening, AccountSearch
from activities.crm import (
    CustomerClosing,
    CustomerRegistration,
    RegistrationRequest,
    RegistrationSearch,
)
from activities.kyc import (
    IdentityCheck,
    IdentityLookup,
    IdentityVerification,
    RegisteredIdentity,
    SanctionsCheck,
    SanctionsHit,
    SanctionsScreening,
)
from activities.online_banking import Login, LoginCreation, LoginRevocation, LoginSearch
from activities.pep import PepCheck, PepMatch, PepScreening
from casework.agents.messages import AgentRequest
from casework.testing.fakes import FakeAgent, FakeOutbox, fake, not_found
from workflows.customer_onboarding import CustomerOnboardingInput

FULL_NAME = "Anna Louise Martin"
BORN = date(1985, 3, 14)
EMAIL = "anna.martin@example.org"
AT = datetime(2026, 1, 1, tzinfo=UTC)


def document_number(application_id: str) -> str:
    return "P" + "".join(ch for ch in application_id.upper() if ch.isalnum())[-12:]


def passport_text(number: str, name: str = FULL_NAME, born: date = BORN) -> str:
    """An identity document's text as a scanner reads it."""
    return (
        "PASSPORT\n"
        f"Name: {name}\n"
        f"Date of birth: {born.isoformat()}\n"
        f"Document number: {number}\n"
        "Nationality: FR\n"
        "Date of expiry: 2031-05-01\n"
    )


def application(application_id: str, **fields: Any) -> CustomerOnboardingInput:
    number = fields.pop("document_number", document_number(application_id))
    values: dict[str, Any] = {
        "application_id": application_id,
        "submitted_by": "alice",
        "full_name": FULL_NAME,
        "date_of_birth": BORN,
        "nationality": "FR",
        "email": EMAIL,
        "document_number": number,
        "identity_document": passport_text(number),
    }
    return CustomerOnboardingInput(**(values | fields))


def honest_reading(request: CustomerOnboardingInput) -> IdentityReading:
    """What a faithful reader reads in the application's document (the stand-in's reading)."""
    return IdentityReading(
        document_kind="passport",
        full_name=request.full_name,
        date_of_birth=request.date_of_birth,
        document_number=request.document_number,
        nationality=request.nationality,
        confidence=0.95,
    )


def withdrawal(reason: str = "I changed my mind") -> dict[str, str]:
    return {"reason": reason, "requested_by": FULL_NAME}


def rejected(what: str) -> ApplicationError:
    return ApplicationError(f"{what} refused", type="RequestRejected", non_retryable=True)


@dataclass(kw_only=True)
class FakeOnboardingSystems(FakeAgent, FakeOutbox):
    """KYC, the PEP register, core banking, CRM, online banking, cards and the reader."""

    request: CustomerOnboardingInput
    reading: IdentityReading | None = None
    """What the reader answers; None: a faithful reading of the application's document."""
    registered: RegisteredIdentity | None = None
    """The KYC registry's record of the document; None: as the application states it."""
    in_registry: bool = True
    verified: bool = True
    sanctions_hit: bool = False
    pep_match: bool = False
    withdraw_during: str | None = None
    """The activity during which the applicant withdraws (the signal arrives while it runs)."""
    lost_answer_at: str | None = None
    """The provisioning activity whose write is made but whose every answer is lost: it fails
    for good, and only a lookup by application finds what it made."""
    writes: list[str] = field(default_factory=list)
    """``made <id>`` and ``undid <id>`` in the order they happened."""
    made: dict[str, BaseModel] = field(default_factory=dict)
    """What each provisioning activity made, by activity name."""

    def agent_answer_to(self, request: AgentRequest) -> BaseModel:
        return self.reading or honest_reading(self.request)

    def _made(self, name: str, record: BaseModel, record_id: str) -> Any:
        self.writes.append(f"made {record_id}")
        self.made[name] = record
        if self.lost_answer_at == name:
            raise ApplicationError(
                f"{name}: no answer after every attempt",
                type="SystemUnavailable",
                non_retryable=True,
            )
        return record

    def _found(self, name: str) -> list[Any]:
        return [self.made[name]] if name in self.made else []

    async def _maybe_withdraw(self, name: str) -> None:
        if self.withdraw_during == name:
            handle = activity.client().get_workflow_handle(activity.info().workflow_id)
            await handle.signal("withdraw", withdrawal())

    # -- KYC and the PEP register ------------------------------------------------------------

    @fake("kyc.get_identity")
    async def get_identity(self, lookup: IdentityLookup) -> RegisteredIdentity:
        if not self.in_registry:
            raise not_found(f"identity document {lookup.document_number}")
        return self.registered or RegisteredIdentity(
            document_number=self.request.document_number,
            full_name=self.request.full_name,
            date_of_birth=self.request.date_of_birth,
            status="valid",
        )

    @fake("kyc.verify_identity")
    async def verify_identity(self, check: IdentityCheck) -> IdentityVerification:
        await self._maybe_withdraw("kyc.verify_identity")
        if self.verified:
            return IdentityVerification(verification_id="IDV-1", status="verified")
        return IdentityVerification(
            verification_id="IDV-1",
            status="failed",
            reasons=[f"identity document {check.document_number} is not in the registry"],
        )

    @fake("kyc.screen_sanctions")
    async def screen_sanctions(self, check: SanctionsCheck) -> SanctionsScreening:
        hits = (
            [SanctionsHit(entry_id="SAN-1", name=check.full_name, program="EU consolidated list")]
            if self.sanctions_hit
            else []
        )
        return SanctionsScreening(
            screening_id="SCR-1", status="hit" if hits else "clear", hits=hits
        )

    @fake("pep.screen")
    async def screen_pep(self, check: PepCheck) -> PepScreening:
        matches = (
            [PepMatch(entry_id="PEP-1", name=check.full_name, position="Mayor", country="FR")]
            if self.pep_match
            else []
        )
        return PepScreening(
            screening_id="PEP-1", status="match" if matches else "clear", matches=matches
        )

    # -- provisioning ------------------------------------------------------------------------

    @fake("core_banking.open_account")
    async def open_account(self, opening: AccountOpening) -> Account:
        await self._maybe_withdraw("core_banking.open_account")
        return self._made(
            "core_banking.open_account",
            Account(
                account_id="ACC-1",
                application_id=opening.application_id,
                holder_name=opening.holder_name,
                product=opening.product,
                currency=opening.currency,
                status="open",
                opened_at=AT,
            ),
            "ACC-1",
        )

    @fake("core_banking.find_accounts")
    async def find_accounts(self, search: AccountSearch) -> list[Account]:
        return self._found("core_banking.open_account")

    @fake("core_banking.close_account")
    async def close_account(self, closing: AccountClosing) -> Account:
        self.writes.append(f"undid {closing.account_id}")
        return Account(
            account_id=closing.account_id,
            application_id=self.request.application_id,
            holder_name=self.request.full_name,
            product="current_account",
            currency="EUR",
            status="closed",
            opened_at=AT,
            closed_at=AT,
            close_reason=closing.reason,
        )

    @fake("crm.register_customer")
    async def register_customer(self, request: RegistrationRequest) -> CustomerRegistration:
        await self._maybe_withdraw("crm.register_customer")
        return self._made(
            "crm.register_customer",
            CustomerRegistration(
                customer_id="CRM-1",
                application_id=request.application_id,
                name=request.name,
                email=request.email,
                status="active",
                registered_at=AT,
            ),
            "CRM-1",
        )

    @fake("crm.find_registrations")
    async def find_registrations(self, search: RegistrationSearch) -> list[CustomerRegistration]:
        return self._found("crm.register_customer")

    @fake("crm.close_customer")
    async def close_customer(self, closing: CustomerClosing) -> CustomerRegistration:
        self.writes.append(f"undid {closing.customer_id}")
        return CustomerRegistration(
            customer_id=closing.customer_id,
            application_id=self.request.application_id,
            name=self.request.full_name,
            email=self.request.email,
            status="closed",
            registered_at=AT,
            closed_at=AT,
            close_reason=closing.reason,
        )

    @fake("online_banking.create_login")
    async def create_login(self, creation: LoginCreation) -> Login:
        await self._maybe_withdraw("online_banking.create_login")
        return self._made(
            "online_banking.create_login",
            Login(
                login_id="LGN-1",
                application_id=creation.application_id,
                customer_id=creation.customer_id,
                username=creation.username,
                email=creation.email,
                status="active",
                created_at=AT,
            ),
            "LGN-1",
        )

    @fake("online_banking.find_logins")
    async def find_logins(self, search: LoginSearch) -> list[Login]:
        return self._found("online_banking.create_login")

    @fake("online_banking.revoke_login")
    async def revoke_login(self, revocation: LoginRevocation) -> Login:
        self.writes.append(f"undid {revocation.login_id}")
        return Login(
            login_id=revocation.login_id,
            application_id=self.request.application_id,
            customer_id="CRM-1",
            username="anna",
            email=self.request.email,
            status="revoked",
            created_at=AT,
            revoked_at=AT,
            revoke_reason=revocation.reason,
        )

    @fake("cards.order_card")
    async def order_card(self, request: CardOrderRequest) -> CardOrder:
        await self._maybe_withdraw("cards.order_card")
        return self._made(
            "cards.order_card",
            CardOrder(
                order_id="CRD-1",
                application_id=request.application_id,
                account_id=request.account_id,
                cardholder_name=request.cardholder_name,
                card_type="debit",
                status="ordered",
                ordered_at=AT,
            ),
            "CRD-1",
        )

    @fake("cards.find_orders")
    async def find_orders(self, search: CardOrderSearch) -> list[CardOrder]:
        return self._found("cards.order_card")

    @fake("cards.cancel_order")
    async def cancel_order(self, cancellation: CardOrderCancellation) -> CardOrder:
        self.writes.append(f"undid {cancellation.order_id}")
        return CardOrder(
            order_id=cancellation.order_id,
            application_id=self.request.application_id,
            account_id="ACC-1",
            cardholder_name=self.request.full_name,
            card_type="debit",
            status="cancelled",
            ordered_at=AT,
            cancelled_at=AT,
            cancel_reason=cancellation.reason,
        )
