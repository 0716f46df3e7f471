"""Helpers for the refund process's tests: its systems faked by activity name
(``casework.testing.fakes``), and the sandbox over HTTP for the integration tests.

``FakeRefundSystems`` fakes orders, CRM, fraud signals, payments, notifications and the model
under the real activity names, for the time-skipping tests and for recording replay histories.
Dates are relative to a ``now`` the caller passes: the shared time-skipping server's clock runs
ahead of the wall clock once earlier tests have skipped through SLAs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.agents.refund import RefundProposal, RefundRecommendation
from activities.crm import Customer, CustomerLookup, RefundNote, RefundNoteRequest
from activities.erp import OrderLine
from activities.fraud import FraudSignal, FraudSignalLookup
from activities.orders import CustomerOrdersLookup, Order, OrderLookup
from activities.payments import Refund, RefundLookup, RefundRequest, RefundReversal
from casework.agents.messages import AgentRequest
from casework.systems.notifications import Notification
from casework.testing.fakes import FakeAgent, FakeOutbox, Ledger, fake, not_found
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedModel, ScriptedReply


def proposal(
    recommendation: RefundRecommendation = RefundRecommendation.APPROVE, confidence: float = 0.95
) -> RefundProposal:
    return RefundProposal(
        recommendation=recommendation,
        confidence=confidence,
        reason="scripted reason",
        evidence=["order delivered damaged"],
    )


def order(
    order_id: str,
    now: datetime,
    *,
    total: str = "30.00",
    customer_id: str = "CUS-1",
    payment_status: str = "captured",
    delivered_days_ago: int = 5,
) -> Order:
    placed = now - timedelta(days=delivered_days_ago + 3)
    return Order(
        order_id=order_id,
        customer_id=customer_id,
        currency="EUR",
        lines=[OrderLine(sku="MUG-1", description="Mug", quantity=1, unit_price=Decimal(total))],
        total=Decimal(total),
        payment_status=payment_status,
        fulfilment_status="delivered",
        placed_at=placed,
        delivered_at=now - timedelta(days=delivered_days_ago),
    )


def customer(customer_id: str = "CUS-1", tier: str = "standard") -> Customer:
    return Customer(customer_id=customer_id, name="Ann Lee", email="ann.lee@example.com", tier=tier)


def fraud_signal(customer_id: str = "CUS-1", order_id: str | None = None) -> FraudSignal:
    return FraudSignal(
        signal_id="FRS-1",
        customer_id=customer_id,
        order_id=order_id,
        kind="refund_velocity",
        severity="high",
        detail="five refund requests in two days from new devices",
    )


@dataclass
class FakeRefundSystems(FakeOutbox, FakeAgent):
    """Orders, CRM, fraud signals, the refund ledger, the outbox and the refund analyst, in
    memory, by activity name."""

    order: Order
    customer: Customer = field(default_factory=customer)
    prior_refunds: list[Refund] = field(default_factory=list)
    signals: list[FraudSignal] = field(default_factory=list)
    agent_answer: RefundProposal | ApplicationError = field(default_factory=proposal)
    crm_fails: bool = False
    """The CRM refuses refund notes for good (the customer record is locked)."""
    refunds: Ledger[Refund] = field(default_factory=Ledger)
    """Refunds issued by the case, by idempotency key."""
    refund_error: ApplicationError | None = None
    """What the fake payments system answers every refund with, if set (nothing is issued)."""
    refunds_meanwhile: list[Refund] = field(default_factory=list)
    """Refunds another case issues after this case's first look at the ledger."""
    notes: list[RefundNoteRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.refund_error is not None:
            self.script("payments.issue_refund", self.refund_error)

    def agent_answer_to(self, request: AgentRequest) -> RefundProposal | ApplicationError:
        return self.agent_answer

    @fake("orders.get_order")
    async def get_order(self, lookup: OrderLookup) -> Order:
        if lookup.order_id != self.order.order_id:
            raise not_found(f"order {lookup.order_id}")
        return self.order

    @fake("orders.list_customer_orders")
    async def list_customer_orders(self, lookup: CustomerOrdersLookup) -> list[Order]:
        return [self.order]

    @fake("crm.get_customer")
    async def get_customer(self, lookup: CustomerLookup) -> Customer:
        return self.customer

    @fake("crm.add_refund_note")
    async def add_refund_note(self, request: RefundNoteRequest) -> RefundNote:
        if self.crm_fails:
            raise ApplicationError(
                f"customer {request.customer_id} is locked for a data-protection review",
                type="RequestConflict",
                non_retryable=True,
            )
        self.notes.append(request)
        return RefundNote(
            note_id=f"CRN-{len(self.notes)}",
            **request.model_dump(exclude={"idempotency_key", "case_id"}),
        )

    @fake("fraud.list_signals")
    async def list_signals(self, lookup: FraudSignalLookup) -> list[FraudSignal]:
        return self.signals

    @fake("payments.list_refunds")
    async def list_refunds(self, lookup: RefundLookup) -> list[Refund]:
        meanwhile = self.refunds_meanwhile if self.ledger_reads > 1 else []
        return [*self.prior_refunds, *meanwhile, *self.refunds.values()]

    @fake("payments.issue_refund")
    async def issue_refund(self, request: RefundRequest) -> Refund:
        return self.refunds.once(
            request.idempotency_key,
            lambda number: Refund(
                refund_id=f"REF-{number}",
                order_id=request.order_id,
                customer_id=request.customer_id,
                amount=request.amount,
                currency=request.currency,
                status="issued",
                idempotency_key=request.idempotency_key,
            ),
        )

    @fake("payments.reverse_refund")
    async def reverse_refund(self, reversal: RefundReversal) -> Refund:
        refund = next(r for r in self.refunds.values() if r.refund_id == reversal.refund_id)
        refund.status = "reversed"
        return refund

    @property
    def ledger_reads(self) -> int:
        return len(self.calls("payments.list_refunds"))

    @property
    def issue_calls(self) -> int:
        return len(self.calls("payments.issue_refund"))

    @property
    def reversals(self) -> list[RefundReversal]:
        return self.calls("payments.reverse_refund")


# -- the sandbox and the scripted model, for the integration tests -----------------------------


class RefundSystems:
    """The sandbox's orders, CRM, fraud signals, refund ledger and outbox, over HTTP."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._http.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def _get(self, path: str, **params: str) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def seed(
        self,
        order_id: str,
        *,
        total: str = "30.00",
        tier: str = "standard",
        payment_status: str = "captured",
        fraud: bool = False,
    ) -> str:
        """A customer of their own (named after the order) and a delivered order; with
        ``fraud``, a high-severity signal on the customer. Returns the customer ID."""
        customer_id = f"CUS-{order_id}"
        await self._post(
            "/crm/customers",
            {
                "customer_id": customer_id,
                "name": f"Customer of {order_id}",
                "email": f"{customer_id.lower()}@example.com",
                "tier": tier,
            },
        )
        now = datetime.now().astimezone()
        await self._post(
            "/orders",
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "lines": [
                    {"sku": "MUG-1", "description": "Mug", "quantity": 1, "unit_price": total}
                ],
                "payment_status": payment_status,
                "placed_at": (now - timedelta(days=6)).isoformat(),
                "delivered_at": (now - timedelta(days=3)).isoformat(),
            },
        )
        if fraud:
            await self._post(
                "/fraud/signals",
                {
                    "customer_id": customer_id,
                    "order_id": order_id,
                    "kind": "card_mismatch",
                    "severity": "high",
                    "detail": "card country differs from shipping country",
                },
            )
        return customer_id

    async def refunds(self, order_id: str) -> list[Refund]:
        """The refund ledger's entries for one order."""
        rows = await self._get("/payments/refunds", order_id=order_id)
        return [Refund.model_validate(row) for row in rows]

    async def refund_notes(self, customer_id: str) -> list[RefundNote]:
        rows = await self._get(f"/crm/customers/{customer_id}/refund-notes")
        return [RefundNote.model_validate(row) for row in rows]

    async def notifications(self, *, to: str, case_id: str) -> list[Notification]:
        rows = await self._get("/notifications", to=to, case_id=case_id)
        return [Notification.model_validate(row) for row in rows]

    async def inject_fault(self, **spec: Any) -> None:
        await self._post("/_faults", spec)

    async def clear_faults(self) -> None:
        response = await self._http.delete("/_faults")
        response.raise_for_status()


class ScriptedRefundAnalyst(ScriptedModel):
    """Scripts the model behind the refund analyst one order at a time."""

    def __init__(self, server: ScriptedLlmServer) -> None:
        super().__init__(server, "request", "order_id")

    def recommend(self, order_id: str, recommendation: str, confidence: float) -> None:
        """The analyst's answer for the order: ``recommendation`` with ``confidence``."""
        content = json.dumps(
            {
                "recommendation": recommendation,
                "confidence": confidence,
                "reason": "The customer reports the mug arrived broken; delivery confirms it.",
                "evidence": ["fulfilment: delivered 3 days ago"],
            }
        )
        self.answer(
            order_id, ScriptedReply(content=content, prompt_tokens=250, completion_tokens=60)
        )
