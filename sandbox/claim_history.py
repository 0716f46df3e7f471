"""The claim-history stand-in: the insurer's record of past claims (by policyholder, by peril,
by repair shop) and the fraud findings its special investigators record against claims."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from casework.sandbox.models import Money, RecordId, StrictModel, Text
from casework.sandbox.store import Db, columns, insert, next_id, refuse_duplicate, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS claim_history (
    seq INTEGER PRIMARY KEY,
    claim_id TEXT NOT NULL UNIQUE,
    policy_number TEXT NOT NULL,
    holder_id TEXT NOT NULL,
    loss_date TEXT NOT NULL,
    peril TEXT NOT NULL,
    repair_shop TEXT,
    amount_paid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    description TEXT NOT NULL,
    fraud_confirmed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS claim_history_holder ON claim_history (holder_id);
CREATE TABLE IF NOT EXISTS claim_fraud_findings (
    seq INTEGER PRIMARY KEY,
    finding_id TEXT NOT NULL UNIQUE,
    claim_id TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
"""

router = APIRouter(prefix="/claim-history", tags=["Claim history"])


class PastClaim(StrictModel):
    claim_id: RecordId
    policy_number: RecordId
    holder_id: RecordId
    loss_date: date
    peril: RecordId
    repair_shop: Text | None = None
    amount_paid: Money
    outcome: Literal["paid", "denied", "withdrawn", "recovered"] = "paid"
    description: Text
    fraud_confirmed: bool = False


class NewFraudFinding(StrictModel):
    claim_id: RecordId
    source: Text
    reason: Text


class FraudFinding(NewFraudFinding):
    finding_id: str
    recorded_at: datetime


_SELECT = f"SELECT {columns(PastClaim)} FROM claim_history"


def _past(rows: list[sqlite3.Row]) -> list[PastClaim]:
    return [
        PastClaim.model_validate(dict(row) | {"amount_paid": Decimal(row["amount_paid"])})
        for row in rows
    ]


@router.post("/claims", status_code=201)
def record_past_claim(claim: PastClaim, db: Db) -> PastClaim:
    """Record a past claim (test data)."""
    with db.transaction() as conn:
        refuse_duplicate(conn, "past claim", "claim_history", "claim_id", claim.claim_id)
        insert(conn, "claim_history", claim.model_dump(mode="json"))
    return claim


@router.get("/holders/{holder_id}/claims")
def prior_claims(holder_id: str, db: Db) -> list[PastClaim]:
    """A policyholder's past claims, oldest first."""
    with db.transaction() as conn:
        rows = conn.execute(f"{_SELECT} WHERE holder_id = ? ORDER BY seq", (holder_id,)).fetchall()
    return _past(rows)


@router.get("/similar")
def similar_claims(
    db: Db,
    peril: Annotated[str, Query(min_length=1)],
    repair_shop: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[PastClaim]:
    """Past claims like one: through the same repair shop, or else of the same peril; newest
    first."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT} WHERE (? IS NOT NULL AND repair_shop = ?) OR peril = ? "
            "ORDER BY (repair_shop IS ?) DESC, seq DESC LIMIT ?",
            (repair_shop, repair_shop, peril, repair_shop, limit),
        ).fetchall()
    return _past(rows)


@router.post("/fraud-findings", status_code=201)
def record_fraud_finding(finding: NewFraudFinding, db: Db) -> FraudFinding:
    """A special investigator records that a claim was fraudulent."""
    with db.transaction() as conn:
        seq, finding_id = next_id(conn, "claim_fraud_findings", "FF")
        created = FraudFinding(finding_id=finding_id, recorded_at=utc_now(), **finding.model_dump())
        insert(conn, "claim_fraud_findings", {"seq": seq, **created.model_dump(mode="json")})
    return created


@router.get("/fraud-findings/{finding_id}")
def get_fraud_finding(finding_id: str, db: Db) -> FraudFinding:
    with db.transaction() as conn:
        row = conn.execute(
            f"SELECT {columns(FraudFinding)} FROM claim_fraud_findings WHERE finding_id = ?",
            (finding_id,),
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"fraud finding {finding_id} not found")
    return FraudFinding.model_validate(dict(row))
