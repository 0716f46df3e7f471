"""The invoice-exception process's systems of record in memory, by activity name
(``casework.testing.fakes``), and the invoices its tests and recorded histories run on.

Used by workflow unit tests; the integration tests run the real activities against the sandbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

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
from casework.agents.messages import AgentRequest
from casework.testing.fakes import FakeAgent, FakeOutbox, Ledger, fake, not_found


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
class FakeSystems(FakeOutbox, FakeAgent):
    """The ERP, payments, the outbox and the invoice analyst, in memory, by activity name."""

    scenario: Scenario
    agent_answer: InvoiceProposal | ApplicationError = field(default_factory=proposal)
    failing_statuses: set[str] = field(default_factory=set)
    """Invoice status changes the fake ERP refuses for good."""
    payments: Ledger[Payment] = field(default_factory=Ledger)
    status_changes: list[InvoiceStatusChange] = field(default_factory=list)
    payment_gate: asyncio.Event | None = None
    """When set, payments wait for it: holds a case mid-execution."""
    lose_payment_answers: bool = False
    """Payments go through, but every answer is lost (the caller sees it fail each time)."""
    refuse_payments: bool = False
    """Payments are refused for good before anything is paid."""

    proposal_tokens = (100, 50)

    def __post_init__(self) -> None:
        if self.refuse_payments:
            self.script(
                "payments.pay",
                ApplicationError(
                    "POST /payments answered 422", type="RequestRejected", non_retryable=True
                ),
            )

    def agent_answer_to(self, request: AgentRequest) -> InvoiceProposal | ApplicationError:
        return self.agent_answer

    @fake("erp.get_invoice")
    async def get_invoice(self, lookup: InvoiceLookup) -> Invoice:
        if lookup.invoice_id != self.scenario.invoice.invoice_id:
            raise not_found(f"invoice {lookup.invoice_id}")
        return self.scenario.invoice

    @fake("erp.get_supplier")
    async def get_supplier(self, lookup: SupplierLookup) -> Supplier:
        return self.scenario.supplier

    @fake("erp.get_purchase_order")
    async def get_purchase_order(self, lookup: PurchaseOrderLookup) -> PurchaseOrder:
        return self.scenario.purchase_order

    @fake("erp.list_goods_receipts")
    async def list_goods_receipts(self, lookup: PurchaseOrderLookup) -> list[GoodsReceipt]:
        return self.scenario.receipts

    @fake("erp.set_invoice_status")
    async def set_invoice_status(self, change: InvoiceStatusChange) -> Invoice:
        if change.status in self.failing_statuses:
            raise ApplicationError(
                f"invoice {change.invoice_id} is locked by period close",
                type="RequestConflict",
                non_retryable=True,
            )
        self.status_changes.append(change)
        return self.scenario.invoice.model_copy(update={"status": change.status})

    @fake("payments.pay")
    async def pay(self, request: PaymentRequest) -> Payment:
        if self.payment_gate is not None:
            await self.payment_gate.wait()
        payment = self.payments.once(
            request.idempotency_key,
            lambda number: Payment(
                payment_id=f"PAY-{number}",
                invoice_id=request.invoice_id,
                supplier_id=request.supplier_id,
                amount=request.amount,
                currency=request.currency,
                status="completed",
                idempotency_key=request.idempotency_key,
            ),
        )
        if self.lose_payment_answers:
            raise ApplicationError("POST /payments answered 503", type="SystemUnavailable")
        return payment

    @fake("payments.find")
    async def find(self, lookup: PaymentLookup) -> Payment | None:
        return self.payments.get(lookup.idempotency_key)

    @fake("payments.reverse")
    async def reverse(self, reversal: PaymentReversal) -> Payment:
        payment = next(p for p in self.payments.values() if p.payment_id == reversal.payment_id)
        payment.status = "reversed"
        return payment

    @property
    def pay_calls(self) -> int:
        return len(self.calls("payments.pay"))

    @property
    def reversals(self) -> list[PaymentReversal]:
        return self.calls("payments.reverse")

    @property
    def invoice_statuses(self) -> list[str]:
        return [change.status for change in self.status_changes]
