"""Lending-system tools: read a loan application and what the applicant sent about it, record
what was decided about it."""

from __future__ import annotations

from decimal import Decimal

import httpx
from pydantic import BaseModel
from temporalio import activity

from activities.loan_records import ApplicantMessage, LoanApplication
from casework.systems.http import call


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


class LendingActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

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
