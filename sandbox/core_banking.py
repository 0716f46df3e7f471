"""The core-banking stand-in: customer accounts, opened once per Idempotency-Key and closed.

Customer onboarding opens an account for an applicant and closes it again when the onboarding is
withdrawn or fails further on; a closed account stays on record, with when and why.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response

from casework.sandbox.models import Closing, Currency, RecordId, StrictModel, Text
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

router = APIRouter(prefix="/core-banking/accounts", tags=["Core banking"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS core_banking_accounts (
    seq INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE,
    application_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    product TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    close_reason TEXT
);
CREATE INDEX IF NOT EXISTS core_banking_accounts_application
    ON core_banking_accounts (application_id);
"""

Product = Literal["current_account", "savings_account"]


class NewAccount(StrictModel):
    application_id: RecordId
    holder_name: Text
    product: Product = "current_account"
    currency: Currency = "EUR"


class Account(NewAccount):
    account_id: str
    status: Literal["open", "closed"]
    opened_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None


ACCOUNTS = RecordTable.of(Account, "core_banking_accounts", "account_id", "account")
CLOSED = FinalStatus("closed", at_column="closed_at", reason_column="close_reason")


@router.post("", status_code=201)
def open_account(account: NewAccount, key: IdempotencyKey, response: Response, db: Db) -> Account:
    """Open an account; a retry with the same Idempotency-Key returns the account it opened."""

    def apply(conn: sqlite3.Connection) -> Account:
        seq, account_id = next_id(conn, "core_banking_accounts", "ACC")
        opened = Account(
            **account.model_dump(), account_id=account_id, status="open", opened_at=utc_now()
        )
        insert(conn, "core_banking_accounts", {"seq": seq, **opened.model_dump(mode="json")})
        return opened

    return apply_once(
        db,
        response,
        operation="account opening",
        key=key,
        request=account,
        result_type=Account,
        apply=apply,
    )


@router.get("")
def list_accounts(db: Db, application_id: str | None = None) -> list[Account]:
    """Accounts, oldest first, optionally those opened for one application."""
    return ACCOUNTS.list_where(db, "application_id", application_id)


@router.get("/{account_id}")
def get_account(account_id: str, db: Db) -> Account:
    return ACCOUNTS.get(db, account_id)


@router.post("/{account_id}/close")
def close_account(
    account_id: str, closing: Closing, key: IdempotencyKey, response: Response, db: Db
) -> Account:
    """Close an account; closing a closed one changes nothing."""
    return ACCOUNTS.close_once(
        db,
        response,
        operation="account closing",
        key=key,
        record_id=account_id,
        request=closing,
        final=CLOSED,
    )
