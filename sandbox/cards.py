"""The card-issuing stand-in: debit card orders for accounts, placed once per Idempotency-Key and
cancelled.

A cancelled order stays on record, with when and why.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response

from casework.sandbox.models import Closing, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    FinalStatus,
    IdempotencyKey,
    RecordTable,
    apply_once,
    insert,
    next_id,
    utc_now,
)

router = APIRouter(prefix="/cards/orders", tags=["Cards"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS card_orders (
    seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    cardholder_name TEXT NOT NULL,
    card_type TEXT NOT NULL,
    status TEXT NOT NULL,
    ordered_at TEXT NOT NULL,
    cancelled_at TEXT,
    cancel_reason TEXT
);
CREATE INDEX IF NOT EXISTS card_orders_application ON card_orders (application_id);
"""


class NewCardOrder(StrictModel):
    application_id: RecordId
    account_id: RecordId
    cardholder_name: Text
    card_type: Literal["debit"] = "debit"


class CardOrder(NewCardOrder):
    order_id: str
    status: Literal["ordered", "cancelled"]
    ordered_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


ORDERS = RecordTable.of(CardOrder, "card_orders", "order_id", "card order")
CANCELLED = FinalStatus("cancelled", at_column="cancelled_at", reason_column="cancel_reason")


@router.post("", status_code=201)
def order_card(order: NewCardOrder, key: IdempotencyKey, response: Response, db: Db) -> CardOrder:
    """Order a card; a retry with the same Idempotency-Key returns the order it placed."""

    def apply(conn: sqlite3.Connection) -> CardOrder:
        seq, order_id = next_id(conn, "card_orders", "CRD")
        placed = CardOrder(
            **order.model_dump(), order_id=order_id, status="ordered", ordered_at=utc_now()
        )
        insert(conn, "card_orders", {"seq": seq, **placed.model_dump(mode="json")})
        return placed

    return apply_once(
        db,
        response,
        operation="card order",
        key=key,
        request=order,
        result_type=CardOrder,
        apply=apply,
    )


@router.get("")
def list_orders(db: Db, application_id: str | None = None) -> list[CardOrder]:
    """Card orders, oldest first, optionally those placed for one application."""
    return ORDERS.list_where(db, "application_id", application_id)


@router.get("/{order_id}")
def get_order(order_id: str, db: Db) -> CardOrder:
    return ORDERS.get(db, order_id)


@router.post("/{order_id}/cancel")
def cancel_order(
    order_id: str, closing: Closing, key: IdempotencyKey, response: Response, db: Db
) -> CardOrder:
    """Cancel a card order; cancelling a cancelled one changes nothing."""
    return ORDERS.close_once(
        db,
        response,
        operation="card order cancellation",
        key=key,
        record_id=order_id,
        request=closing,
        final=CANCELLED,
    )
