"""The payments stand-in: pays invoices, disburses loans and refunds customers, each exactly once
per Idempotency-Key; payouts share one ledger (``/payments``), refunds have theirs
(``/payments/refunds``)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Response

from casework.sandbox.models import Closing, Currency, PositiveMoney, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    FinalStatus,
    IdempotencyKey,
    RecordTable,
    apply_once,
    columns,
    insert,
    next_id,
    utc_now,
)

router = APIRouter(prefix="/payments", tags=["Payments"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE,
    invoice_id TEXT NOT NULL,
    supplier_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    reversed_at TEXT,
    reversal_reason TEXT
);
CREATE INDEX IF NOT EXISTS payments_invoice ON payments (invoice_id);
-- Refunds to customers: money out of the same payments system, in a ledger of their own.
CREATE TABLE IF NOT EXISTS payments_refunds (
    seq INTEGER PRIMARY KEY,
    refund_id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT,
    reference TEXT,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    reversed_at TEXT,
    reversal_reason TEXT
);
CREATE INDEX IF NOT EXISTS payments_refunds_order ON payments_refunds (order_id);
CREATE INDEX IF NOT EXISTS payments_refunds_customer ON payments_refunds (customer_id);
"""


class PaymentRequest(StrictModel):
    invoice_id: RecordId
    supplier_id: RecordId
    amount: PositiveMoney
    currency: Currency
    reference: Text | None = None


class DisbursementRequest(StrictModel):
    application_id: RecordId
    borrower_id: RecordId
    amount: PositiveMoney
    currency: Currency
    reference: Text | None = None


class Reversal(Closing):
    """Why a payment or a refund is taken back."""


class Payment(StrictModel):
    payment_id: str
    invoice_id: str
    supplier_id: str
    amount: Decimal
    currency: str
    reference: str | None
    status: Literal["completed", "reversed"]
    idempotency_key: str
    created_at: datetime
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


_SELECT = f"SELECT {columns(Payment)} FROM payments"


