"""The lending stand-in: loan applications with their income documents and a status history.

Applications are created as test data (``POST /lending/applications``) in status ``submitted``;
the loan process records its outcome with an idempotent status change. Document text is stored
and returned verbatim, whatever it says.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field, StringConstraints, model_validator

from casework.sandbox.models import Currency, PositiveMoney, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    IdempotencyKey,
    RecordTable,
    columns,
    insert,
    next_id,
    refuse_duplicate,
    utc_now,
)

router = APIRouter(prefix="/lending", tags=["Lending"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS lending_applications (
    seq INTEGER PRIMARY KEY,
    application_id TEXT NOT NULL UNIQUE,
    applicant TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    term_months INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    declared_monthly_income TEXT NOT NULL,
    documents TEXT NOT NULL,
    status TEXT NOT NULL,
    approved_amount TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lending_applications_status ON lending_applications (status);
CREATE TABLE IF NOT EXISTS lending_application_history (
    seq INTEGER PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES lending_applications (application_id),
    status TEXT NOT NULL,
    note TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lending_application_history_application
    ON lending_application_history (application_id);
-- What applicants send about their application (a reply to a request for more information),
-- kept as received: a loan case believes a reply only once it has read it back from here.
CREATE TABLE IF NOT EXISTS lending_messages (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL REFERENCES lending_applications (application_id),
    text TEXT NOT NULL,
    documents TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lending_messages_application ON lending_messages (application_id);
"""

ApplicationStatus = Literal["submitted", "approved", "declined", "on_hold", "approval_reversed"]
DocumentText = Annotated[str, StringConstraints(max_length=20000)]
# Where each status may be reached from: a decided application is not decided again, and only an
# approval can be reversed.
_REACHABLE_FROM: dict[str, tuple[str, ...]] = {
    "approved": ("submitted", "on_hold"),
    "declined": ("submitted", "on_hold"),
    "on_hold": ("submitted",),
    "approval_reversed": ("approved",),
}


class Applicant(StrictModel):
    customer_id: RecordId
    full_name: Text
    date_of_birth: date
    national_id: RecordId = Field(description="Identity document number.")
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)]


class IncomeDocument(StrictModel):
    document_id: RecordId
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)] = Field(
        description='e.g. "payslip" (with monthly_amount from payroll) or "freelance_statement".'
    )
    description: DocumentText = ""
    text: DocumentText = ""
    monthly_amount: PositiveMoney | None = None


class NewApplication(StrictModel):
    application_id: RecordId
    applicant: Applicant
    amount: PositiveMoney
    currency: Currency = "EUR"
    term_months: int = Field(ge=1, le=480)
    purpose: Text = "personal loan"
    declared_monthly_income: PositiveMoney
    documents: list[IncomeDocument] = Field(default_factory=list, max_length=20)


class StatusChange(StrictModel):
    status: Literal["approved", "declined", "on_hold", "approval_reversed"]
    note: Text | None = None
    approved_amount: PositiveMoney | None = Field(
        default=None, description="Required with status approved: the amount granted."
    )

    @model_validator(mode="after")
    def _amount_with_approval(self) -> StatusChange:
        if (self.status == "approved") != (self.approved_amount is not None):
            raise ValueError("approved_amount is required with status approved, and only then")
        return self


class StatusHistoryEntry(StrictModel):
    status: ApplicationStatus
    note: str | None
    at: datetime


class ApplicationRow(StrictModel):
    application_id: str
    applicant: Applicant
    amount: Decimal
    currency: str
    term_months: int
    purpose: str
    declared_monthly_income: Decimal
    documents: list[IncomeDocument]
    status: ApplicationStatus
    approved_amount: Decimal | None
    created_at: datetime


class Application(ApplicationRow):
    status_history: list[StatusHistoryEntry]


_SELECT = f"SELECT {columns(ApplicationRow)} FROM lending_applications"


def _from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Application:
    values = dict(row)
    values["applicant"] = json.loads(values["applicant"])
    values["documents"] = json.loads(values["documents"])
    history = conn.execute(
        "SELECT status, note, at FROM lending_application_history WHERE application_id = ?"
        " ORDER BY seq",
        (row["application_id"],),
    ).fetchall()
    return Application.model_validate(values | {"status_history": [dict(h) for h in history]})


