"""Credit bureau tools. The request is a tool call; the report arrives later as a message, routed
to the case by application ID (``casework.correlation``), and the case reads the bureau's answer
back by its own request ID before it believes it."""

from __future__ import annotations

import httpx
from pydantic import BaseModel
from temporalio import activity

from activities.loan_records import CreditReportRequest
from casework.systems.http import call


class ReportOrder(BaseModel):
    application_id: str
    subject_id: str
    reference: str
    idempotency_key: str


class ReportRequestLookup(BaseModel):
    request_id: str


class CreditBureauActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

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

    @activity.defn(name="credit_bureau.get_request")
    async def get_request(self, lookup: ReportRequestLookup) -> CreditReportRequest:
        """The request as the bureau keeps it, with its report once it has answered."""
        return CreditReportRequest.model_validate(
            await call(self._client, "GET", f"/credit-bureau/requests/{lookup.request_id}")
        )
