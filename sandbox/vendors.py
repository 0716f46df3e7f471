"""The vendor portal stand-in: vendor applications, the documents vendors upload, and the
application's status as the vendor sees it.

Document content is stored and returned exactly as uploaded (think of it as the text of a scan):
whatever it says is data for whoever reads it, never instructions.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field, StringConstraints

from casework.sandbox.models import RecordId, StrictModel, Text
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

router = APIRouter(prefix="/vendors", tags=["Vendor portal"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS vendors_applications (
    application_id TEXT PRIMARY KEY,
    vendor_name TEXT NOT NULL,
    country TEXT NOT NULL,
    tax_id TEXT NOT NULL,
    bank_account TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    risk_flags TEXT NOT NULL,
    status TEXT NOT NULL,
    erp_vendor_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vendors_documents (
    seq INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL REFERENCES vendors_applications (application_id),
    kind TEXT NOT NULL,
    filename TEXT NOT NULL,
    content TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    superseded_by TEXT
);
CREATE INDEX IF NOT EXISTS vendors_documents_application ON vendors_documents (application_id);
CREATE TABLE IF NOT EXISTS vendors_status_history (
    seq INTEGER PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES vendors_applications (application_id),
    status TEXT NOT NULL,
    note TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vendors_status_history_application
    ON vendors_status_history (application_id);
"""

ApplicationStatus = Literal["submitted", "onboarded", "rejected", "expired", "on_hold"]
# No further change once an application reached one of these.
CLOSED_STATUSES = frozenset({"onboarded", "rejected", "expired"})
DocumentKind = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64),
    Field(description='What the vendor says the document is, e.g. "tax_certificate".'),
]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
# A scanned document's text runs longer than the one-line fields `Text` is meant for.
DocumentText = Annotated[str, StringConstraints(min_length=1, max_length=20000)]


class NewDocument(StrictModel):
    document_id: RecordId
    kind: DocumentKind
    filename: Text
    content: DocumentText


class Document(NewDocument):
    application_id: str
    uploaded_at: datetime
    superseded_by: str | None = Field(
        default=None, description="The later upload of the same kind that replaced this one."
    )


class NewApplication(StrictModel):
    application_id: RecordId
    vendor_name: Text
    country: Country
    tax_id: Text
    bank_account: Text = Field(description="IBAN the vendor wants to be paid to.")
    contact_email: Email
    risk_flags: list[Text] = Field(
        default_factory=list, description="Findings of the portal's screening, e.g. adverse media."
    )
    documents: list[NewDocument] = Field(default_factory=list)


class StatusChange(StrictModel):
    status: ApplicationStatus
    note: Text | None = None
    erp_vendor_id: RecordId | None = None


class StatusHistoryEntry(StrictModel):
    status: ApplicationStatus
    note: str | None
    at: datetime


class Application(StrictModel):
    application_id: str
    vendor_name: str
    country: str
    tax_id: str
    bank_account: str
    contact_email: str
    risk_flags: list[str]
    status: ApplicationStatus
    erp_vendor_id: str | None
    created_at: datetime
    documents: list[Document] = Field(description="The current document of each kind.")
    status_history: list[StatusHistoryEntry]


_DOCUMENTS = f"SELECT {columns(Document)} FROM vendors_documents"


def _documents(
    conn: sqlite3.Connection, application_id: str, include_superseded: bool = False
) -> list[Document]:
    rows = conn.execute(
        f"{_DOCUMENTS} WHERE application_id = ? AND (? OR superseded_by IS NULL) ORDER BY seq",
        (application_id, include_superseded),
    ).fetchall()
    return [Document.model_validate(dict(row)) for row in rows]


def _application_from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Application:
    history = conn.execute(
        "SELECT status, note, at FROM vendors_status_history WHERE application_id = ? ORDER BY seq",
        (row["application_id"],),
    ).fetchall()
    return Application.model_validate(
        dict(row)
        | {
            "risk_flags": json.loads(row["risk_flags"]),
            "documents": _documents(conn, row["application_id"]),
            "status_history": [dict(entry) for entry in history],
        }
    )


def _get_application(conn: sqlite3.Connection, application_id: str) -> Application:
    row = conn.execute(
        "SELECT * FROM vendors_applications WHERE application_id = ?", (application_id,)
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"vendor application {application_id} not found")
    return _application_from_row(conn, row)


APPLICATIONS = RecordTable(Application, "vendors_applications", "application_id", _get_application)


