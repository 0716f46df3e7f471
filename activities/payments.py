"""Payment tools. Every write carries an idempotency key, so a retried payment pays once and a
retried refund refunds once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Refund(Record):
    refund_id: str
    order_id: str
    customer_id: str
    amount: Decimal
    currency: str
    status: str
    """``issued`` or ``reversed``."""
    idempotency_key: str | None = None
    reason: str | None = None
    created_at: datetime | None = None
    reversed_at: datetime | None = None


class Payment(Record):
    payment_id: str
    invoice_id: str
    supplier_id: str
    amount: Decimal
    currency: str
    status: str
    idempotency_key: str | None = None
    reference: str | None = None


class PaymentRequest(BaseModel):
    invoice_id: str
    supplier_id: str
    amount: Decimal
    currency: str
    reference: str | None = None
    idempotency_key: str


class DisbursementRequest(BaseModel):
    application_id: str
    borrower_id: str
    amount: Decimal
    currency: str
    reference: str | None = None
    idempotency_key: str


class PaymentReversal(BaseModel):
    payment_id: str
    reason: str
    idempotency_key: str


class RefundRequest(BaseModel):
    order_id: str
    customer_id: str
    amount: Decimal
    currency: str
    reason: str | None = None
    reference: str | None = None
    idempotency_key: str


class RefundReversal(BaseModel):
    refund_id: str
    reason: str
    idempotency_key: str


class RefundLookup(BaseModel):
    """A customer's refunds: their refund history, and what was refunded on each order."""

    customer_id: str


_refunds = TypeAdapter(list[Refund])


class PaymentLookup(BaseModel):
    invoice_id: str
    idempotency_key: str


class InvoicePaymentsLookup(BaseModel):
    invoice_id: str


_payments = TypeAdapter(list[Payment])


class PaymentActivities(SystemActivities):
    system = "payments"

    @activity.defn(name="payments.pay")
    async def pay(self, request: PaymentRequest) -> Payment:
        body = request.model_dump(mode="json", exclude={"idempotency_key"})
        return Payment.model_validate(
            await call(
                self._client,
                "POST",
                "/payments",
                json=body,
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="payments.disburse")
    async def disburse(self, request: DisbursementRequest) -> Payment:
        """Pay out a loan; it lands in the same ledger as payments and reverses like one."""
        return Payment.model_validate(
            await call(
                self._client,
                "POST",
                "/payments/disbursements",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="payments.reverse")
    async def reverse(self, reversal: PaymentReversal) -> Payment:
        return Payment.model_validate(
            await call(
                self._client,
                "POST",
                f"/payments/{reversal.payment_id}/reverse",
                json={"reason": reversal.reason},
                idempotency_key=reversal.idempotency_key,
            )
        )

    @activity.defn(name="payments.issue_refund")
    async def issue_refund(self, request: RefundRequest) -> Refund:
        return Refund.model_validate(
            await call(
                self._client,
                "POST",
                "/payments/refunds",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="payments.reverse_refund")
    async def reverse_refund(self, reversal: RefundReversal) -> Refund:
        return Refund.model_validate(
            await call(
                self._client,
                "POST",
                f"/payments/refunds/{reversal.refund_id}/reverse",
                json={"reason": reversal.reason},
                idempotency_key=reversal.idempotency_key,
            )
        )

    @read_only_tool(
        description="List a customer's refunds in the payments ledger, and what each refunded."
    )
    @activity.defn(name="payments.list_refunds")
    async def list_refunds(self, lookup: RefundLookup) -> list[Refund]:
        return _refunds.validate_python(
            await call(
                self._client,
                "GET",
                "/payments/refunds",
                params={"customer_id": lookup.customer_id},
            )
        )

    @read_only_tool(
        name="find_payment",
        description="The payment made for an invoice under one idempotency key, if any.",
    )
    @activity.defn(name="payments.find")
    async def find(self, lookup: PaymentLookup) -> Payment | None:
        """The payment made under ``idempotency_key``, if any.

        After a payment whose answers were all lost, only the ledger can say whether it went
        through; the key is the case's own, so nothing else can have made it.
        """
        rows = await call(
            self._client, "GET", "/payments", params={"invoice_id": lookup.invoice_id}
        )
        for row in rows:
            if row.get("idempotency_key") == lookup.idempotency_key:
                return Payment.model_validate(row)
        return None

    @read_only_tool(description="List the payments the ledger holds for an invoice.")
    @activity.defn(name="payments.list_invoice_payments")
    async def list_invoice_payments(self, lookup: InvoicePaymentsLookup) -> list[Payment]:
        return _payments.validate_python(
            await call(self._client, "GET", "/payments", params={"invoice_id": lookup.invoice_id})
        )
