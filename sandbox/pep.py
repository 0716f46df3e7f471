"""The PEP-register stand-in: politically exposed persons, and screenings against the register.

The register is test data (``POST /pep/persons``). A screening compares a name and date of birth
with it the way the KYC service's sanctions screening does (words of the name, in any order and
case, without accents); every screening is stored, and with an Idempotency-Key a retried one
answers with the stored result.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import Field

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
from sandbox.kyc import CountryCode, IsoDate, name_key

router = APIRouter(prefix="/pep", tags=["PEP register"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS pep_persons (
    seq INTEGER PRIMARY KEY,
    entry_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    date_of_birth TEXT,
    position TEXT NOT NULL,
    country TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pep_screenings (
    seq INTEGER PRIMARY KEY,
    screening_id TEXT NOT NULL UNIQUE,
    reference TEXT,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class PepPerson(StrictModel):
    entry_id: RecordId
    name: Text
    date_of_birth: date | None = Field(
        default=None, description="When listed, a screening matches only with the same birth date."
    )
    position: Text = Field(description='The public function, e.g. "Member of parliament".')
    country: CountryCode


class PepScreeningRequest(StrictModel):
    full_name: Text
    date_of_birth: IsoDate
    reference: Text | None = Field(default=None, description="The caller's case or application.")


class PepMatch(StrictModel):
    entry_id: str
    name: str
    position: str
    country: str


class PepScreening(StrictModel):
    screening_id: str
    status: Literal["clear", "match"]
    matches: list[PepMatch]
    reference: str | None
    at: datetime


@router.post("/persons", status_code=201)
def add_person(person: PepPerson, db: Db) -> PepPerson:
    """Add a politically exposed person to the register (test data)."""
    with db.transaction() as conn:
        refuse_duplicate(conn, "PEP entry", "pep_persons", "entry_id", person.entry_id)
        insert(conn, "pep_persons", person.model_dump(mode="json"))
    return person


@router.get("/persons")
def list_persons(db: Db) -> list[PepPerson]:
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT entry_id, name, date_of_birth, position, country FROM pep_persons ORDER BY seq"
        ).fetchall()
    return [PepPerson.model_validate(dict(row)) for row in rows]


@router.post("/screenings", status_code=201)
def screen(
    request: PepScreeningRequest, key: OptionalIdempotencyKey, response: Response, db: Db
) -> PepScreening:
    """Screen a person against the PEP register."""

    def apply(conn: sqlite3.Connection) -> PepScreening:
        rows = conn.execute(
            "SELECT entry_id, name, date_of_birth, position, country FROM pep_persons ORDER BY seq"
        ).fetchall()
        wanted = name_key(request.full_name)
        matches = [
            PepMatch(
                entry_id=person.entry_id,
                name=person.name,
                position=person.position,
                country=person.country,
            )
            for person in (PepPerson.model_validate(dict(row)) for row in rows)
            if name_key(person.name) == wanted
            and person.date_of_birth in (None, request.date_of_birth)
        ]
        status: Literal["clear", "match"] = "match" if matches else "clear"
        seq, screening_id = next_id(conn, "pep_screenings", "PEP")
        at = utc_now()
        insert(
            conn,
            "pep_screenings",
            {
                "seq": seq,
                "screening_id": screening_id,
                "reference": request.reference,
                "request": request.model_dump_json(),
                "result": json.dumps(
                    {"status": status, "matches": [m.model_dump() for m in matches]}
                ),
                "at": at.isoformat(),
            },
        )
        return PepScreening(
            screening_id=screening_id,
            status=status,
            matches=matches,
            reference=request.reference,
            at=at,
        )

    return apply_once(
        db,
        response,
        operation="PEP screening",
        key=key,
        request=request,
        result_type=PepScreening,
        apply=apply,
    )
