"""Records and messages of the loan-origination process; pure pydantic, safe in workflow code.

Records are what the lending system, the KYC service, the credit bureau and fraud monitoring
return (unknown fields ignored, like ``activities.records``). Messages are what arrives from
outside the company while a case runs: the bureau's report, the applicant's reply, a fraud
alert. Each names the application it is for, which is how it is routed to its case
(``casework.correlation``) and how the case checks it was meant for it; and each names where its
source keeps it (request, message or alert ID), which is how the case confirms it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from activities.records import Record

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


class IdentityVerification(Record):
    verification_id: str
    status: Literal["verified", "failed"]
    reasons: list[str] = Field(default_factory=list)


class SanctionsHit(Record):
    entry_id: str
    name: str
    program: str
    matched_on: list[str] = Field(default_factory=list)


class SanctionsScreening(Record):
    screening_id: str
    status: Literal["clear", "hit"]
    hits: list[SanctionsHit] = Field(default_factory=list)


class CreditReportRequest(Record):
    """The bureau's receipt for a report request; the report itself arrives later, as a message."""

    request_id: str
    application_id: str
    subject_id: str
    status: str
    """``pending`` until the bureau answers, then ``answered``."""
    report: CreditReport | None = None
    """The bureau's answer, once there is one: the copy a case believes."""


class ApplicantMessage(Record):
    """What the applicant sent about the application, as the lending system received it."""

    message_id: str
    application_id: str
    text: str
    documents: list[IncomeDocument] = Field(default_factory=list)
    received_at: datetime


class RaisedFraudAlert(Record):
    """An alert as fraud monitoring keeps it."""

    alert_id: str
    application_id: str
    reason: str
    source: str
    raised_at: datetime


# -- messages from outside -------------------------------------------------------------------


class Message(BaseModel):
    # A message is checked field by field when it reaches the case; a misspelt field is a
    # malformed message, recorded and ignored, never half-understood.
    model_config = ConfigDict(extra="forbid")

    application_id: ApplicationId


class CreditReport(Message):
    """The credit bureau's answer to a report request."""

    report_id: str = Field(min_length=1, max_length=64)
    request_id: str = Field(min_length=1, max_length=64)
    subject_id: str = Field(min_length=1, max_length=64)
    score: int = Field(ge=300, le=850)
    monthly_debt_payments: Amount
    """What the subject already pays each month on other credit."""
    defaults: int = Field(ge=0)
    """Defaults and insolvencies on file."""
    issued_at: datetime


class CustomerReply(Message):
    """The applicant's answer to a request for more information, with any new documents."""

    text: str = Field(min_length=1, max_length=5000)
    documents: list[IncomeDocument] = Field(default_factory=list)
    message_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Where the lending system keeps the reply (``POST /lending/applications/{id}/messages``):
    the case reads it back from there and believes only that copy."""


class FraudAlert(Message):
    """Fraud monitoring flags the application; after approval it reverses the loan. The case
    reads the alert back from fraud monitoring by ``alert_id`` and acts only on that copy."""

    alert_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    source: str = Field(default="fraud-monitoring", min_length=1, max_length=200)
