"""The policy-administration stand-in: insurance policies (cover, deductible, limit, exclusions,
wording) and the register of claims made on each, where a claim is closed (or reopened when a
payout is recovered)."""

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
    OptionalIdempotencyKey,
    apply_once,
    columns,
    insert,
    refuse_duplicate,
    utc_now,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS insurance_policies (
    seq INTEGER PRIMARY KEY,
    policy_number TEXT NOT NULL UNIQUE,
    holder_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    product TEXT NOT NULL,
    status TEXT NOT NULL,
    inception_date TEXT NOT NULL,
    expiry_date TEXT NOT NULL,
    currency TEXT NOT NULL,
    limit_amount TEXT NOT NULL,
    deductible TEXT NOT NULL,
    covered_perils TEXT NOT NULL,
    exclusions TEXT NOT NULL,
    wording TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS insurance_policies_holder ON insurance_policies (holder_id);
-- The claims register of each policy: one row per claim, its latest status.
CREATE TABLE IF NOT EXISTS insurance_policy_claims (
    seq INTEGER PRIMARY KEY,
    policy_number TEXT NOT NULL,
    claim_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    amount_paid TEXT,
    note TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

router = APIRouter(prefix="/policy-admin", tags=["Policy administration"])

PolicyStatus = Literal["active", "lapsed", "cancelled"]
ClaimRegisterStatus = Literal["paid", "denied", "withdrawn", "reopened"]


class Exclusion(StrictModel):
    peril: RecordId = Field(description="The peril the exclusion takes out of cover.")
    wording: Text


class NewInsurancePolicy(StrictModel):
    policy_number: RecordId
    holder_id: RecordId
    holder_name: Text
    product: Text = "motor"
    status: PolicyStatus = "active"
    inception_date: date
    expiry_date: date
    currency: Currency = "EUR"
    limit_amount: Money = Field(description="The most the policy pays on one claim.")
    deductible: Money = Field(description="What the holder bears on each claim.")
    covered_perils: list[RecordId] = Field(min_length=1)
    exclusions: list[Exclusion] = Field(default_factory=list)
    wording: str = Field(min_length=1, max_length=20000)


class InsurancePolicy(NewInsurancePolicy):
    pass


class ClaimClosure(StrictModel):
    status: ClaimRegisterStatus
    amount_paid: Money | None = None
    note: Text


class RegisteredClaim(StrictModel):
    policy_number: str
    claim_id: str
    status: str
    amount_paid: Decimal | None
    note: str
    updated_at: datetime


_SELECT = f"SELECT {columns(InsurancePolicy)} FROM insurance_policies"
_SELECT_CLAIM = f"SELECT {columns(RegisteredClaim)} FROM insurance_policy_claims"
_LISTS = ("covered_perils", "exclusions")


def _policy(conn: sqlite3.Connection, policy_number: str) -> InsurancePolicy:
    row = conn.execute(f"{_SELECT} WHERE policy_number = ?", (policy_number,)).fetchone()
    if row is None:
        raise HTTPException(404, f"policy {policy_number} not found")
    return InsurancePolicy.model_validate(
        dict(row) | {name: json.loads(row[name]) for name in _LISTS}
    )


def _registered(conn: sqlite3.Connection, claim_id: str) -> RegisteredClaim | None:
    row = conn.execute(f"{_SELECT_CLAIM} WHERE claim_id = ?", (claim_id,)).fetchone()
    return None if row is None else RegisteredClaim.model_validate(dict(row))


@router.post("/policies", status_code=201)
def create_policy(policy: NewInsurancePolicy, db: Db) -> InsurancePolicy:
    """Record an insurance policy (test data)."""
    if policy.expiry_date <= policy.inception_date:
        raise HTTPException(422, "expiry_date must be after inception_date")
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "policy", "insurance_policies", "policy_number", policy.policy_number
        )
        row = policy.model_dump(mode="json")
        insert(conn, "insurance_policies", row | {name: json.dumps(row[name]) for name in _LISTS})
    return InsurancePolicy(**policy.model_dump())


@router.get("/policies/{policy_number}")
def get_policy(policy_number: str, db: Db) -> InsurancePolicy:
    with db.transaction() as conn:
        return _policy(conn, policy_number)


@router.get("/policies/{policy_number}/claims/{claim_id}")
def get_registered_claim(policy_number: str, claim_id: str, db: Db) -> RegisteredClaim:
    with db.transaction() as conn:
        registered = _registered(conn, claim_id)
    if registered is None or registered.policy_number != policy_number:
        raise HTTPException(404, f"claim {claim_id} is not on policy {policy_number}'s register")
    return registered


@router.post("/policies/{policy_number}/claims/{claim_id}")
def set_claim_status(
    policy_number: str,
    claim_id: str,
    closure: ClaimClosure,
    key: OptionalIdempotencyKey,
    response: Response,
    db: Db,
) -> RegisteredClaim:
    """Close a claim on the policy's register (paid, denied, withdrawn), or reopen it (a payout
    recovered). Retrying with the same Idempotency-Key changes nothing more."""

    def apply(conn: sqlite3.Connection) -> RegisteredClaim:
        _policy(conn, policy_number)
        existing = _registered(conn, claim_id)
        if existing is not None and existing.policy_number != policy_number:
            raise HTTPException(409, f"claim {claim_id} is on policy {existing.policy_number}")
        row = {
            "policy_number": policy_number,
            "claim_id": claim_id,
            "status": closure.status,
            "amount_paid": None if closure.amount_paid is None else str(closure.amount_paid),
            "note": closure.note,
            "updated_at": utc_now().isoformat(),
        }
        if existing is None:
            insert(conn, "insurance_policy_claims", row)
        else:
            conn.execute(
                "UPDATE insurance_policy_claims SET status = :status, amount_paid = "
                ":amount_paid, note = :note, updated_at = :updated_at WHERE claim_id = :claim_id",
                row,
            )
        registered = _registered(conn, claim_id)
        assert registered is not None
        return registered

    return apply_once(
        db,
        response,
        operation="policy claim status",
        key=key,
        subject=f"{policy_number}/{claim_id}",
        request=closure,
        result_type=RegisteredClaim,
        apply=apply,
    )
