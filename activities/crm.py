"""CRM tools for customer service: the customer record, refund notes written on it, and the
customers an onboarding registers (and closes again when it is undone)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Customer(Record):
    customer_id: str
    name: str
    email: str
    tier: str
    status: str = "active"
    customer_since: date | None = None


class RefundNote(Record):
    note_id: str
    customer_id: str
    order_id: str
    refund_id: str
    amount: Decimal
    currency: str
    note: str


class CustomerRegistration(Record):
    customer_id: str
    application_id: str
    name: str
    email: str
    status: str
    registered_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None


class RegistrationRequest(BaseModel):
    application_id: str
    name: str
    email: str
    idempotency_key: str


class RegistrationSearch(BaseModel):
    """Look up the customers registered for an onboarding application."""

    application_id: str


class CustomerClosing(BaseModel):
    customer_id: str
    reason: str
    idempotency_key: str


class CustomerLookup(BaseModel):
    customer_id: str


class RefundNoteRequest(BaseModel):
    customer_id: str
    order_id: str
    refund_id: str
    amount: Decimal
    currency: str
    note: str
    case_id: str | None = None
    idempotency_key: str


class CrmActivities(SystemActivities):
    system = "CRM (customers)"

    @read_only_tool(
        description="Read a customer's CRM record: name, tier, contact details, account standing."
    )
    @activity.defn(name="crm.get_customer")
    async def get_customer(self, lookup: CustomerLookup) -> Customer:
        return Customer.model_validate(
            await call(self._client, "GET", f"/crm/customers/{lookup.customer_id}")
        )

    @activity.defn(name="crm.add_refund_note")
    async def add_refund_note(self, request: RefundNoteRequest) -> RefundNote:
        return RefundNote.model_validate(
            await call(
                self._client,
                "POST",
                f"/crm/customers/{request.customer_id}/refund-notes",
                json=request.model_dump(mode="json", exclude={"customer_id", "idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="crm.register_customer")
    async def register_customer(self, request: RegistrationRequest) -> CustomerRegistration:
        return CustomerRegistration.model_validate(
            await call(
                self._client,
                "POST",
                "/crm/customers/registrations",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="crm.find_registrations")
    async def find_registrations(self, search: RegistrationSearch) -> list[CustomerRegistration]:
        found = await call(
            self._client,
            "GET",
            "/crm/customers/registrations",
            params={"application_id": search.application_id},
        )
        return [CustomerRegistration.model_validate(record) for record in found]

    @activity.defn(name="crm.close_customer")
    async def close_customer(self, closing: CustomerClosing) -> CustomerRegistration:
        return CustomerRegistration.model_validate(
            await call(
                self._client,
                "POST",
                f"/crm/customers/{closing.customer_id}/close",
                json={"reason": closing.reason},
                idempotency_key=closing.idempotency_key,
            )
        )
