"""The order-management stand-in: customer orders with their payment and fulfilment status.

Read-only for casework's processes: the refund process reads an order and the customer's order
history; what was refunded is the payments system's business (``/payments/refunds``).
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import AwareDatetime, Field

from casework.sandbox.models import Currency, Money, RecordId, StrictModel, Text
from casework.sandbox.store import Db, columns, insert, refuse_duplicate, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    lines TEXT NOT NULL,
    total TEXT NOT NULL,
    payment_status TEXT NOT NULL,
    payment_reference TEXT,
    fulfilment_status TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);
"""

router = APIRouter(prefix="/orders", tags=["Orders"])

PaymentStatus = Literal["pending", "captured", "failed", "charged_back"]
FulfilmentStatus = Literal["processing", "shipped", "delivered", "returned", "cancelled"]


class OrderLine(StrictModel):
    sku: Text
    description: Text
    quantity: int = Field(gt=0)
    unit_price: Money


class NewOrder(StrictModel):
    order_id: RecordId
    customer_id: RecordId
    currency: Currency = "EUR"
    lines: list[OrderLine] = Field(min_length=1)
    payment_status: PaymentStatus = Field(
        "captured", description="Whether the customer's money was taken: only captured is paid."
    )
    payment_reference: Text | None = Field(None, description="The card or bank transaction.")
    fulfilment_status: FulfilmentStatus = "delivered"
    placed_at: AwareDatetime = Field(default_factory=utc_now)
    delivered_at: AwareDatetime | None = None


class Order(NewOrder):
    total: Decimal


_SELECT = f"SELECT {columns(Order)} FROM orders"


def _order_from_row(row: sqlite3.Row) -> Order:
    return Order.model_validate(dict(row) | {"lines": json.loads(row["lines"])})


@router.post("", status_code=201)
def create_order(order: NewOrder, db: Db) -> Order:
    """Record an order (test data); its total is computed from the lines."""
    total = sum((line.quantity * line.unit_price for line in order.lines), Decimal(0))
    created = Order(**order.model_dump(), total=total)
    with db.transaction() as conn:
        refuse_duplicate(conn, "order", "orders", "order_id", order.order_id)
        row = created.model_dump(mode="json")
        insert(conn, "orders", row | {"lines": json.dumps(row["lines"])})
    return created


@router.get("")
def list_orders(db: Db, customer_id: str | None = None) -> list[Order]:
    """Orders, oldest first, optionally one customer's: their order history."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT} WHERE ? IS NULL OR customer_id = ? ORDER BY seq",
            (customer_id, customer_id),
        ).fetchall()
    return [_order_from_row(row) for row in rows]


@router.get("/{order_id}")
def get_order(order_id: str, db: Db) -> Order:
    with db.transaction() as conn:
        row = conn.execute(f"{_SELECT} WHERE order_id = ?", (order_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"order {order_id} not found")
    return _order_from_row(row)
