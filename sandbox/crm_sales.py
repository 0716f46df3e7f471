"""The sales CRM stand-in: leads, accounts, account executives, firmographics and the queue of
first-touch messages.

Lead text is stored and returned exactly as sent, whatever it says. An account executive's
``current_load`` is the number of leads assigned to them: assigning a lead adds one, unassigning
or nurturing it takes one off, so the load the routing policy reads is the CRM's own count.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import BeforeValidator, Field, StringConstraints

from casework.sandbox.models import Money, RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    IdempotencyKey,
    RecordTable,
    apply_once,
    columns,
    insert,
    refuse_duplicate,
    utc_now,
)

router = APIRouter(prefix="/crm", tags=["CRM: sales"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_sales_account_executives (
    ae_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    territory TEXT NOT NULL,
    current_load INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    active INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_sales_account_executives_territory
    ON crm_sales_account_executives (territory);
CREATE TABLE IF NOT EXISTS crm_sales_accounts (
    account_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain TEXT NOT NULL UNIQUE,
    owner_ae_id TEXT REFERENCES crm_sales_account_executives (ae_id),
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crm_sales_firmographics (
    domain TEXT PRIMARY KEY,
    company_name TEXT NOT NULL,
    industry TEXT NOT NULL,
    employees INTEGER NOT NULL,
    annual_revenue TEXT,
    country TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crm_sales_leads (
    seq INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL UNIQUE,
    contact_name TEXT NOT NULL,
    email TEXT NOT NULL,
    company TEXT NOT NULL,
    domain TEXT NOT NULL,
    country TEXT NOT NULL,
    job_title TEXT,
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    owner_ae_id TEXT REFERENCES crm_sales_account_executives (ae_id),
    account_id TEXT REFERENCES crm_sales_accounts (account_id),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_sales_leads_status ON crm_sales_leads (status);
CREATE TABLE IF NOT EXISTS crm_sales_lead_history (
    seq INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL REFERENCES crm_sales_leads (lead_id),
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_sales_lead_history_lead ON crm_sales_lead_history (lead_id);
CREATE TABLE IF NOT EXISTS crm_sales_messages (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    lead_id TEXT NOT NULL REFERENCES crm_sales_leads (lead_id),
    ae_id TEXT NOT NULL REFERENCES crm_sales_account_executives (ae_id),
    "to" TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crm_sales_messages_lead ON crm_sales_messages (lead_id);
"""

LeadStatus = Literal["new", "assigned", "nurture"]
AccountStatus = Literal["prospect", "customer"]
MessageStatus = Literal["queued", "cancelled"]
# Compared and looked up case-insensitively, as DNS names are: stored in lower case.
Domain = Annotated[
    str,
    BeforeValidator(lambda value: value.strip().lower() if isinstance(value, str) else value),
    StringConstraints(
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
        max_length=253,
    ),
]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# A plausibility check only: the sandbox sends nothing, so a real mailbox is never needed.
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Count = Annotated[int, Field(ge=0, le=100_000)]
# Form messages run longer than the one-line fields `Text` is meant for.
LongText = Annotated[str, StringConstraints(max_length=20000)]


# --- account executives ----------------------------------------------------------------------


class AccountExecutive(StrictModel):
    ae_id: RecordId
    name: Text
    email: Email
    territory: Text = Field(description='Sales territory, e.g. "emea"; see the routing policy.')
    current_load: Count = Field(0, description="Leads assigned to the AE right now.")
    capacity: Count = Field(description="Leads the AE can hold; at capacity they take no more.")
    active: bool = True


# --- accounts and firmographics --------------------------------------------------------------


class Account(StrictModel):
    account_id: RecordId
    name: Text
    domain: Domain
    owner_ae_id: RecordId | None = Field(None, description="The account executive who owns it.")
    status: AccountStatus = "prospect"


class Firmographics(StrictModel):
    """What an enrichment provider knows about a company, by its web domain."""

    domain: Domain
    company_name: Text
    industry: Text
    employees: Count
    annual_revenue: Money | None = None
    country: Country


# --- leads -----------------------------------------------------------------------------------


class NewLead(StrictModel):
    lead_id: RecordId
    contact_name: Text
    email: Email
    company: Text
    domain: Domain
    country: Country = Field(description="ISO 3166-1 alpha-2 code, e.g. DE.")
    job_title: Text | None = None
    message: LongText = Field("", description="What the prospect wrote, stored verbatim.")
    source: Text = "web_form"


class HistoryEntry(StrictModel):
    action: Literal["created", "assigned", "unassigned", "nurtured"]
    detail: str
    at: datetime


