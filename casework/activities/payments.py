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


class PaymentReversal(BaseModel):
    payment_id: str
    reason: str
    idempotency_key: str


class PaymentLookup(BaseModel):
    invoice_id: str
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
