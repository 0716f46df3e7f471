"""The fraud-detection stand-in: signals raised against customers (and optionally an order).

Signals are raised by test data here; a real system would raise them from its own models. A
case only reads them: whether a signal stops a refund is the refund policy's call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from casework.sandbox.models import RecordId, StrictModel, Text
from casework.sandbox.store import Db, columns, insert, next_id, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS fraud_signals (
    seq INTEGER PRIMARY KEY,
    signal_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    order_id TEXT,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fraud_signals_customer ON fraud_signals (customer_id);
"""

router = APIRouter(prefix="/fraud", tags=["Fraud signals"])


class NewSignal(StrictModel):
    customer_id: RecordId
    order_id: RecordId | None = Field(None, description="Set when the signal is about one order.")
    kind: Text = Field(description='What was detected, e.g. "refund_velocity", "card_mismatch".')
    severity: Literal["low", "medium", "high"]
    detail: Text


class Signal(NewSignal):
    signal_id: str
    raised_at: datetime


_SELECT = f"SELECT {columns(Signal)} FROM fraud_signals"


@router.post("/signals", status_code=201)
def raise_signal(signal: NewSignal, db: Db) -> Signal:
    """Raise a signal (test data)."""
    with db.transaction() as conn:
        seq, signal_id = next_id(conn, "fraud_signals", "FRS")
        raised = Signal(**signal.model_dump(), signal_id=signal_id, raised_at=utc_now())
        insert(conn, "fraud_signals", {"seq": seq, **raised.model_dump(mode="json")})
    return raised


@router.get("/signals")
def list_signals(
    db: Db, customer_id: str | None = None, order_id: str | None = None
) -> list[Signal]:
    """Signals, oldest first, optionally for one customer and/or one order."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT} WHERE (:customer_id IS NULL OR customer_id = :customer_id)
                AND (:order_id IS NULL OR order_id = :order_id) ORDER BY seq""",
            {"customer_id": customer_id, "order_id": order_id},
        ).fetchall()
    return [Signal.model_validate(dict(row)) for row in rows]