def _get_payment(conn: sqlite3.Connection, payment_id: str) -> Payment:
    row = conn.execute(f"{_SELECT} WHERE payment_id = ?", (payment_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"payment {payment_id} not found")
    return Payment.model_validate(dict(row))


PAYMENTS = RecordTable(Payment, "payments", "payment_id", _get_payment)
REVERSED = FinalStatus("reversed", at_column="reversed_at", reason_column="reversal_reason")


def _paid_so_far(conn: sqlite3.Connection, invoice_id: str) -> tuple[Decimal, list[str]]:
    """What the ledger paid out on an invoice (or a loan) and not reversed, and the payments."""
    rows = conn.execute(
        "SELECT payment_id, amount FROM payments WHERE invoice_id = ? AND status = 'completed'",
        (invoice_id,),
    ).fetchall()
    return sum((Decimal(row["amount"]) for row in rows), Decimal(0)), [
        row["payment_id"] for row in rows
    ]


def _refuse_over_payment(
    conn: sqlite3.Connection, object_id: str, amount: Decimal, limit: Decimal, what: str
) -> None:
    paid, payments = _paid_so_far(conn, object_id)
    if paid + amount > limit:
        raise HTTPException(
            409,
            f"paying {amount} on {object_id} would pay more than {what} {limit}: already paid "
            f"{paid}" + (f" ({', '.join(payments)})" if payments else ""),
        )


@router.post("", status_code=201)
def create_payment(
    request: PaymentRequest, key: IdempotencyKey, response: Response, db: Db
) -> Payment:
    """Pay an invoice. Retrying with the same Idempotency-Key returns the first payment; a
    payment that would take an ERP invoice's payments above its total is a 409."""

    def apply(conn: sqlite3.Connection) -> Payment:
        invoice = conn.execute(
            "SELECT total FROM invoices WHERE invoice_id = ?", (request.invoice_id,)
        ).fetchone()
        if invoice is not None:
            limit = Decimal(invoice["total"])
            _refuse_over_payment(conn, request.invoice_id, request.amount, limit, "its total")
        seq, payment_id = next_id(conn, "payments", "PAY")
        payment = Payment(
            payment_id=payment_id,
            **request.model_dump(),
            status="completed",
            idempotency_key=key,
            created_at=utc_now(),
        )
        insert(conn, "payments", {"seq": seq, **payment.model_dump(mode="json")})
        return payment

    return apply_once(
        db,
        response,
        operation="payment",
        key=key,
        request=request,
        result_type=Payment,
        apply=apply,
    )


@router.post("/disbursements", status_code=201)
def create_disbursement(
    request: DisbursementRequest, key: IdempotencyKey, response: Response, db: Db
) -> Payment:
    """Pay out a loan. It is an entry in the same ledger as invoice payments (``invoice_id`` is
    the loan application, ``supplier_id`` the borrower), so one ledger shows every payout and is
    the one place to check for duplicates; reverse it like any payment. A loan the lending
    system knows is paid out only once approved, and never above the approved amount (409)."""

    def apply(conn: sqlite3.Connection) -> Payment:
        application = conn.execute(
            "SELECT status, approved_amount FROM lending_applications WHERE application_id = ?",
            (request.application_id,),
        ).fetchone()
        if application is not None:
            if application["status"] != "approved" or application["approved_amount"] is None:
                raise HTTPException(
                    409,
                    f"loan application {request.application_id} is {application['status']}, "
                    "not approved: nothing may be paid out",
                )
            limit = Decimal(application["approved_amount"])
            _refuse_over_payment(
                conn, request.application_id, request.amount, limit, "the approved amount"
            )
        seq, payment_id = next_id(conn, "payments", "PAY")
        payment = Payment(
            payment_id=payment_id,
            invoice_id=request.application_id,
            supplier_id=request.borrower_id,
            amount=request.amount,
            currency=request.currency,
            reference=request.reference,
            status="completed",
            idempotency_key=key,
            created_at=utc_now(),
        )
        insert(conn, "payments", {"seq": seq, **payment.model_dump(mode="json")})
        return payment

    return apply_once(
        db,
        response,
        operation="disbursement",
        key=key,
        request=request,
        result_type=Payment,
        apply=apply,
    )


@router.get("")
def list_payments(db: Db, invoice_id: str | None = None) -> list[Payment]:
    """The ledger, oldest first, optionally for one invoice."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT} WHERE ? IS NULL OR invoice_id = ? ORDER BY seq", (invoice_id, invoice_id)
        ).fetchall()
    return [Payment.model_validate(dict(row)) for row in rows]


# --- refunds to customers ---------------------------------------------------------------------
# Declared before /{payment_id}, which would otherwise take "refunds" for a payment id.


class RefundRequest(StrictModel):
    order_id: RecordId
    customer_id: RecordId
    amount: PositiveMoney
    currency: Currency
    reason: Text | None = None
    reference: Text | None = None


class Refund(StrictModel):
    refund_id: str
    order_id: str
    customer_id: str
    amount: Decimal
    currency: str
    reason: str | None
    reference: str | None
    status: Literal["issued", "reversed"]
    idempotency_key: str
    created_at: datetime
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


_SELECT_REFUNDS = f"SELECT {columns(Refund)} FROM payments_refunds"


def _get_refund(conn: sqlite3.Connection, refund_id: str) -> Refund:
    row = conn.execute(f"{_SELECT_REFUNDS} WHERE refund_id = ?", (refund_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"refund {refund_id} not found")
    return Refund.model_validate(dict(row))


REFUNDS = RecordTable(Refund, "payments_refunds", "refund_id", _get_refund)


def _refuse_over_refund(conn: sqlite3.Connection, request: RefundRequest) -> None:
    """An order is never refunded more than it was paid, whichever case or clerk asks: the
    refunds issued on it (and not reversed) plus this one stay within its total."""
    order = conn.execute(
        "SELECT total, currency FROM orders WHERE order_id = ?", (request.order_id,)
    ).fetchone()
    if order is None:
        return
    issued = conn.execute(
        "SELECT refund_id, amount FROM payments_refunds WHERE order_id = ? AND status = 'issued'",
        (request.order_id,),
    ).fetchall()
    already = sum((Decimal(row["amount"]) for row in issued), Decimal(0))
    total = Decimal(order["total"])
    if already + request.amount > total:
        raise HTTPException(
            409,
            f"refund of {request.amount} {request.currency} on order {request.order_id} would "
            f"refund more than was paid: total {total} {order['currency']}, already refunded "
            f"{already}"
            + (f" ({', '.join(row['refund_id'] for row in issued)})" if issued else ""),
        )


@router.post("/refunds", status_code=201)
def issue_refund(request: RefundRequest, key: IdempotencyKey, response: Response, db: Db) -> Refund:
    """Refund a customer. Retrying with the same Idempotency-Key returns the first refund; a
    refund that would take an order's refunds above its total is a 409."""

    def apply(conn: sqlite3.Connection) -> Refund:
        _refuse_over_refund(conn, request)
        seq, refund_id = next_id(conn, "payments_refunds", "REF")
        refund = Refund(
            refund_id=refund_id,
            **request.model_dump(),
            status="issued",
            idempotency_key=key,
            created_at=utc_now(),
        )
        insert(conn, "payments_refunds", {"seq": seq, **refund.model_dump(mode="json")})
        return refund

    return apply_once(
        db,
        response,
        operation="refund",
        key=key,
        request=request,
        result_type=Refund,
        apply=apply,
    )


@router.get("/refunds")
def list_refunds(
    db: Db, order_id: str | None = None, customer_id: str | None = None
) -> list[Refund]:
    """The refund ledger, oldest first, optionally for one order and/or one customer."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT_REFUNDS} WHERE (:order_id IS NULL OR order_id = :order_id)
                AND (:customer_id IS NULL OR customer_id = :customer_id) ORDER BY seq""",
            {"order_id": order_id, "customer_id": customer_id},
        ).fetchall()
    return [Refund.model_validate(dict(row)) for row in rows]


@router.get("/refunds/{refund_id}")
def get_refund(refund_id: str, db: Db) -> Refund:
    with db.transaction() as conn:
        return _get_refund(conn, refund_id)


@router.post("/refunds/{refund_id}/reverse")
def reverse_refund(
    refund_id: str, reversal: Reversal, key: IdempotencyKey, response: Response, db: Db
) -> Refund:
    """Take a refund back; reversing one that is already reversed changes nothing."""

    return REFUNDS.close_once(
        db,
        response,
        operation="refund reversal",
        key=key,
        record_id=refund_id,
        request=reversal,
        final=REVERSED,
    )


# --- payments by id --------------------------------------------------------------------------


@router.get("/{payment_id}")
def get_payment(payment_id: str, db: Db) -> Payment:
    with db.transaction() as conn:
        return _get_payment(conn, payment_id)


@router.post("/{payment_id}/reverse")
def reverse_payment(
    payment_id: str, reversal: Reversal, key: IdempotencyKey, response: Response, db: Db
) -> Payment:
    """Reverse a payment; reversing one that is already reversed changes nothing."""

    return PAYMENTS.close_once(
        db,
        response,
        operation="payment reversal",
        key=key,
        record_id=payment_id,
        request=reversal,
        final=REVERSED,
    )