class LeadRow(StrictModel):
    lead_id: str
    contact_name: str
    email: str
    company: str
    domain: str
    country: str
    job_title: str | None
    message: str
    source: str
    status: LeadStatus
    owner_ae_id: str | None
    account_id: str | None
    created_at: datetime


class Lead(LeadRow):
    history: list[HistoryEntry]


class Assignment(StrictModel):
    ae_id: RecordId
    account_id: RecordId | None = None
    note: Text | None = None
    only_if_new: bool = Field(
        default=False,
        description="Assign only a lead still new: one someone else took meanwhile is a 409.",
    )


class Release(StrictModel):
    """Why a lead is unassigned or put in the nurture queue."""

    reason: Text
    only_if_unassigned: bool = Field(
        default=False,
        description="Nurture only a lead nobody owns: one someone took meanwhile is a 409.",
    )


def _refuse_if_taken(lead: Lead, what: str) -> None:
    if lead.status == "assigned":
        raise HTTPException(
            409, f"lead {lead.lead_id} was taken meanwhile: assigned to {lead.owner_ae_id}; {what}"
        )


# --- first-touch messages --------------------------------------------------------------------


class FirstTouchRequest(StrictModel):
    ae_id: RecordId = Field(description="Sender: must be the AE the lead is assigned to.")
    subject: Text
    body: LongText


class FirstTouchMessage(StrictModel):
    message_id: str
    lead_id: str
    ae_id: str
    to: str
    subject: str
    body: str
    status: MessageStatus
    queued_at: datetime


# --- storage helpers -------------------------------------------------------------------------


def _get_ae(conn: sqlite3.Connection, ae_id: str) -> AccountExecutive:
    row = conn.execute(
        "SELECT * FROM crm_sales_account_executives WHERE ae_id = ?", (ae_id,)
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"account executive {ae_id} not found")
    return AccountExecutive.model_validate(dict(row))


def _get_account(conn: sqlite3.Connection, account_id: str) -> Account:
    row = conn.execute(
        "SELECT * FROM crm_sales_accounts WHERE account_id = ?", (account_id,)
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"account {account_id} not found")
    return Account.model_validate(dict(row))


_SELECT_LEADS = f"SELECT {columns(LeadRow)} FROM crm_sales_leads"


def _lead_from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Lead:
    history = conn.execute(
        "SELECT action, detail, at FROM crm_sales_lead_history WHERE lead_id = ? ORDER BY seq",
        (row["lead_id"],),
    ).fetchall()
    return Lead.model_validate(dict(row) | {"history": [dict(entry) for entry in history]})


def _get_lead(conn: sqlite3.Connection, lead_id: str) -> Lead:
    row = conn.execute(f"{_SELECT_LEADS} WHERE lead_id = ?", (lead_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"lead {lead_id} not found")
    return _lead_from_row(conn, row)


def _record(conn: sqlite3.Connection, lead_id: str, action: str, detail: str) -> None:
    insert(
        conn,
        "crm_sales_lead_history",
        {"lead_id": lead_id, "action": action, "detail": detail, "at": utc_now().isoformat()},
    )


def _change_load(conn: sqlite3.Connection, ae_id: str, delta: int) -> None:
    conn.execute(
        "UPDATE crm_sales_account_executives SET current_load = MAX(current_load + ?, 0)"
        " WHERE ae_id = ?",
        (delta, ae_id),
    )


def _release(conn: sqlite3.Connection, lead: Lead, status: LeadStatus) -> None:
    """Take the lead off its AE (their load drops by one) and cancel what was queued for it."""
    if lead.owner_ae_id is not None:
        _change_load(conn, lead.owner_ae_id, -1)
        conn.execute(
            "UPDATE crm_sales_messages SET status = 'cancelled'"
            " WHERE lead_id = ? AND ae_id = ? AND status = 'queued'",
            (lead.lead_id, lead.owner_ae_id),
        )
    conn.execute(
        "UPDATE crm_sales_leads SET status = ?, owner_ae_id = NULL WHERE lead_id = ?",
        (status, lead.lead_id),
    )


LEADS = RecordTable(Lead, "crm_sales_leads", "lead_id", _get_lead)


# --- account executive routes ----------------------------------------------------------------


@router.post("/account-executives", status_code=201)
def create_account_executive(ae: AccountExecutive, db: Db) -> AccountExecutive:
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "account executive", "crm_sales_account_executives", "ae_id", ae.ae_id
        )
        insert(conn, "crm_sales_account_executives", ae.model_dump())
    return ae


@router.get("/account-executives")
def list_account_executives(db: Db, territory: str | None = None) -> list[AccountExecutive]:
    """Account executives in the order they were created, optionally of one territory."""
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM crm_sales_account_executives"
            " WHERE ? IS NULL OR territory = ? ORDER BY rowid",
            (territory, territory),
        ).fetchall()
    return [AccountExecutive.model_validate(dict(row)) for row in rows]


