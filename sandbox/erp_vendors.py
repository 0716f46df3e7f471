"""The ERP's vendor master: the vendors the company may order from and pay.

Kept apart from ``erp.py`` (suppliers, orders, invoices) because it has tables of its own; it
serves under the same ``/erp`` prefix. Creating a vendor takes an ``Idempotency-Key``: a retried
creation returns the vendor the first attempt created instead of making a second one.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from casework.sandbox.models import Closing, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    FinalStatus,
    IdempotencyKey,
    RecordTable,
    applied_under,
    apply_once,
    columns,
    insert,
    next_id,
    utc_now,
)
from sandbox.vendors import Country, Email

router = APIRouter(prefix="/erp/vendors", tags=["ERP vendor master"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS erp_vendors (
    seq INTEGER PRIMARY KEY,
    vendor_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    tax_id TEXT NOT NULL,
    tax_id_key TEXT NOT NULL,
    bank_account TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    application_id TEXT,
    approved_by TEXT NOT NULL,
    documents TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deactivated_at TEXT,
    deactivation_reason TEXT
);
CREATE INDEX IF NOT EXISTS erp_vendors_tax_id ON erp_vendors (tax_id_key);
"""


class NewVendor(StrictModel):
    name: Text
    country: Country
    tax_id: Text
    bank_account: Text
    contact_email: Email
    application_id: RecordId | None = Field(
        default=None, description="The onboarding application the vendor was approved from."
    )
    approved_by: list[Text] = Field(default_factory=list)
    documents: list[RecordId] = Field(
        default_factory=list, description="The documents the approval rested on."
    )


class Vendor(NewVendor):
    vendor_id: str
    status: Literal["active", "inactive"]
    created_at: datetime
    deactivated_at: datetime | None = None
    deactivation_reason: str | None = None


class Deactivation(Closing):
    """Why a vendor is blocked from orders and payments."""


_SELECT = f"SELECT {columns(Vendor)} FROM erp_vendors"


def _tax_id_key(tax_id: str) -> str:
    """Tax IDs are compared without spaces, dots or dashes, and case-insensitively."""
    return "".join(ch for ch in tax_id.upper() if ch.isalnum())


def _vendor_from_row(row: sqlite3.Row) -> Vendor:
    return Vendor.model_validate(
        dict(row)
        | {"approved_by": json.loads(row["approved_by"]), "documents": json.loads(row["documents"])}
    )


def _get_vendor(conn: sqlite3.Connection, vendor_id: str) -> Vendor:
    row = conn.execute(f"{_SELECT} WHERE vendor_id = ?", (vendor_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"vendor {vendor_id} not found")
    return _vendor_from_row(row)


VENDORS = RecordTable(Vendor, "erp_vendors", "vendor_id", _get_vendor)
DEACTIVATED = FinalStatus(
    "inactive", at_column="deactivated_at", reason_column="deactivation_reason"
)


@router.post("", status_code=201)
def create_vendor(vendor: NewVendor, key: IdempotencyKey, response: Response, db: Db) -> Vendor:
    """Create a vendor. Retrying with the same Idempotency-Key returns the first vendor; a second
    active vendor with the same tax ID is refused."""

    def apply(conn: sqlite3.Connection) -> Vendor:
        tax_id_key = _tax_id_key(vendor.tax_id)
        existing = conn.execute(
            "SELECT vendor_id FROM erp_vendors WHERE tax_id_key = ? AND status = 'active'",
            (tax_id_key,),
        ).fetchone()
        if existing is not None:
            raise HTTPException(
                409, f"tax_id: vendor {existing['vendor_id']} already has tax ID {vendor.tax_id}"
            )
        seq, vendor_id = next_id(conn, "erp_vendors", "VEN")
        created = Vendor(
            **vendor.model_dump(), vendor_id=vendor_id, status="active", created_at=utc_now()
        )
        insert(
            conn,
            "erp_vendors",
            created.model_dump(mode="json")
            | {
                "seq": seq,
                "tax_id_key": tax_id_key,
                "approved_by": json.dumps(created.approved_by),
                "documents": json.dumps(created.documents),
            },
        )
        return created

    return apply_once(
        db,
        response,
        operation="vendor creation",
        key=key,
        request=vendor,
        result_type=Vendor,
        apply=apply,
    )


@router.get("")
def list_vendors(
    db: Db, tax_id: str | None = None, application_id: str | None = None
) -> list[Vendor]:
    """The vendor master, oldest first, optionally by tax ID or onboarding application."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT} WHERE (:tax_id IS NULL OR tax_id_key = :tax_id)
                AND (:application_id IS NULL OR application_id = :application_id) ORDER BY seq""",
            {
                "tax_id": None if tax_id is None else _tax_id_key(tax_id),
                "application_id": application_id,
            },
        ).fetchall()
    return [_vendor_from_row(row) for row in rows]


@router.get("/created-under/{key}")
def vendor_created_under(key: str, db: Db) -> Vendor:
    """The vendor a creation with Idempotency-Key `key` made, as it is now; 404 when no
    creation was applied under that key."""
    with db.transaction() as conn:
        created = applied_under(conn, "vendor creation", key, Vendor)
        if created is None:
            raise HTTPException(404, f"no vendor was created under Idempotency-Key {key}")
        return _get_vendor(conn, created.vendor_id)


@router.get("/{vendor_id}")
def get_vendor(vendor_id: str, db: Db) -> Vendor:
    with db.transaction() as conn:
        return _get_vendor(conn, vendor_id)


@router.post("/{vendor_id}/deactivate")
def deactivate_vendor(
    vendor_id: str, deactivation: Deactivation, key: IdempotencyKey, response: Response, db: Db
) -> Vendor:
    """Block a vendor from orders and payments; deactivating an inactive one changes nothing."""

    return VENDORS.close_once(
        db,
        response,
        operation="vendor deactivation",
        key=key,
        record_id=vendor_id,
        request=deactivation,
        final=DEACTIVATED,
    )
