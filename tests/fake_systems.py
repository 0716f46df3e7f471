"""In-memory stand-ins for the systems of record, registered under the real activity names.

Used by workflow unit tests; the integration tests run the real activities against the sandbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agents.invoice_exception import InvoiceProposal, Recommendation
from activities.erp import (
    GoodsReceipt,
    Invoice,
    InvoiceLookup,
    InvoiceStatusChange,
    OrderLine,
    PurchaseOrder,
    PurchaseOrderLookup,
    ReceiptLine,
    Supplier,
    SupplierLookup,
)
from activities.payments import Payment, PaymentLookup, PaymentRequest, PaymentReversal
from casework.agents.messages import AgentRequest, AgentResult, AgentUsage
from casework.governance import activity as policy
from casework.systems.notifications import Notification, NotificationRequest


@dataclass
class Scenario:
    invoice: Invoice
    purchase_order: PurchaseOrder
    receipts: list[GoodsReceipt]
    supplier: Supplier


def scenario(
    invoice_id: str,
    *,
    quantity: int = 100,
    received: int | None = None,
    po_price: str = "30.00",
    invoice_price: str | None = None,
    supplier_status: str = "active",
) -> Scenario:
    """One-line invoice for ``quantity`` widgets; defaults match the PO and receipt exactly."""
    price = Decimal(invoice_price or po_price)
    received_quantity = quantity if received is None else received
    supplier = Supplier(supplier_id="SUP-1", name="Acme Widgets", status=supplier_status)
    po = PurchaseOrder(
        po_number=f"PO-{invoice_id}",
        supplier_id="SUP-1",
        currency="EUR",
        lines=[OrderLine(sku="W-1", quantity=quantity, unit_price=Decimal(po_price))],
        total=quantity * Decimal(po_price),
    )
    receipt = GoodsReceipt(
        receipt_id=f"GR-{invoice_id}",
        po_number=po.po_number,
        lines=[ReceiptLine(sku="W-1", quantity_received=received_quantity)],
    )
    invoice = Invoice(
        invoice_id=invoice_id,
        supplier_id="SUP-1",
        po_number=po.po_number,
        currency="EUR",
        lines=[OrderLine(sku="W-1", quantity=quantity, unit_price=price)],
        total=quantity * price,
        status="exception",
    )
    return Scenario(invoice, po, [receipt], supplier)


def proposal(
    recommendation: Recommendation = Recommendation.APPROVE, confidence: float = 0.95
) -> InvoiceProposal:
    return InvoiceProposal(
        recommendation=recommendation,
        confidence=confidence,
        explanation="scripted explanation",
        rationale="scripted rationale",
        evidence=["line W-1"],
    )


@dataclass
class FakeSystems:
    scenario: Scenario
    agent_answer: InvoiceProposal | ApplicationError = field(default_factory=proposal)
    failing_statuses: set[str] = field(default_factory=set)
    """Invoice status changes the fake ERP refuses for good."""
    payments: dict[str, Payment] = field(default_factory=dict)
    pay_calls: int = 0
    reversals: list[PaymentReversal] = field(default_factory=list)
    status_changes: list[InvoiceStatusChange] = field(default_factory=list)
    notifications: list[NotificationRequest] = field(default_factory=list)
    agent_requests: list[AgentRequest] = field(default_factory=list)
    payment_gate: asyncio.Event | None = None
    """When set, payments wait for it: holds a case mid-execution."""
    lose_payment_answers: bool = False
    """Payments go through, but every answer is lost (the caller sees it fail each time)."""
    refuse_payments: bool = False
    """Payments are refused for good before anything is paid."""

    def activities(self) -> list[Callable[..., Any]]:
        s = self.scenario

        @activity.defn(name="erp.get_invoice")
        async def get_invoice(lookup: InvoiceLookup) -> Invoice:
            if lookup.invoice_id != s.invoice.invoice_id:
                raise ApplicationError(
                    f"invoice {lookup.invoice_id} not found",
                    type="RecordNotFound",
                    non_retryable=True,
                )
            return s.invoice

        @activity.defn(name="erp.get_supplier")
        async def get_supplier(lookup: SupplierLookup) -> Supplier:
            return s.supplier

        @activity.defn(name="erp.get_purchase_order")
        async def get_purchase_order(lookup: PurchaseOrderLookup) -> PurchaseOrder:
            return s.purchase_order

        @activity.defn(name="erp.list_goods_receipts")
        async def list_goods_receipts(lookup: PurchaseOrderLookup) -> list[GoodsReceipt]:
            return s.receipts

        @activity.defn(name="erp.set_invoice_status")
        async def set_invoice_status(change: InvoiceStatusChange) -> Invoice:
            if change.status in self.failing_statuses:
                raise ApplicationError(
                    f"invoice {change.invoice_id} is locked by period close",
                    type="RequestConflict",
                    non_retryable=True,
                )
            self.status_changes.append(change)
            return s.invoice.model_copy(update={"status": change.status})

        @activity.defn(name="payments.pay")
        async def pay(request: PaymentRequest) -> Payment:
            self.pay_calls += 1
            if self.refuse_payments:
                raise ApplicationError(
                    "POST /payments answered 422", type="RequestRejected", non_retryable=True
                )
            if self.payment_gate is not None:
                await self.payment_gate.wait()
            if request.idempotency_key not in self.payments:
                self.payments[request.idempotency_key] = Payment(
                    payment_id=f"PAY-{len(self.payments) + 1}",
                    invoice_id=request.invoice_id,
                    supplier_id=request.supplier_id,
                    amount=request.amount,
                    currency=request.currency,
                    status="completed",
                    idempotency_key=request.idempotency_key,
                )
            if self.lose_payment_answers:
                raise ApplicationError("POST /payments answered 503", type="SystemUnavailable")
            return self.payments[request.idempotency_key]

        @activity.defn(name="payments.find")
        async def find(lookup: PaymentLookup) -> Payment | None:
            return self.payments.get(lookup.idempotency_key)

        @activity.defn(name="payments.reverse")
        async def reverse(reversal: PaymentReversal) -> Payment:
            self.reversals.append(reversal)
            payment = next(p for p in self.payments.values() if p.payment_id == reversal.payment_id)
            payment.status = "reversed"
            return payment

        @activity.defn(name="notifications.send")
        async def send(request: NotificationRequest) -> Notification:
            self.notifications.append(request)
            return Notification(
                notification_id=f"N-{len(self.notifications)}",
                to=request.to,
                subject=request.subject,
            )

        @activity.defn(name="llm.propose")
        async def propose(request: AgentRequest) -> AgentResult:
            self.agent_requests.append(request)
            if isinstance(self.agent_answer, ApplicationError):
                raise self.agent_answer
            return AgentResult(
                output=self.agent_answer.model_dump(mode="json"),
                usage=AgentUsage(
                    model="scripted",
                    stand_in=False,
                    prompt_tokens=100,
                    completion_tokens=50,
                    cost_usd=0.001,
                    attempt=activity.info().attempt,
                ),
            )

        return [
            policy.load,
            get_invoice,
            get_supplier,
            get_purchase_order,
            list_goods_receipts,
            set_invoice_status,
            pay,
            find,
            reverse,
            send,
            propose,
        ]

    @property
    def invoice_statuses(self) -> list[str]:
        return [change.status for change in self.status_changes]