@router.get("/account-executives/{ae_id}")
def get_account_executive(ae_id: str, db: Db) -> AccountExecutive:
    with db.transaction() as conn:
        return _get_ae(conn, ae_id)


# --- account routes --------------------------------------------------------------------------


@router.post("/accounts", status_code=201)
def create_account(account: Account, db: Db) -> Account:
    with db.transaction() as conn:
        refuse_duplicate(conn, "account", "crm_sales_accounts", "account_id", account.account_id)
        refuse_duplicate(
            conn, "an account with domain", "crm_sales_accounts", "domain", account.domain
        )
        if account.owner_ae_id is not None:
            _get_ae(conn, account.owner_ae_id)
        insert(conn, "crm_sales_accounts", account.model_dump())
    return account


@router.get("/accounts")
def list_accounts(db: Db, domain: Domain | None = None) -> list[Account]:
    """Accounts in the order they were created; `domain` finds the one with that web domain."""
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM crm_sales_accounts WHERE ? IS NULL OR domain = ? ORDER BY rowid",
            (domain, domain),
        ).fetchall()
    return [Account.model_validate(dict(row)) for row in rows]


@router.get("/accounts/{account_id}")
def get_account(account_id: str, db: Db) -> Account:
    with db.transaction() as conn:
        return _get_account(conn, account_id)


# --- firmographics routes --------------------------------------------------------------------


@router.post("/firmographics", status_code=201)
def create_firmographics(company: Firmographics, db: Db) -> Firmographics:
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "firmographics for", "crm_sales_firmographics", "domain", company.domain
        )
        insert(
            conn,
            "crm_sales_firmographics",
            company.model_dump(mode="json"),
        )
    return company


@router.get("/firmographics/{domain}")
def get_firmographics(domain: str, db: Db) -> Firmographics:
    """Enrichment: what is known about the company behind a web domain."""
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM crm_sales_firmographics WHERE domain = ?", (domain.lower(),)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"no firmographics for domain {domain}")
    return Firmographics.model_validate(dict(row))


# --- lead routes -----------------------------------------------------------------------------


@router.post("/leads", status_code=201)
def create_lead(lead: NewLead, db: Db) -> Lead:
    """Capture a lead with status "new", unassigned."""
    with db.transaction() as conn:
        refuse_duplicate(conn, "lead", "crm_sales_leads", "lead_id", lead.lead_id)
        insert(
            conn,
            "crm_sales_leads",
            lead.model_dump() | {"status": "new", "created_at": utc_now().isoformat()},
        )
        _record(conn, lead.lead_id, "created", f"from {lead.source}")
        return _get_lead(conn, lead.lead_id)


@router.get("/leads")
def list_leads(
    db: Db, status: LeadStatus | None = None, owner_ae_id: str | None = None
) -> list[Lead]:
    """Leads, oldest first, optionally by status and/or owning AE (status=nurture: the queue)."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT_LEADS} WHERE (:status IS NULL OR status = :status)
                AND (:owner IS NULL OR owner_ae_id = :owner) ORDER BY seq""",
            {"status": status, "owner": owner_ae_id},
        ).fetchall()
        return [_lead_from_row(conn, row) for row in rows]


@router.get("/leads/{lead_id}")
def get_lead(lead_id: str, db: Db) -> Lead:
    with db.transaction() as conn:
        return _get_lead(conn, lead_id)


@router.post("/leads/{lead_id}/assign")
def assign_lead(
    lead_id: str, assignment: Assignment, key: IdempotencyKey, response: Response, db: Db
) -> Lead:
    """Give the lead to an account executive, whose load grows by one; at most once per key.

    A lead already assigned to someone else is a 409: it must be unassigned first. Assigning it
    again to the AE who has it changes nothing.
    """

    def change(conn: sqlite3.Connection, lead: Lead) -> None:
        if assignment.only_if_new:
            _refuse_if_taken(lead, "not assigned again")
            if lead.status != "new":
                raise HTTPException(
                    409, f"lead {lead_id} was taken meanwhile: it is {lead.status}; not assigned"
                )
        ae = _get_ae(conn, assignment.ae_id)
        if not ae.active:
            raise HTTPException(409, f"account executive {ae.ae_id} is inactive")
        if assignment.account_id is not None:
            _get_account(conn, assignment.account_id)
        if lead.status == "assigned":
            if lead.owner_ae_id == ae.ae_id:
                return
            raise HTTPException(
                409, f"lead {lead_id} is already assigned to {lead.owner_ae_id}; unassign it first"
            )
        _change_load(conn, ae.ae_id, +1)
        conn.execute(
            "UPDATE crm_sales_leads SET status = 'assigned', owner_ae_id = ?,"
            " account_id = COALESCE(?, account_id) WHERE lead_id = ?",
            (ae.ae_id, assignment.account_id, lead_id),
        )
        detail = f"to {ae.ae_id} ({ae.territory})"
        if assignment.account_id is not None:
            detail += f", account {assignment.account_id}"
        if assignment.note is not None:
            detail += f": {assignment.note}"
        _record(conn, lead_id, "assigned", detail)

    return LEADS.write_once(
        db,
        response,
        operation="lead assignment",
        key=key,
        record_id=lead_id,
        request=assignment,
        change=change,
    )


