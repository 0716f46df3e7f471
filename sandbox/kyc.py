"""The KYC stand-in: an identity-document registry and a sanctions list, each with its check.

Both lists are test data (``POST /kyc/identities``, ``POST /kyc/sanctions``). A verification
compares an applicant with the registry; a screening compares a name and date of birth with the
sanctions list. Names match when their words match, ignoring case, accents, punctuation and
order ("Ivanov, Pyotr" is "Pyotr IVANOV"): deterministic, and easy to reason about in tests.
Every check is stored; with an Idempotency-Key a retried check answers with the stored result.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field, PlainSerializer, StringConstraints

from casework.sandbox.models import RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    OptionalIdempotencyKey,
    apply_once,
    insert,
    next_id,
    refuse_duplicate,
    utc_now,
)

router = APIRouter(prefix="/kyc", tags=["KYC"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS kyc_identities (
    document_number TEXT PRIMARY KEY,
    full_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kyc_sanctions (
    seq INTEGER PRIMARY KEY,
    entry_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    date_of_birth TEXT,
    program TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kyc_checks (
    seq INTEGER PRIMARY KEY,
    check_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    reference TEXT,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# Dumped as ISO text even in Python mode: the idempotency fingerprint of a check takes only
# JSON-native values and decimals.
IsoDate = Annotated[date, PlainSerializer(date.isoformat, return_type=str)]


class Identity(StrictModel):
    document_number: RecordId
    full_name: Text
    date_of_birth: date
    status: Literal["valid", "expired", "revoked"] = "valid"


class SanctionsEntry(StrictModel):
    entry_id: RecordId
    name: Text
    date_of_birth: date | None = Field(
        default=None, description="When listed, a screening hits only with the same birth date."
    )
    program: Text = Field(description='The list it comes from, e.g. "EU consolidated list".')


class VerificationRequest(StrictModel):
    full_name: Text
    date_of_birth: IsoDate
    document_number: RecordId
    reference: Text | None = Field(default=None, description="The caller's case or application.")


class Verification(StrictModel):
    verification_id: str
    status: Literal["verified", "failed"]
    reasons: list[str]
    reference: str | None
    at: datetime


class ScreeningRequest(StrictModel):
    full_name: Text
    date_of_birth: IsoDate
    country: CountryCode | None = None
    reference: Text | None = None


class SanctionsHit(StrictModel):
    entry_id: str
    name: str
    program: str
    matched_on: list[str]


class Screening(StrictModel):
    screening_id: str
    status: Literal["clear", "hit"]
    hits: list[SanctionsHit]
    reference: str | None
    at: datetime


def name_key(name: str) -> tuple[str, ...]:
    """A name's words, casefolded, without accents or punctuation, in sorted order."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return tuple(sorted(re.findall(r"[a-z0-9]+", plain.casefold())))


def _store_check(
    conn: sqlite3.Connection, kind: str, prefix: str, request: StrictModel, result: dict
) -> tuple[str, datetime]:
    seq, check_id = next_id(conn, "kyc_checks", prefix)
    at = utc_now()
    insert(
        conn,
        "kyc_checks",
        {
            "seq": seq,
            "check_id": check_id,
            "kind": kind,
            "reference": getattr(request, "reference", None),
            "request": request.model_dump_json(),
            "result": json.dumps(result),
            "at": at.isoformat(),
        },
    )
    return check_id, at


@router.post("/identities", status_code=201)
def create_identity(identity: Identity, db: Db) -> Identity:
    """Register an identity document (test data)."""
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "identity document", "kyc_identities", "document_number", identity.document_number
        )
        insert(conn, "kyc_identities", identity.model_dump(mode="json"))
    return identity


@router.get("/identities/{document_number}")
def get_identity(document_number: str, db: Db) -> Identity:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM kyc_identities WHERE document_number = ?", (document_number,)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"identity document {document_number} not found")
    return Identity.model_validate(dict(row))


