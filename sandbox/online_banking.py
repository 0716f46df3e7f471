"""The online-banking stand-in: customers' logins, created once per Idempotency-Key and revoked.

A login names the CRM customer it belongs to and a username that is unique among active logins;
a revoked login stays on record, with when and why.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response

from casework.sandbox.models import Closing, RecordId, StrictModel
from casework.sandbox.store import (
    Db,
    FinalStatus,
    IdempotencyKey,
    RecordTable,
    apply_once,
    insert,
    next_id,
    utc_now,
)
from sandbox.vendors import Email

router = APIRouter(prefix="/online-banking/logins", tags=["Online banking"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS online_banking_logins (
    seq INTEGER PRIMARY KEY,
    login_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS online_banking_logins_application
    ON online_banking_logins (application_id);
"""


class NewLogin(StrictModel):
    application_id: RecordId
    customer_id: RecordId
    username: RecordId
    email: Email


class Login(NewLogin):
    login_id: str
    status: Literal["active", "revoked"]
    created_at: datetime
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


LOGINS = RecordTable.of(Login, "online_banking_logins", "login_id", "login")
REVOKED = FinalStatus("revoked", at_column="revoked_at", reason_column="revoke_reason")


@router.post("", status_code=201)
def create_login(login: NewLogin, key: IdempotencyKey, response: Response, db: Db) -> Login:
    """Create a login; a retry with the same Idempotency-Key returns the login it created. A
    username another active login has is refused (409)."""

    def apply(conn: sqlite3.Connection) -> Login:
        taken = conn.execute(
            "SELECT login_id FROM online_banking_logins WHERE username = ? AND status = 'active'",
            (login.username,),
        ).fetchone()
        if taken is not None:
            raise HTTPException(409, f"username: {login.username} is taken")
        seq, login_id = next_id(conn, "online_banking_logins", "LGN")
        created = Login(
            **login.model_dump(), login_id=login_id, status="active", created_at=utc_now()
        )
        insert(conn, "online_banking_logins", {"seq": seq, **created.model_dump(mode="json")})
        return created

    return apply_once(
        db,
        response,
        operation="login creation",
        key=key,
        request=login,
        result_type=Login,
        apply=apply,
    )


@router.get("")
def list_logins(db: Db, application_id: str | None = None) -> list[Login]:
    """Logins, oldest first, optionally those created for one application."""
    return LOGINS.list_where(db, "application_id", application_id)


@router.get("/{login_id}")
def get_login(login_id: str, db: Db) -> Login:
    return LOGINS.get(db, login_id)


@router.post("/{login_id}/revoke")
def revoke_login(
    login_id: str, closing: Closing, key: IdempotencyKey, response: Response, db: Db
) -> Login:
    """Revoke a login; revoking a revoked one changes nothing."""
    return LOGINS.close_once(
        db,
        response,
        operation="login revocation",
        key=key,
        record_id=login_id,
        request=closing,
        final=REVOKED,
    )
