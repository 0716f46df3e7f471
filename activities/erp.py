"""ERP tools: suppliers, purchase orders, goods receipts and invoices."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Supplier(Record):
    supplier_id: str
    name: str
    country: str = ""
    bank_account: str = ""
    status: str = "active"
    risk: str = "low"


class OrderLine(Record):
    sku: str
    description: str = ""
    quantity: int
    unit_price: Decimal


class PurchaseOrder(Record):
    po_number: str
    supplier_id: str
    currency: str
    lines: list[OrderLine]
    total: Decimal


class ReceiptLine(Record):
    sku: str
    quantity_received: int


class GoodsReceipt(Record):
    receipt_id: str
    po_number: str
    lines: list[ReceiptLine]
    received_at: str | None = None


class Invoice(Record):
    invoice_id: str
    supplier_id: str
    po_number: str | None = None
    currency: str
    lines: list[OrderLine]
    total: Decimal
    status: str
    exception_reason: str | None = None


class InvoiceLookup(BaseModel):
    invoice_id: str


class PurchaseOrderLookup(BaseModel):
    po_number: str


class SupplierLookup(BaseModel):
    supplier_id: str


class InvoiceStatusChange(BaseModel):
    invoice_id: str
    status: str
    note: str | None = None
    idempotency_key: str


_receipts = TypeAdapter(list[GoodsReceipt])


class ErpActivities(SystemActivities):
    system = "ERP"

    @read_only_tool(
        description="Read an invoice in the ERP: supplier, PO number, lines, amounts, status."
    )
    @activity.defn(name="erp.get_invoice")
    async def get_invoice(self, lookup: InvoiceLookup) -> Invoice:
        return Invoice.model_validate(
            await call(self._client, "GET", f"/erp/invoices/{lookup.invoice_id}")
        )

    @read_only_tool(
        description="Read a purchase order in the ERP: supplier, lines, quantities, unit prices."
    )
    @activity.defn(name="erp.get_purchase_order")
    async def get_purchase_order(self, lookup: PurchaseOrderLookup) -> PurchaseOrder:
        return PurchaseOrder.model_validate(
            await call(self._client, "GET", f"/erp/purchase-orders/{lookup.po_number}")
        )

    @read_only_tool(
        description="List the goods receipts booked against a purchase order (what was delivered)."
    )
    @activity.defn(name="erp.list_goods_receipts")
    async def list_goods_receipts(self, lookup: PurchaseOrderLookup) -> list[GoodsReceipt]:
        return _receipts.validate_python(
            await call(
                self._client, "GET", "/erp/goods-receipts", params={"po_number": lookup.po_number}
            )
        )

    @read_only_tool(
        description="Read a supplier's master record in the ERP: name, bank account, status."
    )
    @activity.defn(name="erp.get_supplier")
    async def get_supplier(self, lookup: SupplierLookup) -> Supplier:
        return Supplier.model_validate(
            await call(self._client, "GET", f"/erp/suppliers/{lookup.supplier_id}")
        )

    @activity.defn(name="erp.set_invoice_status")
    async def set_invoice_status(self, change: InvoiceStatusChange) -> Invoice:
        return Invoice.model_validate(
            await call(
                self._client,
                "POST",
                f"/erp/invoices/{change.invoice_id}/status",
                json={"status": change.status, "note": change.note},
                idempotency_key=change.idempotency_key,
            )
        )
