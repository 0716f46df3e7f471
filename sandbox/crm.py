"""The CRM stand-in for customer service: customer records and the refund notes on them.

Customer onboarding registers new customers here (``/crm/customers/registrations``, once per
Idempotency-Key) and closes them again when the onboarding is undone.

Sales records (accounts, leads) are a separate module, ``crm_sales``; this one only serves
``/crm/customers/...``.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from casework.sandbox.models import Closing, Currency, PositiveMoney, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    IdempotencyKey,
    apply_once,
    columns,
    insert,
    next_id,
    refuse_duplicate,
    utc_now,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_customers (
    seq INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    tier TEXT NOT NULL,
    status TEXT NOT NULL,
    customer_since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crm_customer_refund_notes (
    seq INTEGER PRIMARY KEY,
    note_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL REFERENCES crm_customers (customer_id),
    order_id TEXT NOT NULL,
    refund_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    note TEXT NOT NULL,
    case_id TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_customer_refund_notes_customer
    ON crm_customer_refund_notes (customer_id);
-- Customers an onboarding registered: which application, and when and why they were closed.
CREATE TABLE IF NOT EXISTS crm_customer_registrations (
    seq INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL UNIQUE REFERENCES crm_customers (customer_id),
    application_id TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    closed_at TEXT,
    close_reason TEXT
);
CREATE INDEX IF NOT EXISTS crm_customer_registrations_application
    ON crm_customer_registrations (application_id);
"""

router = APIRouter(prefix="/crm/customers", tags=["CRM: customers"])

CustomerTier = Literal["standard", "silver", "gold"]


class Customer(StrictModel):
    customer_id: RecordId
    name: Text
    email: Text
    tier: CustomerTier = "standard"
    status: Literal["active", "closed"] = "active"
    customer_since: date = Field(default_factory=date.today)


class NewRefundNote(StrictModel):
    order_id: RecordId
    refund_id: RecordId
    amount: PositiveMoney
    currency: Currency
    note: Text
    case_id: Text | None = None


class RefundNote(NewRefundNote):
    note_id: str
    customer_id: str
    amount: Decimal
    created_at: datetime


_SELECT_CUSTOMERS = f"SELECT {columns(Customer)} FROM crm_customers"
_SELECT_NOTES = f"SELECT {columns(RefundNote)} FROM crm_customer_refund_notes"


def _get_customer(conn: sqlite3.Connection, customer_id: str) -> Customer:
    row = conn.execute(f"{_SELECT_CUSTOMERS} WHERE customer_id = ?", (customer_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"customer {customer_id} not found")
    return Customer.model_validate(dict(row))


@router.post("", status_code=201)
def create_customer(customer: Customer, db: Db) -> Customer:
    """Record a customer (test data)."""
    with db.transaction() as conn:
        refuse_duplicate(conn, "customer", "crm_customers", "customer_id", customer.customer_id)
        insert(conn, "crm_customers", customer.model_dump(mode="json"))
    return customer


@router.get("")
def list_customers(db: Db, tier: CustomerTier | None = None) -> list[Customer]:
    """Customers in the order they were created, optionally of one tier."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT_CUSTOMERS} WHERE ? IS NULL OR tier = ? ORDER BY seq", (tier, tier)
        ).fetchall()
    return [Customer.model_validate(dict(row)) for row in rows]


class NewRegistration(StrictModel):
    application_id: RecordId
    name: Text
    email: Text


class Registration(NewRegistration):
    customer_id: str
    status: Literal["active", "closed"]
    registered_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None


_SELECT_REGISTRATIONS = (
    "SELECT c.customer_id, c.name, c.email, c.status, r.application_id, r.registered_at, "
    "r.closed_at, r.close_reason FROM crm_customer_registrations r "
    "JOIN crm_customers c USING (customer_id)"
)


def _get_registration(conn: sqlite3.Connection, customer_id: str) -> Registration:
    row = conn.execute(f"{_SELECT_REGISTRATIONS} WHERE customer_id = ?", (customer_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"registered customer {customer_id} not found")
    return Registration.model_validate(dict(row))


@router.post("/registrations", status_code=201)
def register_customer(
    registration: NewRegistration, key: IdempotencyKey, response: Response, db: Db
) -> Registration:
    """Register a new customer from an onboarding application; a retry with the same
    Idempotency-Key returns the customer it registered."""

    def apply(conn: sqlite3.Connection) -> Registration:
        seq, customer_id = next_id(conn, "crm_customer_registrations", "CRM")
        now = utc_now()
        insert(
            conn,
            "crm_customers",
            Customer(
                customer_id=customer_id,
                name=registration.name,
                email=registration.email,
                customer_since=now.date(),
            ).model_dump(mode="json"),
        )
        insert(
            conn,
            "crm_customer_registrations",
            {
                "seq": seq,
                "customer_id": customer_id,
                "application_id": registration.application_id,
                "registered_at": now.isoformat(),
            },
        )
        return _get_registration(conn, customer_id)

    return apply_once(
        db,
        response,
        operation="crm customer registration",
        key=key,
        request=registration,
        result_type=Registration,
        apply=apply,
    )


@router.get("/registrations")
def list_registrations(db: Db, application_id: str | None = None) -> list[Registration]:
    """Registered customers, oldest first, optionally those of one application."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT_REGISTRATIONS} WHERE ? IS NULL OR application_id = ? ORDER BY r.seq",
            (application_id, application_id),
        ).fetchall()
    return [Registration.model_validate(dict(row)) for row in rows]


