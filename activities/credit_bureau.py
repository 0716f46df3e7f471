"""Credit bureau tools. The request is a tool call; the report arrives later as a message, routed
to the case by application ID (``demos.loan_messages``), and the case reads the bureau's answer
back by its own request ID before it believes it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from temporalio import activity

from activities.lending import Amount, Message
from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class CreditReportRequest(Record):
    """The bureau's receipt for a report request; the report itself arrives later, as a message."""

    request_id: str
    application_id: str
    subject_id: str
    status: str
    """``pending`` until the bureau answers, then ``answered``."""
    report: CreditReport | None = None
    """The bureau's answer, once there is one: the copy a case believes."""


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


class ReportOrder(BaseModel):
    application_id: str
    subject_id: str
    reference: str
    idempotency_key: str


class ReportRequestLookup(BaseModel):
    request_id: str


class CreditBureauActivities(SystemActivities):
    system = "credit bureau"

    @activity.defn(name="credit_bureau.request_report")
    async def request_report(self, order: ReportOrder) -> CreditReportRequest:
        return CreditReportRequest.model_validate(
            await call(
                self._client,
                "POST",
                "/credit-bureau/requests",
                json=order.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=order.idempotency_key,
            )
        )

    @read_only_tool(
        name="get_credit_report_request",
        description="A credit report request: its status and, once answered, the report.",
    )
    @activity.defn(name="credit_bureau.get_request")
    async def get_request(self, lookup: ReportRequestLookup) -> CreditReportRequest:
        """The request as the bureau keeps it, with its report once it has answered."""
        return CreditReportRequest.model_validate(
            await call(self._client, "GET", f"/credit-bureau/requests/{lookup.request_id}")
        )
