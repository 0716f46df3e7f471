"""Records of the systems casework reads and writes (ERP, payments, notifications), as typed models.

These are what activities return and workflows reason over; pure pydantic, safe in workflow code.
Unknown fields from the systems are ignored so a new column upstream does not break a case.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


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


class Payment(Record):
    payment_id: str
    invoice_id: str
    supplier_id: str
    amount: Decimal
    currency: str
    status: str
    idempotency_key: str | None = None
    reference: str | None = None


class Notification(Record):
    notification_id: str
    to: str
    subject: str
    body: str = ""
    case_id: str | None = None
