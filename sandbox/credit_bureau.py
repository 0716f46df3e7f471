"""The credit bureau stand-in: report requests now, reports later.

A lender requests a report (``POST /credit-bureau/requests``) and gets a receipt; the bureau
answers later (``POST /credit-bureau/requests/{id}/answer`` plays the bureau's side), building
the report from the subject's credit file as it is at that moment. The answer is a message the
lender's side routes to the case that asked, by application ID: ``casework deliver credit-report
REQUEST_ID`` reads it from here and delivers it (see ``demos.loan_messages``). Credit files are
test data (``POST /credit-bureau/files``).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from casework.sandbox.models import Money, RecordId, StrictModel, Text
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

router = APIRouter(prefix="/credit-bureau", tags=["Credit bureau"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS credit_bureau_files (
    subject_id TEXT PRIMARY KEY,
    score INTEGER NOT NULL,
    monthly_debt_payments TEXT NOT NULL,
    defaults INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS credit_bureau_requests (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    report_id TEXT UNIQUE,
    score INTEGER,
    monthly_debt_payments TEXT,
    defaults INTEGER,
    issued_at TEXT
);
CREATE INDEX IF NOT EXISTS credit_bureau_requests_application
    ON credit_bureau_requests (application_id);
"""


class CreditFile(StrictModel):
    subject_id: RecordId = Field(description="The person's identity document number.")
    score: int = Field(ge=300, le=850)
    monthly_debt_payments: Money = Decimal(0)
    defaults: int = Field(default=0, ge=0, description="Defaults and insolvencies on file.")


class ReportRequest(StrictModel):
    application_id: RecordId
    subject_id: RecordId
    reference: Text | None = Field(default=None, description="The requester's case ID.")


class CreditReport(StrictModel):
    """The bureau's answer, in the shape the lender's ``credit_report`` message takes."""

    report_id: str
    request_id: str
    application_id: str
    subject_id: str
    score: int
    monthly_debt_payments: Decimal
    defaults: int
    issued_at: datetime


class RequestRow(StrictModel):
    request_id: str
    application_id: str
    subject_id: str
    reference: str | None
    status: Literal["pending", "answered"]
    created_at: datetime
    report_id: str | None
    score: int | None
    monthly_debt_payments: Decimal | None
    defaults: int | None
    issued_at: datetime | None


class ReportRequestStatus(StrictModel):
    request_id: str
    application_id: str
    subject_id: str
    reference: str | None
    status: Literal["pending", "answered"]
    created_at: datetime
    report: CreditReport | None = None


_SELECT = f"SELECT {columns(RequestRow)} FROM credit_bureau_requests"
_REPORT_FIELDS = set(CreditReport.model_fields)
_REQUEST_FIELDS = set(ReportRequestStatus.model_fields) - {"report"}


def _status(row: sqlite3.Row) -> ReportRequestStatus:
    request = RequestRow.model_validate(dict(row))
    report = None
    if request.status == "answered":
        report = CreditReport.model_validate(request.model_dump(include=_REPORT_FIELDS))
    return ReportRequestStatus.model_validate(
        request.model_dump(include=_REQUEST_FIELDS) | {"report": report}
    )


def _get(conn: sqlite3.Connection, request_id: str) -> ReportRequestStatus:
    row = conn.execute(f"{_SELECT} WHERE request_id = ?", (request_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"credit report request {request_id} not found")
    return _status(row)


@router.post("/files", status_code=201)
def create_credit_file(credit_file: CreditFile, db: Db) -> CreditFile:
    """Create a person's credit file (test data)."""
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "credit file", "credit_bureau_files", "subject_id", credit_file.subject_id
        )
        insert(conn, "credit_bureau_files", credit_file.model_dump(mode="json"))
    return credit_file


@router.get("/files/{subject_id}")
def get_credit_file(subject_id: str, db: Db) -> CreditFile:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM credit_bureau_files WHERE subject_id = ?", (subject_id,)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"credit file {subject_id} not found")
    return CreditFile.model_validate(dict(row))


@router.post("/requests", status_code=201)
def request_report(
    request: ReportRequest, key: IdempotencyKey, response: Response, db: Db
) -> ReportRequestStatus:
    """Ask for a report; the answer comes later. The same Idempotency-Key asks only once."""

    def apply(conn: sqlite3.Connection) -> ReportRequestStatus:
        seq, request_id = next_id(conn, "credit_bureau_requests", "CBR")
        insert(
            conn,
            "credit_bureau_requests",
            {
                "seq": seq,
                "request_id": request_id,
                **request.model_dump(),
                "status": "pending",
                "created_at": utc_now().isoformat(),
            },
        )
        return _get(conn, request_id)

    return apply_once(
        db,
        response,
        operation="credit report request",
        key=key,
        request=request,
        result_type=ReportRequestStatus,
        apply=apply,
    )


@router.get("/requests")
def list_requests(db: Db, application_id: str | None = None) -> list[ReportRequestStatus]:
    """Report requests, oldest first, optionally for one application."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT} WHERE ? IS NULL OR application_id = ? ORDER BY seq",
            (application_id, application_id),
        ).fetchall()
    return [_status(row) for row in rows]


@router.get("/requests/{request_id}")
def get_request(request_id: str, db: Db) -> ReportRequestStatus:
    with db.transaction() as conn:
        return _get(conn, request_id)


@router.post("/requests/{request_id}/answer")
def answer_request(request_id: str, db: Db) -> CreditReport:
    """The bureau answers: the report is the subject's credit file now. Answering again returns
    the same report."""
    with db.transaction() as conn:
        request = _get(conn, request_id)
        if request.report is not None:
            return request.report
        row = conn.execute(
            "SELECT * FROM credit_bureau_files WHERE subject_id = ?", (request.subject_id,)
        ).fetchone()
        if row is None:
            raise HTTPException(
                409,
                f"no credit file for subject {request.subject_id}; create one with "
                "POST /credit-bureau/files before answering",
            )
        credit_file = CreditFile.model_validate(dict(row))
        seq = conn.execute(
            "SELECT seq FROM credit_bureau_requests WHERE request_id = ?", (request_id,)
        ).fetchone()[0]
        conn.execute(
            "UPDATE credit_bureau_requests SET status = 'answered', report_id = ?, score = ?,"
            " monthly_debt_payments = ?, defaults = ?, issued_at = ? WHERE request_id = ?",
            (
                f"CBREP-{seq:06d}",
                credit_file.score,
                str(credit_file.monthly_debt_payments),
                credit_file.defaults,
                utc_now().isoformat(),
                request_id,
            ),
        )
        answered = _get(conn, request_id)
    assert answered.report is not None
    return answered.report
