"""The claims stand-in: first notices of loss with their documents (claim form, policy, repair
estimate, police or incident report, as text), letters to claimants, and the claim payout
ledger, where each claim is paid at most once per Idempotency-Key and a payout can be reversed
(recovered)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from casework.sandbox.models import (
    Closing,
    Currency,
    Money,
    PositiveMoney,
    RecordId,
    StrictModel,
    Text,
)
from casework.sandbox.store import (
    Db,
    FinalStatus,
    IdempotencyKey,
    RecordTable,
    apply_once,
    columns,
    insert,
    next_id,
    refuse_duplicate,
    utc_now,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    seq INTEGER PRIMARY KEY,
    claim_id TEXT NOT NULL UNIQUE,
    policy_number TEXT NOT NULL,
    claimant_id TEXT NOT NULL,
    claimant_name TEXT NOT NULL,
    claimant_email TEXT NOT NULL,
    loss_date TEXT NOT NULL,
    peril TEXT NOT NULL,
    description TEXT NOT NULL,
    vehicle_class TEXT NOT NULL,
    repair_shop TEXT,
    currency TEXT NOT NULL,
    estimate_lines TEXT NOT NULL,
    estimate_total TEXT NOT NULL,
    reported_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claim_documents (
    seq INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL UNIQUE,
    claim_id TEXT NOT NULL REFERENCES claims (claim_id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS claim_documents_claim ON claim_documents (claim_id);
CREATE TABLE IF NOT EXISTS claim_letters (
    seq INTEGER PRIMARY KEY,
    letter_id TEXT NOT NULL UNIQUE,
    claim_id TEXT NOT NULL REFERENCES claims (claim_id),
    "to" TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claim_payouts (
    seq INTEGER PRIMARY KEY,
    payout_id TEXT NOT NULL UNIQUE,
    claim_id TEXT NOT NULL REFERENCES claims (claim_id),
    payee_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    reversed_at TEXT,
    reversal_reason TEXT
);
CREATE INDEX IF NOT EXISTS claim_payouts_claim ON claim_payouts (claim_id);
"""

router = APIRouter(prefix="/claims", tags=["Claims"])

DocumentKind = Literal[
    "claim_form", "policy", "repair_estimate", "police_report", "incident_report"
]


class EstimateLine(StrictModel):
    item_code: RecordId = Field(description="The repair-cost benchmark item, e.g. BUMPER-FRONT.")
    description: Text
    amount: Money


class NewDocument(StrictModel):
    kind: DocumentKind
    title: Text
    text: str = Field(min_length=1, max_length=20000)


class ClaimDocument(NewDocument):
    document_id: str
    claim_id: str


class NewClaim(StrictModel):
    """A first notice of loss, with the documents filed with it."""

    claim_id: RecordId
    policy_number: RecordId
    claimant_id: RecordId
    claimant_name: Text
    claimant_email: Text
    loss_date: date
    peril: RecordId = Field(description="What caused the loss: collision, theft, storm ...")
    description: Text
    vehicle_class: RecordId = "compact"
    repair_shop: Text | None = None
    currency: Currency = "EUR"
    estimate_lines: list[EstimateLine] = Field(default_factory=list)
    documents: list[NewDocument] = Field(default_factory=list)


class DocumentRef(StrictModel):
    document_id: str
    kind: str
    title: str


class Claim(StrictModel):
    claim_id: str
    policy_number: str
    claimant_id: str
    claimant_name: str
    claimant_email: str
    loss_date: date
    peril: str
    description: str
    vehicle_class: str
    repair_shop: str | None
    currency: str
    estimate_lines: list[EstimateLine]
    estimate_total: Decimal
    reported_at: datetime
    documents: list[DocumentRef] = Field(default_factory=list)


class NewLetter(StrictModel):
    subject: Text
    body: str = Field(min_length=1, max_length=20000)


class Letter(NewLetter):
    letter_id: str
    claim_id: str
    to: str
    sent_at: datetime