def _record_status(
    conn: sqlite3.Connection, application_id: str, status: str, note: str | None
) -> None:
    insert(
        conn,
        "vendors_status_history",
        {
            "application_id": application_id,
            "status": status,
            "note": note,
            "at": utc_now().isoformat(),
        },
    )


def _add_document(conn: sqlite3.Connection, application_id: str, document: NewDocument) -> Document:
    refuse_duplicate(conn, "document", "vendors_documents", "document_id", document.document_id)
    # A new upload of a kind replaces the previous one: only the latest counts.
    conn.execute(
        "UPDATE vendors_documents SET superseded_by = ? "
        "WHERE application_id = ? AND kind = ? AND superseded_by IS NULL",
        (document.document_id, application_id, document.kind),
    )
    seq, _ = next_id(conn, "vendors_documents", "DOC")
    stored = Document(**document.model_dump(), application_id=application_id, uploaded_at=utc_now())
    insert(conn, "vendors_documents", {"seq": seq, **stored.model_dump(mode="json")})
    return stored


@router.post("/applications", status_code=201)
def create_application(application: NewApplication, db: Db) -> Application:
    """A vendor's application with the documents it was submitted with."""
    with db.transaction() as conn:
        refuse_duplicate(
            conn,
            "vendor application",
            "vendors_applications",
            "application_id",
            application.application_id,
        )
        insert(
            conn,
            "vendors_applications",
            application.model_dump(exclude={"documents", "risk_flags"})
            | {
                "risk_flags": json.dumps(application.risk_flags),
                "status": "submitted",
                "erp_vendor_id": None,
                "created_at": utc_now().isoformat(),
            },
        )
        _record_status(conn, application.application_id, "submitted", "created")
        for document in application.documents:
            _add_document(conn, application.application_id, document)
        return _get_application(conn, application.application_id)


@router.get("/applications")
def list_applications(db: Db, status: ApplicationStatus | None = None) -> list[Application]:
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM vendors_applications WHERE ? IS NULL OR status = ? ORDER BY rowid",
            (status, status),
        ).fetchall()
        return [_application_from_row(conn, row) for row in rows]


@router.get("/applications/{application_id}")
def get_application(application_id: str, db: Db) -> Application:
    with db.transaction() as conn:
        return _get_application(conn, application_id)


@router.post("/applications/{application_id}/documents", status_code=201)
def upload_document(application_id: str, document: NewDocument, db: Db) -> Document:
    """Upload a document; it replaces the application's current document of the same kind."""
    with db.transaction() as conn:
        application = _get_application(conn, application_id)
        if application.status in CLOSED_STATUSES:
            raise HTTPException(409, f"vendor application {application_id} is {application.status}")
        return _add_document(conn, application_id, document)


@router.get("/applications/{application_id}/documents")
def list_documents(application_id: str, db: Db, include_superseded: bool = False) -> list[Document]:
    with db.transaction() as conn:
        _get_application(conn, application_id)
        return _documents(conn, application_id, include_superseded)


@router.get("/applications/{application_id}/documents/{document_id}")
def get_document(application_id: str, document_id: str, db: Db) -> Document:
    """One uploaded document, current or superseded (``superseded_by`` says which)."""
    with db.transaction() as conn:
        row = conn.execute(
            f"{_DOCUMENTS} WHERE application_id = ? AND document_id = ?",
            (application_id, document_id),
        ).fetchone()
    if row is None:
        raise HTTPException(
            404, f"vendor application {application_id} has no document {document_id}"
        )
    return Document.model_validate(dict(row))


@router.post("/applications/{application_id}/status")
def change_status(
    application_id: str, change: StatusChange, key: IdempotencyKey, response: Response, db: Db
) -> Application:
    """Move the application to a new status, at most once per Idempotency-Key."""

    def move(conn: sqlite3.Connection, application: Application) -> None:
        if application.status in CLOSED_STATUSES:
            raise HTTPException(
                409,
                f"vendor application {application_id} is already {application.status}",
            )
        if change.status == "onboarded" and change.erp_vendor_id is None:
            raise HTTPException(422, "erp_vendor_id: required when the status is onboarded")
        conn.execute(
            "UPDATE vendors_applications SET status = ?, "
            "erp_vendor_id = COALESCE(?, erp_vendor_id) WHERE application_id = ?",
            (change.status, change.erp_vendor_id, application_id),
        )
        _record_status(conn, application_id, change.status, change.note)

    return APPLICATIONS.write_once(
        db,
        response,
        operation="vendor application status change",
        key=key,
        record_id=application_id,
        request=change,
        change=move,
    )
