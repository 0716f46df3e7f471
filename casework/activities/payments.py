"""Payment tools. Every write carries an idempotency key, so a retried payment pays once."""

from __future__ import annotations

from decimal import Decimal

import httpx
from pydantic import BaseModel
from temporalio import activity

from casework.activities.http import call
from casework.records import Payment


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


class PaymentActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

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