@router.post("/leads/{lead_id}/unassign")
def unassign_lead(
    lead_id: str, release: Release, key: IdempotencyKey, response: Response, db: Db
) -> Lead:
    """Take the lead back from its AE (status "new" again); its queued messages are cancelled.

    Unassigning a lead nobody has changes nothing. At most once per Idempotency-Key.
    """

    def change(conn: sqlite3.Connection, lead: Lead) -> None:
        if lead.status != "assigned":
            return
        _release(conn, lead, "new")
        _record(conn, lead_id, "unassigned", f"from {lead.owner_ae_id}: {release.reason}")

    return LEADS.write_once(
        db,
        response,
        operation="lead unassignment",
        key=key,
        record_id=lead_id,
        request=release,
        change=change,
    )


@router.post("/leads/{lead_id}/nurture")
def nurture_lead(
    lead_id: str, release: Release, key: IdempotencyKey, response: Response, db: Db
) -> Lead:
    """Put the lead in the nurture queue, unassigned; at most once per Idempotency-Key."""

    def change(conn: sqlite3.Connection, lead: Lead) -> None:
        if release.only_if_unassigned:
            _refuse_if_taken(lead, "not put in the nurture queue")
        if lead.status == "nurture":
            return
        _release(conn, lead, "nurture")
        _record(conn, lead_id, "nurtured", release.reason)

    return LEADS.write_once(
        db,
        response,
        operation="lead nurture",
        key=key,
        record_id=lead_id,
        request=release,
        change=change,
    )


# --- first-touch message routes --------------------------------------------------------------


@router.post("/leads/{lead_id}/messages", status_code=201)
def queue_first_touch(
    lead_id: str, request: FirstTouchRequest, key: IdempotencyKey, response: Response, db: Db
) -> FirstTouchMessage:
    """Queue a first-touch message to the lead from the AE who owns it; once per key, and one
    per lead: while a first touch is queued for it, another is a 409 (a cancelled one does not
    count)."""

    def apply(conn: sqlite3.Connection) -> FirstTouchMessage:
        lead = _get_lead(conn, lead_id)
        _get_ae(conn, request.ae_id)
        earlier = conn.execute(
            "SELECT message_id FROM crm_sales_messages WHERE lead_id = ? AND status != 'cancelled'",
            (lead_id,),
        ).fetchone()
        if earlier is not None:
            raise HTTPException(
                409,
                f"lead {lead_id} already has first touch {earlier['message_id']}; a lead gets "
                "one first touch",
            )
        if lead.owner_ae_id != request.ae_id:
            raise HTTPException(
                409,
                f"lead {lead_id} is not assigned to {request.ae_id} "
                f"(owner: {lead.owner_ae_id or 'nobody'}); only its owner may message it",
            )
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM crm_sales_messages").fetchone()[0]
        message = FirstTouchMessage(
            message_id=f"MSG-{seq:06d}",
            lead_id=lead_id,
            to=lead.email,
            status="queued",
            queued_at=utc_now(),
            **request.model_dump(),
        )
        insert(conn, "crm_sales_messages", {"seq": seq, **message.model_dump(mode="json")})
        return message

    return apply_once(
        db,
        response,
        operation="first-touch message",
        key=key,
        subject=lead_id,
        request=request,
        result_type=FirstTouchMessage,
        apply=apply,
    )


_SELECT_MESSAGES = f"SELECT {columns(FirstTouchMessage)} FROM crm_sales_messages"


@router.get("/messages")
def list_messages(
    db: Db,
    lead_id: str | None = None,
    ae_id: str | None = None,
    status: MessageStatus | None = None,
) -> list[FirstTouchMessage]:
    """The first-touch queue, oldest first, optionally by lead, AE and/or status."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT_MESSAGES} WHERE (:lead IS NULL OR lead_id = :lead)
                AND (:ae IS NULL OR ae_id = :ae) AND (:status IS NULL OR status = :status)
                ORDER BY seq""",
            {"lead": lead_id, "ae": ae_id, "status": status},
        ).fetchall()
    return [FirstTouchMessage.model_validate(dict(row)) for row in rows]