@router.post("/sanctions", status_code=201)
def create_sanctions_entry(entry: SanctionsEntry, db: Db) -> SanctionsEntry:
    """Add a person to the sanctions list (test data)."""
    with db.transaction() as conn:
        refuse_duplicate(conn, "sanctions entry", "kyc_sanctions", "entry_id", entry.entry_id)
        insert(conn, "kyc_sanctions", entry.model_dump(mode="json"))
    return entry


@router.get("/sanctions")
def list_sanctions(db: Db) -> list[SanctionsEntry]:
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT entry_id, name, date_of_birth, program FROM kyc_sanctions ORDER BY seq"
        ).fetchall()
    return [SanctionsEntry.model_validate(dict(row)) for row in rows]


@router.get("/sanctions/{entry_id}")
def get_sanctions_entry(entry_id: str, db: Db) -> SanctionsEntry:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT entry_id, name, date_of_birth, program FROM kyc_sanctions WHERE entry_id = ?",
            (entry_id,),
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"sanctions entry {entry_id} not found")
    return SanctionsEntry.model_validate(dict(row))


@router.post("/verifications", status_code=201)
def verify_identity(
    request: VerificationRequest, key: OptionalIdempotencyKey, response: Response, db: Db
) -> Verification:
    """Check a person against the identity-document registry."""

    def apply(conn: sqlite3.Connection) -> Verification:
        row = conn.execute(
            "SELECT * FROM kyc_identities WHERE document_number = ?", (request.document_number,)
        ).fetchone()
        reasons: list[str] = []
        if row is None:
            reasons.append(f"identity document {request.document_number} is not in the registry")
        else:
            identity = Identity.model_validate(dict(row))
            if identity.status != "valid":
                reasons.append(f"identity document {request.document_number} is {identity.status}")
            if name_key(identity.full_name) != name_key(request.full_name):
                reasons.append(
                    f"name {request.full_name!r} does not match the document's "
                    f"{identity.full_name!r}"
                )
            if identity.date_of_birth != request.date_of_birth:
                reasons.append("date of birth does not match the document")
        status: Literal["verified", "failed"] = "failed" if reasons else "verified"
        check_id, at = _store_check(
            conn, "verification", "IDV", request, {"status": status, "reasons": reasons}
        )
        return Verification(
            verification_id=check_id,
            status=status,
            reasons=reasons,
            reference=request.reference,
            at=at,
        )

    return apply_once(
        db,
        response,
        operation="identity verification",
        key=key,
        request=request,
        result_type=Verification,
        apply=apply,
    )


@router.post("/screenings", status_code=201)
def screen_sanctions(
    request: ScreeningRequest, key: OptionalIdempotencyKey, response: Response, db: Db
) -> Screening:
    """Screen a person against the sanctions list."""

    def apply(conn: sqlite3.Connection) -> Screening:
        rows = conn.execute(
            "SELECT entry_id, name, date_of_birth, program FROM kyc_sanctions ORDER BY seq"
        ).fetchall()
        wanted = name_key(request.full_name)
        hits = []
        for row in rows:
            entry = SanctionsEntry.model_validate(dict(row))
            if name_key(entry.name) != wanted:
                continue
            if entry.date_of_birth is not None and entry.date_of_birth != request.date_of_birth:
                continue
            hits.append(
                SanctionsHit(
                    entry_id=entry.entry_id,
                    name=entry.name,
                    program=entry.program,
                    matched_on=["name"] + (["date_of_birth"] if entry.date_of_birth else []),
                )
            )
        status: Literal["clear", "hit"] = "hit" if hits else "clear"
        check_id, at = _store_check(
            conn,
            "screening",
            "SCR",
            request,
            {"status": status, "hits": [hit.model_dump() for hit in hits]},
        )
        return Screening(
            screening_id=check_id, status=status, hits=hits, reference=request.reference, at=at
        )

    return apply_once(
        db,
        response,
        operation="sanctions screening",
        key=key,
        request=request,
        result_type=Screening,
        apply=apply,
    )
