"""CRM tools for customer service: the customer record, and refund notes written on it."""

from __future__ import annotations

from datetime import date
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
