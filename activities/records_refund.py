"""Records the refund process reads and writes: orders, CRM customers, fraud signals, refunds.

Pure pydantic, safe in workflow code. Unknown fields from the systems are ignored, as in
``activities.records``; timestamps are timezone-aware, as the sandbox sends them.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from activities.records import OrderLine, Record


class Order(Record):
    order_id: str
    customer_id: str
    currency: str
    lines: list[OrderLine]
    total: Decimal
    payment_status: str
    """``captured`` when the customer's money was taken; ``pending``, ``failed``,
    ``charged_back`` otherwise."""
    payment_reference: str | None = None
    fulfilment_status: str
    placed_at: datetime
    delivered_at: datetime | None = None


class Customer(Record):
    customer_id: str
    name: str
    email: str
    tier: str
    status: str = "active"
    customer_since: date | None = None


class FraudSignal(Record):
    signal_id: str
    customer_id: str
    order_id: str | None = None
    kind: str
    severity: str
    detail: str
    raised_at: datetime | None = None


class Refund(Record):
    refund_id: str
    order_id: str
    customer_id: str
    amount: Decimal
    currency: str
    status: str
    """``issued`` or ``reversed``."""
    idempotency_key: str | None = None
    reason: str | None = None
    created_at: datetime | None = None
    reversed_at: datetime | None = None


class RefundNote(Record):
    note_id: str
    customer_id: str
    order_id: str
    refund_id: str
    amount: Decimal
    currency: str
    note: str