def _get(conn: sqlite3.Connection, application_id: str) -> Application:
    row = conn.execute(f"{_SELECT} WHERE application_id = ?", (application_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"loan application {application_id} not found")
    return _from_row(conn, row)


APPLICATIONS = RecordTable(Application, "lending_applications", "application_id", _get)


def _record(conn: sqlite3.Connection, application_id: str, status: str, note: str | None) -> None:
    insert(
        conn,
        "lending_application_history",
        {
            "application_id": application_id,
            "status": status,
            "note": note,
            "at": utc_now().isoformat(),
        },
    )


@router.post("/applications", status_code=201)
def create_application(application: NewApplication, db: Db) -> Application:
    """Create a submitted application (test data)."""
    application_id = application.application_id
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "loan application", "lending_applications", "application_id", application_id
        )
        values = application.model_dump(mode="json")
        insert(
            conn,
            "lending_applications",
            values
            | {
                "applicant": json.dumps(values["applicant"]),
                "documents": json.dumps(values["documents"]),
                "status": "submitted",
                "created_at": utc_now().isoformat(),
            },
        )
        _record(conn, application_id, "submitted", "application received")
        return _get(conn, application_id)


@router.get("/applications")
def list_applications(db: Db, status: ApplicationStatus | None = None) -> list[Application]:
    """Applications, oldest first, optionally in one status."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT} WHERE ? IS NULL OR status = ? ORDER BY seq", (status, status)
        ).fetchall()
        return [_from_row(conn, row) for row in rows]


@router.get("/applications/{application_id}")
def get_application(application_id: str, db: Db) -> Application:
    with db.transaction() as conn:
        return _get(conn, application_id)


@router.post("/applications/{application_id}/status")
def change_status(
    application_id: str, change: StatusChange, key: IdempotencyKey, response: Response, db: Db
) -> Application:
    """Record a decision; a change the application's status does not allow is a 409."""

    def move(conn: sqlite3.Connection, application: Application) -> None:
        allowed = _REACHABLE_FROM[change.status]
        if application.status not in allowed:
            raise HTTPException(
                409,
                f"loan application {application_id} is {application.status}; it can become "
                f"{change.status} only from {' or '.join(allowed)}",
            )
        conn.execute(
            "UPDATE lending_applications SET status = ?, approved_amount = COALESCE(?, "
            "approved_amount) WHERE application_id = ?",
            (
                change.status,
                None if change.approved_amount is None else str(change.approved_amount),
                application_id,
            ),
        )
        _record(conn, application_id, change.status, change.note)

    return APPLICATIONS.write_once(
        db,
        response,
        operation="loan application status",
        key=key,
        record_id=application_id,
        request=change,
        change=move,
    )


# --- messages from applicants ----------------------------------------------------------------


class NewMessage(StrictModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    documents: list[IncomeDocument] = Field(default_factory=list, max_length=20)


class ApplicantMessage(NewMessage):
    message_id: str
    application_id: str
    received_at: datetime


_SELECT_MESSAGES = f"SELECT {columns(ApplicantMessage)} FROM lending_messages"


def _message_from_row(row: sqlite3.Row) -> ApplicantMessage:
    return ApplicantMessage.model_validate(dict(row) | {"documents": json.loads(row["documents"])})


@router.post("/applications/{application_id}/messages", status_code=201)
def receive_message(application_id: str, message: NewMessage, db: Db) -> ApplicantMessage:
    """What the applicant sent about the application (the channel a loan case reads replies
    back from). Only an application that exists can receive one."""
    with db.transaction() as conn:
        _get(conn, application_id)
        seq, message_id = next_id(conn, "lending_messages", "LMSG")
        received = ApplicantMessage(
            **message.model_dump(),
            message_id=message_id,
            application_id=application_id,
            received_at=utc_now(),
        )
        values = received.model_dump(mode="json")
        insert(
            conn,
            "lending_messages",
            values | {"seq": seq, "documents": json.dumps(values["documents"])},
        )
    return received


@router.get("/applications/{application_id}/messages")
def list_messages(application_id: str, db: Db) -> list[ApplicantMessage]:
    with db.transaction() as conn:
        _get(conn, application_id)
        rows = conn.execute(
            f"{_SELECT_MESSAGES} WHERE application_id = ? ORDER BY seq", (application_id,)
        ).fetchall()
    return [_message_from_row(row) for row in rows]


@router.get("/applications/{application_id}/messages/{message_id}")
def get_message(application_id: str, message_id: str, db: Db) -> ApplicantMessage:
    with db.transaction() as conn:
        row = conn.execute(
            f"{_SELECT_MESSAGES} WHERE application_id = ? AND message_id = ?",
            (application_id, message_id),
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"loan application {application_id} has no message {message_id}")
    return _message_from_row(row)
