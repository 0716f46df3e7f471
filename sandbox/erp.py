"""The ERP stand-in: suppliers, purchase orders, goods receipts and supplier invoices."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from casework.sandbox.models import Currency, Money, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    IdempotencyKey,
    RecordTable,
    insert,
    refuse_duplicate,
    utc_now,
)

router = APIRouter(prefix="/erp", tags=["ERP"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppliers (
    supplier_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    bank_account TEXT NOT NULL,
    status TEXT NOT NULL,
    risk TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS purchase_orders (
    po_number TEXT PRIMARY KEY,
    supplier_id TEXT NOT NULL REFERENCES suppliers (supplier_id),
    currency TEXT NOT NULL,
    lines TEXT NOT NULL,
    total TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goods_receipts (
    receipt_id TEXT PRIMARY KEY,
    po_number TEXT NOT NULL REFERENCES purchase_orders (po_number),
    lines TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS goods_receipts_po ON goods_receipts (po_number);
CREATE TABLE IF NOT EXISTS invoices (
    invoice_id TEXT PRIMARY KEY,
    supplier_id TEXT NOT NULL REFERENCES suppliers (supplier_id),
    po_number TEXT REFERENCES purchase_orders (po_number),
    currency TEXT NOT NULL,
    lines TEXT NOT NULL,
    total TEXT NOT NULL,
    exception_reason TEXT,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_status ON invoices (status);
CREATE TABLE IF NOT EXISTS invoice_status_history (
    seq INTEGER PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoices (invoice_id),
    status TEXT NOT NULL,
    note TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoice_status_history_invoice
    ON invoice_status_history (invoice_id);
"""

InvoiceStatus = Literal["exception", "approved", "paid", "rejected", "on_hold", "open"]


class Supplier(StrictModel):
    supplier_id: RecordId
    name: Text
    country: Text
    bank_account: Text
    status: Literal["active", "blocked"] = "active"
    risk: Literal["low", "medium", "high"] = "low"


class Line(StrictModel):
    sku: Text
    description: Text
    quantity: int = Field(gt=0)
    unit_price: Money


class NewPurchaseOrder(StrictModel):
    po_number: RecordId
    supplier_id: RecordId
    currency: Currency = "EUR"
    lines: list[Line] = Field(min_length=1)


class PurchaseOrder(NewPurchaseOrder):
    total: Decimal


class ReceiptLine(StrictModel):
    sku: Text
    quantity_received: int = Field(ge=0)


class GoodsReceipt(StrictModel):
    receipt_id: RecordId
    po_number: RecordId
    lines: list[ReceiptLine] = Field(min_length=1)
    received_at: date = Field(default_factory=date.today)


class NewInvoice(StrictModel):
    invoice_id: RecordId
    supplier_id: RecordId
    po_number: RecordId | None = None
    currency: Currency = "EUR"
    lines: list[Line] = Field(min_length=1)
    exception_reason: Text | None = None
    status: InvoiceStatus = "exception"


class StatusChange(StrictModel):
    status: InvoiceStatus
    note: Text | None = None


class StatusHistoryEntry(StrictModel):
    status: InvoiceStatus
    note: str | None
    at: datetime


class Invoice(NewInvoice):
    total: Decimal
    status_history: list[StatusHistoryEntry]


def _total(lines: list[Line]) -> Decimal:
    return sum((line.quantity * line.unit_price for line in lines), Decimal(0))


def _lines_json(lines: list[Line] | list[ReceiptLine]) -> str:
    return json.dumps([line.model_dump(mode="json") for line in lines])


def _row(row: sqlite3.Row) -> dict[str, object]:
    """A table row as model input: `lines` is stored as JSON text."""
    values = dict(row)
    values["lines"] = json.loads(values["lines"])
    return values