@router.post("/{customer_id}/close")
def close_customer(
    customer_id: str, closing: Closing, key: IdempotencyKey, response: Response, db: Db
) -> Registration:
    """Close a registered customer; closing a closed one changes nothing."""

    def apply(conn: sqlite3.Connection) -> Registration:
        registration = _get_registration(conn, customer_id)
        if registration.status != "closed":
            conn.execute(
                "UPDATE crm_customers SET status = 'closed' WHERE customer_id = ?", (customer_id,)
            )
            conn.execute(
                "UPDATE crm_customer_registrations SET closed_at = ?, close_reason = ? "
                "WHERE customer_id = ?",
                (utc_now().isoformat(), closing.reason, customer_id),
            )
        return _get_registration(conn, customer_id)

    return apply_once(
        db,
        response,
        operation="crm customer closing",
        key=key,
        subject=customer_id,
        request=closing,
        result_type=Registration,
        apply=apply,
    )


@router.get("/{customer_id}")
def get_customer(customer_id: str, db: Db) -> Customer:
    with db.transaction() as conn:
        return _get_customer(conn, customer_id)


@router.post("/{customer_id}/refund-notes", status_code=201)
def add_refund_note(
    customer_id: str, note: NewRefundNote, key: IdempotencyKey, response: Response, db: Db
) -> RefundNote:
    """Note a refund on the customer's record, at most once per Idempotency-Key.

    A closed customer record takes no new notes (409).
    """

    def apply(conn: sqlite3.Connection) -> RefundNote:
        customer = _get_customer(conn, customer_id)
        if customer.status == "closed":
            raise HTTPException(409, f"customer {customer_id} is closed; it takes no new notes")
        seq, note_id = next_id(conn, "crm_customer_refund_notes", "CRN")
        created = RefundNote(
            **note.model_dump(), note_id=note_id, customer_id=customer_id, created_at=utc_now()
        )
        insert(conn, "crm_customer_refund_notes", {"seq": seq, **created.model_dump(mode="json")})
        return created

    return apply_once(
        db,
        response,
        operation="crm refund note",
        key=key,
        subject=customer_id,
        request=note,
        result_type=RefundNote,
        apply=apply,
    )


@router.get("/{customer_id}/refund-notes")
def list_refund_notes(customer_id: str, db: Db) -> list[RefundNote]:
    """The refund notes on a customer's record, oldest first."""
    with db.transaction() as conn:
        _get_customer(conn, customer_id)
        rows = conn.execute(
            f"{_SELECT_NOTES} WHERE customer_id = ? ORDER BY seq", (customer_id,)
        ).fetchall()
    return [RefundNote.model_validate(dict(row)) for row in rows]
