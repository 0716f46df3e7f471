"""Lending-system tools: read a loan application and what the applicant sent about it, record
what was decided about it."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record

ApplicationId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length=1, max_length=64)
]


# The systems' own bound on amounts: a message cannot carry a figure no system would hold (and
# that no amount formatting could print).
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]


class IncomeDocument(Record):
    document_id: str
    kind: str
    """``payslip`` and the other kinds the policy calls standard carry ``monthly_amount``, taken
    from the payroll feed; any other kind (a freelancer's statement, a foreign pension letter) is
    free text that the income reader agent reads."""
    description: str = ""
    text: str = ""
    monthly_amount: Amount | None = None


class Applicant(Record):
    customer_id: str
    full_name: str
    date_of_birth: date
    national_id: str
    """Identity document number: the KYC registry and the credit bureau key on it."""
    country: str
    email: str


class LoanApplication(Record):
    application_id: str
    applicant: Applicant
    amount: Decimal
    currency: str
    term_months: int
    purpose: str = ""
    declared_monthly_income: Decimal
    documents: list[IncomeDocument] = Field(default_factory=list)
    status: str
    """``submitted``, ``approved``, ``declined``, ``on_hold`` or ``approval_reversed``."""
    approved_amount: Decimal | None = None


class ApplicantMessage(Record):
    """What the applicant sent about the application, as the lending system received it."""

    message_id: str
    application_id: str
    text: str
    documents: list[IncomeDocument] = Field(default_factory=list)
    received_at: datetime


class Message(BaseModel):
    # A message is checked field by field when it reaches the case; a misspelt field is a
    # malformed message, recorded and ignored, never half-understood.
    model_config = ConfigDict(extra="forbid")

    application_id: ApplicationId


class CustomerReply(Message):
    """The applicant's answer to a request for more information, with any new documents."""

    text: str = Field(min_length=1, max_length=5000)
    documents: list[IncomeDocument] = Field(default_factory=list)
    message_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Where the lending system keeps the reply (``POST /lending/applications/{id}/messages``):
    the case reads it back from there and believes only that copy."""


class ApplicationLookup(BaseModel):
    application_id: str


class ApplicationStatusChange(BaseModel):
    application_id: str
    status: str
    """``approved``, ``declined``, ``on_hold`` or ``approval_reversed``."""
    note: str | None = None
    approved_amount: Decimal | None = None
    idempotency_key: str


class MessageLookup(BaseModel):
    application_id: str
    message_id: str


class LendingActivities(SystemActivities):
    system = "lending"

    @read_only_tool(
        name="get_loan_application",
        description="Read a loan application: applicant, amount, term, income, status.",
    )
    @activity.defn(name="lending.get_application")
    async def get_application(self, lookup: ApplicationLookup) -> LoanApplication:
        return LoanApplication.model_validate(
            await call(self._client, "GET", f"/lending/applications/{lookup.application_id}")
        )

    @activity.defn(name="lending.set_application_status")
    async def set_application_status(self, change: ApplicationStatusChange) -> LoanApplication:
        return LoanApplication.model_validate(
            await call(
                self._client,
                "POST",
                f"/lending/applications/{change.application_id}/status",
                json=change.model_dump(
                    mode="json", exclude={"application_id", "idempotency_key"}, exclude_none=True
                ),
                idempotency_key=change.idempotency_key,
            )
        )

    @read_only_tool(
        name="get_applicant_message",
        description="Read one message an applicant sent about their loan application.",
    )
    @activity.defn(name="lending.get_message")
    async def get_message(self, lookup: MessageLookup) -> ApplicantMessage:
        """A message from the applicant as the lending system received it."""
        return ApplicantMessage.model_validate(
            await call(
                self._client,
                "GET",
                f"/lending/applications/{lookup.application_id}/messages/{lookup.message_id}",
            )
        )