def _get_supplier(conn: sqlite3.Connection, supplier_id: str) -> Supplier:
    row = conn.execute("SELECT * FROM suppliers WHERE supplier_id = ?", (supplier_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"supplier {supplier_id} not found")
    return Supplier.model_validate(dict(row))


def _get_purchase_order(conn: sqlite3.Connection, po_number: str) -> PurchaseOrder:
    row = conn.execute("SELECT * FROM purchase_orders WHERE po_number = ?", (po_number,)).fetchone()
    if row is None:
        raise HTTPException(404, f"purchase order {po_number} not found")
    return PurchaseOrder.model_validate(_row(row))


def _invoice_from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Invoice:
    history = conn.execute(
        "SELECT status, note, at FROM invoice_status_history WHERE invoice_id = ? ORDER BY seq",
        (row["invoice_id"],),
    ).fetchall()
    return Invoice.model_validate(_row(row) | {"status_history": [dict(h) for h in history]})


def _get_invoice(conn: sqlite3.Connection, invoice_id: str) -> Invoice:
    row = conn.execute("SELECT * FROM invoices WHERE invoice_id = ?", (invoice_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"invoice {invoice_id} not found")
    return _invoice_from_row(conn, row)


INVOICES = RecordTable(Invoice, "invoices", "invoice_id", _get_invoice)


def _record_status(
    conn: sqlite3.Connection, invoice_id: str, status: InvoiceStatus, note: str | None
) -> None:
    insert(
        conn,
        "invoice_status_history",
        {"invoice_id": invoice_id, "status": status, "note": note, "at": utc_now().isoformat()},
    )


@router.post("/suppliers", status_code=201)
def create_supplier(supplier: Supplier, db: Db) -> Supplier:
    with db.transaction() as conn:
        refuse_duplicate(conn, "supplier", "suppliers", "supplier_id", supplier.supplier_id)
        insert(conn, "suppliers", supplier.model_dump())
    return supplier


@router.get("/suppliers")
def list_suppliers(db: Db) -> list[Supplier]:
    with db.transaction() as conn:
        rows = conn.execute("SELECT * FROM suppliers ORDER BY rowid").fetchall()
    return [Supplier.model_validate(dict(row)) for row in rows]


@router.get("/suppliers/{supplier_id}")
def get_supplier(supplier_id: str, db: Db) -> Supplier:
    with db.transaction() as conn:
        return _get_supplier(conn, supplier_id)


@router.post("/purchase-orders", status_code=201)
def create_purchase_order(order: NewPurchaseOrder, db: Db) -> PurchaseOrder:
    created = PurchaseOrder(**order.model_dump(), total=_total(order.lines))
    with db.transaction() as conn:
        _get_supplier(conn, order.supplier_id)
        refuse_duplicate(conn, "purchase order", "purchase_orders", "po_number", order.po_number)
        insert(
            conn,
            "purchase_orders",
            created.model_dump(mode="json") | {"lines": _lines_json(created.lines)},
        )
    return created


@router.get("/purchase-orders")
def list_purchase_orders(db: Db) -> list[PurchaseOrder]:
    with db.transaction() as conn:
        rows = conn.execute("SELECT * FROM purchase_orders ORDER BY rowid").fetchall()
    return [PurchaseOrder.model_validate(_row(row)) for row in rows]


@router.get("/purchase-orders/{po_number}")
def get_purchase_order(po_number: str, db: Db) -> PurchaseOrder:
    with db.transaction() as conn:
        return _get_purchase_order(conn, po_number)


@router.post("/goods-receipts", status_code=201)
def create_goods_receipt(receipt: GoodsReceipt, db: Db) -> GoodsReceipt:
    with db.transaction() as conn:
        _get_purchase_order(conn, receipt.po_number)
        refuse_duplicate(conn, "goods receipt", "goods_receipts", "receipt_id", receipt.receipt_id)
        insert(
            conn,
            "goods_receipts",
            receipt.model_dump(mode="json") | {"lines": _lines_json(receipt.lines)},
        )
    return receipt


@router.get("/goods-receipts")
def list_goods_receipts(db: Db, po_number: str | None = None) -> list[GoodsReceipt]:
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM goods_receipts WHERE ? IS NULL OR po_number = ? ORDER BY rowid",
            (po_number, po_number),
        ).fetchall()
    return [GoodsReceipt.model_validate(_row(row)) for row in rows]


@router.get("/goods-receipts/{receipt_id}")
def get_goods_receipt(receipt_id: str, db: Db) -> GoodsReceipt:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM goods_receipts WHERE receipt_id = ?", (receipt_id,)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"goods receipt {receipt_id} not found")
    return GoodsReceipt.model_validate(_row(row))


@router.post("/invoices", status_code=201)
def create_invoice(invoice: NewInvoice, db: Db) -> Invoice:
    with db.transaction() as conn:
        _get_supplier(conn, invoice.supplier_id)
        if invoice.po_number is not None:
            _get_purchase_order(conn, invoice.po_number)
        refuse_duplicate(conn, "invoice", "invoices", "invoice_id", invoice.invoice_id)
        insert(
            conn,
            "invoices",
            invoice.model_dump(mode="json")
            | {"lines": _lines_json(invoice.lines), "total": str(_total(invoice.lines))},
        )
        _record_status(conn, invoice.invoice_id, invoice.status, "created")
        return _get_invoice(conn, invoice.invoice_id)


@router.get("/invoices")
def list_invoices(db: Db, status: InvoiceStatus | None = None) -> list[Invoice]:
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM invoices WHERE ? IS NULL OR status = ? ORDER BY rowid",
            (status, status),
        ).fetchall()
        return [_invoice_from_row(conn, row) for row in rows]


@router.get("/invoices/{invoice_id}")
def get_invoice(invoice_id: str, db: Db) -> Invoice:
    with db.transaction() as conn:
        return _get_invoice(conn, invoice_id)


@router.post("/invoices/{invoice_id}/status")
def change_invoice_status(
    invoice_id: str, change: StatusChange, key: IdempotencyKey, response: Response, db: Db
) -> Invoice:
    """Move the invoice to a new status, at most once per Idempotency-Key."""

    def move(conn: sqlite3.Connection, _invoice: Invoice) -> None:
        conn.execute(
            "UPDATE invoices SET status = ? WHERE invoice_id = ?", (change.status, invoice_id)
        )
        _record_status(conn, invoice_id, change.status, change.note)

    return INVOICES.write_once(
        db,
        response,
        operation="invoice status change",
        key=key,
        record_id=invoice_id,
        request=change,
        change=move,
    )
