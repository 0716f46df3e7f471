"""The fraud-detection stand-in: signals raised against customers (and optionally an order), and
alerts raised on loan applications.

Signals are raised by test data here; a real system would raise them from its own models. A
case only reads them: whether a signal stops a refund is the refund policy's call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import Field

from casework.sandbox.models import RecordId, StrictModel, Text
from casework.sandbox.store import Db, columns, insert, next_id, refuse_duplicate, utc_now

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
-- Alerts fraud monitoring raises on a loan application; a loan case acts on one only after
-- reading it back from here.
CREATE TABLE IF NOT EXISTS fraud_alerts (
    seq INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    raised_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fraud_alerts_application ON fraud_alerts (application_id);
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


class NewAlert(StrictModel):
    application_id: RecordId
    reason: Text = Field(description="What fraud monitoring saw.")
    source: Text = "fraud-monitoring"
    alert_id: RecordId | None = Field(
        None, description="The alert's own ID, when the monitoring tool assigns one."
    )


class Alert(StrictModel):
    alert_id: str
    application_id: str
    reason: str
    source: str
    raised_at: datetime


_SELECT_ALERTS = f"SELECT {columns(Alert)} FROM fraud_alerts"


@router.post("/alerts", status_code=201)
def raise_alert(alert: NewAlert, db: Db) -> Alert:
    """Raise an alert on a loan application (what fraud monitoring does)."""
    with db.transaction() as conn:
        seq, assigned = next_id(conn, "fraud_alerts", "FA")
        alert_id = alert.alert_id or assigned
        refuse_duplicate(conn, "fraud alert", "fraud_alerts", "alert_id", alert_id)
        raised = Alert(
            **alert.model_dump(exclude={"alert_id"}), alert_id=alert_id, raised_at=utc_now()
        )
        insert(conn, "fraud_alerts", {"seq": seq, **raised.model_dump(mode="json")})
    return raised


@router.get("/alerts")
def list_alerts(db: Db, application_id: str | None = None) -> list[Alert]:
    """Alerts, oldest first, optionally on one application."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT_ALERTS} WHERE ? IS NULL OR application_id = ? ORDER BY seq",
            (application_id, application_id),
        ).fetchall()
    return [Alert.model_validate(dict(row)) for row in rows]


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: str, db: Db) -> Alert:
    with db.transaction() as conn:
        row = conn.execute(f"{_SELECT_ALERTS} WHERE alert_id = ?", (alert_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"fraud alert {alert_id} not found")
    return Alert.model_validate(dict(row))
