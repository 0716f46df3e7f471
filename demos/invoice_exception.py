"""The invoice-exception part of ``casework demo``: one invoice per outcome.

Each batch gets its own purchase orders, goods receipts and invoices (INV-1001.., INV-2001..)
from one supplier; the demo plays the approvers (bob, carol) and leaves one invoice waiting for
the finance manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from casework.case import CaseStatus
from casework.case.tasks import TaskDecision
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    create_once,
    fail_writes,
    sandbox_request,
)
from workflows.invoice_exception import InvoiceExceptionInput, InvoiceStatus

SUPPLIER = {
    "supplier_id": "SUP-ACME",
    "name": "Acme Industrial Supplies",
    "country": "DE",
    "bank_account": "DE89 3704 0044 0532 0130 00",
}
LINE = {"sku": "BRK-220", "description": "Brake assembly, heavy duty"}


@dataclass(frozen=True)
class Invoice:
    """What was ordered and received, and what the supplier billed."""

    quantity: int
    received: int
    po_price: Decimal
    invoice_price: Decimal
    erp_fails: bool = False
    """Make the ERP refuse to mark the invoice paid, so the payment must be reversed."""


SCENARIOS = [
    DemoScenario(
        1,
        "matches PO and receipt",
        InvoiceStatus.PAID,
        Invoice(80, 80, Decimal("30.00"), Decimal("30.00")),
    ),
    DemoScenario(
        2,
        "4% price variance, approved by the tier that covers it",
        InvoiceStatus.PAID,
        Invoice(104, 104, Decimal("30.00"), Decimal("31.20")),
        decisions={
            "ap_supervisor": TaskDecision(
                approver="bob", action="approve", comment="freight surcharge agreed"
            )
        },
    ),
    DemoScenario(
        3,
        "billed for goods not received",
        CaseStatus.REJECTED,
        Invoice(600, 500, Decimal("30.00"), Decimal("30.00")),
        decisions={
            "finance_manager": TaskDecision(
                approver="carol", action="reject", comment="100 units never arrived; ask for credit"
            )
        },
    ),
    DemoScenario(
        4,
        "paid, then the ERP refuses the status update",
        CaseStatus.FAILED_COMPENSATED,
        Invoice(40, 40, Decimal("30.00"), Decimal("30.00"), erp_fails=True),
    ),
    DemoScenario(
        5,
        "5% price variance above 5,000: waits for finance",
        "awaiting finance_manager",
        Invoice(400, 400, Decimal("30.00"), Decimal("31.50")),
    ),
]


async def reference(run: DemoRun) -> None:
    await create_once(
        run.sandbox, f"/erp/suppliers/{SUPPLIER['supplier_id']}", "/erp/suppliers", SUPPLIER
    )


async def seed(run: DemoRun, scenario: DemoScenario[Invoice]) -> InvoiceExceptionInput:
    """The scenario's purchase order, goods receipt and invoice; the case reviews the invoice."""
    number, invoice = scenario.number(run.batch), scenario.facts
    invoice_id, po_number = f"INV-{number}", f"PO-{number}"
    await sandbox_request(
        run.sandbox,
        "POST",
        "/erp/purchase-orders",
        {
            "po_number": po_number,
            "supplier_id": SUPPLIER["supplier_id"],
            "lines": [{**LINE, "quantity": invoice.quantity, "unit_price": str(invoice.po_price)}],
        },
    )
    await sandbox_request(
        run.sandbox,
        "POST",
        "/erp/goods-receipts",
        {
            "receipt_id": f"GR-{number}",
            "po_number": po_number,
            "lines": [{"sku": LINE["sku"], "quantity_received": invoice.received}],
        },
    )
    await sandbox_request(
        run.sandbox,
        "POST",
        "/erp/invoices",
        {
            "invoice_id": invoice_id,
            "supplier_id": SUPPLIER["supplier_id"],
            "po_number": po_number,
            "lines": [
                {**LINE, "quantity": invoice.quantity, "unit_price": str(invoice.invoice_price)}
            ],
            "exception_reason": scenario.story,
        },
    )
    if invoice.erp_fails:
        await fail_writes(run.sandbox, f"/erp/invoices/{invoice_id}/status")
    return InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice")


DEMO = ProcessDemo(
    process="invoice-exception",
    order=10,
    scenarios=SCENARIOS,
    numbered=Numbered("/erp/invoices", "invoice_id", "INV-"),
    seed=seed,
    reference=reference,
)