class PayoutRequest(StrictModel):
    claim_id: RecordId
    payee_id: RecordId
    amount: PositiveMoney
    currency: Currency
    reference: Text | None = None


class Payout(StrictModel):
    payout_id: str
    claim_id: str
    payee_id: str
    amount: Decimal
    currency: str
    reference: str | None
    status: Literal["paid", "reversed"]
    idempotency_key: str
    created_at: datetime
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


class Reversal(Closing):
    """Why a payout is taken back (recovered)."""


_CLAIM_COLUMNS = [name for name in Claim.model_fields if name != "documents"]
_SELECT_CLAIM = "SELECT " + ", ".join(f'"{c}"' for c in _CLAIM_COLUMNS) + " FROM claims"
_SELECT_DOCUMENT = f"SELECT {columns(ClaimDocument)} FROM claim_documents"
_SELECT_PAYOUT = f"SELECT {columns(Payout)} FROM claim_payouts"


def _claim(conn: sqlite3.Connection, claim_id: str) -> Claim:
    row = conn.execute(f"{_SELECT_CLAIM} WHERE claim_id = ?", (claim_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"claim {claim_id} not found")
    documents = conn.execute(
        "SELECT document_id, kind, title FROM claim_documents WHERE claim_id = ? ORDER BY seq",
        (claim_id,),
    ).fetchall()
    return Claim.model_validate(
        dict(row)
        | {
            "estimate_lines": json.loads(row["estimate_lines"]),
            "documents": [dict(document) for document in documents],
        }
    )


def _add_document(conn: sqlite3.Connection, claim_id: str, document: NewDocument) -> ClaimDocument:
    seq, document_id = next_id(conn, "claim_documents", "DOC")
    created = ClaimDocument(document_id=document_id, claim_id=claim_id, **document.model_dump())
    insert(conn, "claim_documents", {"seq": seq, **created.model_dump(mode="json")})
    return created


@router.post("", status_code=201)
def create_claim(claim: NewClaim, db: Db) -> Claim:
    """Record a first notice of loss and its documents (test data, or a claims intake)."""
    total = sum((line.amount for line in claim.estimate_lines), Decimal(0))
    with db.transaction() as conn:
        refuse_duplicate(conn, "claim", "claims", "claim_id", claim.claim_id)
        row = claim.model_dump(mode="json", exclude={"documents"})
        insert(
            conn,
            "claims",
            row
            | {
                "estimate_lines": json.dumps(row["estimate_lines"]),
                "estimate_total": str(total),
                "reported_at": utc_now().isoformat(),
            },
        )
        for document in claim.documents:
            _add_document(conn, claim.claim_id, document)
        return _claim(conn, claim.claim_id)


@router.get("")
def list_claims(db: Db) -> list[Claim]:
    """Every claim, oldest first (without their documents' list)."""
    with db.transaction() as conn:
        rows = conn.execute(f"{_SELECT_CLAIM} ORDER BY seq").fetchall()
    return [
        Claim.model_validate(dict(row) | {"estimate_lines": json.loads(row["estimate_lines"])})
        for row in rows
    ]


@router.get("/{claim_id}")
def get_claim(claim_id: str, db: Db) -> Claim:
    with db.transaction() as conn:
        return _claim(conn, claim_id)


@router.post("/{claim_id}/documents", status_code=201)
def add_document(claim_id: str, document: NewDocument, db: Db) -> ClaimDocument:
    """File another document on a claim."""
    with db.transaction() as conn:
        _claim(conn, claim_id)
        return _add_document(conn, claim_id, document)


@router.get("/{claim_id}/documents/{document_id}")
def get_document(claim_id: str, document_id: str, db: Db) -> ClaimDocument:
    with db.transaction() as conn:
        row = conn.execute(
            f"{_SELECT_DOCUMENT} WHERE document_id = ? AND claim_id = ?", (document_id, claim_id)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"document {document_id} of claim {claim_id} not found")
    return ClaimDocument.model_validate(dict(row))


@router.post("/{claim_id}/letters", status_code=201)
def write_to_claimant(
    claim_id: str, letter: NewLetter, key: IdempotencyKey, response: Response, db: Db
) -> Letter:
    """Send the claimant a letter (to the address on the claim), once per Idempotency-Key."""

    def apply(conn: sqlite3.Connection) -> Letter:
        claim = _claim(conn, claim_id)
        seq, letter_id = next_id(conn, "claim_letters", "LTR")
        sent = Letter(
            letter_id=letter_id,
            claim_id=claim_id,
            to=claim.claimant_email,
            sent_at=utc_now(),
            **letter.model_dump(),
        )
        insert(conn, "claim_letters", {"seq": seq, **sent.model_dump(mode="json")})
        return sent

    return apply_once(
        db,
        response,
        operation="claim letter",
        key=key,
        subject=claim_id,
        request=letter,
        result_type=Letter,
        apply=apply,
    )


@router.get("/{claim_id}/letters")
def list_letters(claim_id: str, db: Db) -> list[Letter]:
    with db.transaction() as conn:
        rows = conn.execute(
            'SELECT letter_id, claim_id, "to", subject, body, sent_at FROM claim_letters '
            "WHERE claim_id = ? ORDER BY seq",
            (claim_id,),
        ).fetchall()
    return [Letter.model_validate(dict(row)) for row in rows]


# --- the payout ledger -----------------------------------------------------------------------


def _payout(conn: sqlite3.Connection, payout_id: str) -> Payout:
    row = conn.execute(f"{_SELECT_PAYOUT} WHERE payout_id = ?", (payout_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"payout {payout_id} not found")
    return Payout.model_validate(dict(row))


PAYOUTS = RecordTable(Payout, "claim_payouts", "payout_id", _payout)
REVERSED = FinalStatus("reversed", at_column="reversed_at", reason_column="reversal_reason")


@router.post("/payouts", status_code=201)
def create_payout(
    request: PayoutRequest, key: IdempotencyKey, response: Response, db: Db
) -> Payout:
    """Pay a claim. Retrying with the same Idempotency-Key returns the first payout; a second
    payout on a claim already paid (and not reversed) is a 409, whoever asks."""

    def apply(conn: sqlite3.Connection) -> Payout:
        _claim(conn, request.claim_id)
        paid = conn.execute(
            "SELECT payout_id FROM claim_payouts WHERE claim_id = ? AND status = 'paid'",
            (request.claim_id,),
        ).fetchone()
        if paid is not None:
            raise HTTPException(
                409, f"claim {request.claim_id} is already paid (payout {paid['payout_id']})"
            )
        seq, payout_id = next_id(conn, "claim_payouts", "CPO")
        payout = Payout(
            payout_id=payout_id,
            **request.model_dump(),
            status="paid",
            idempotency_key=key,
            created_at=utc_now(),
        )
        insert(conn, "claim_payouts", {"seq": seq, **payout.model_dump(mode="json")})
        return payout

    return apply_once(
        db,
        response,
        operation="claim payout",
        key=key,
        request=request,
        result_type=Payout,
        apply=apply,
    )


@router.get("/payouts/by-claim/{claim_id}")
def list_payouts(claim_id: str, db: Db) -> list[Payout]:
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT_PAYOUT} WHERE claim_id = ? ORDER BY seq", (claim_id,)
        ).fetchall()
    return [Payout.model_validate(dict(row)) for row in rows]


@router.post("/payouts/{payout_id}/reverse")
def reverse_payout(
    payout_id: str, reversal: Reversal, key: IdempotencyKey, response: Response, db: Db
) -> Payout:
    """Reverse (recover) a payout; reversing one already reversed changes nothing."""
    return PAYOUTS.close_once(
        db,
        response,
        operation="claim payout reversal",
        key=key,
        record_id=payout_id,
        request=reversal,
        final=REVERSED,
    )
