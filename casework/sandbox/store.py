"""SQLite storage and the idempotency-key machinery shared by every sandbox router."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppliers (
    supplier_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    bank_account TEXT NOT NULL,
    status TEXT NOT NULL,
    risk TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS purchase_orders (
    po_number TEXT PRIMARY KEY,
    supplier_id TEXT NOT NULL REFERENCES suppliers (supplier_id),
    currency TEXT NOT NULL,
    lines TEXT NOT NULL,
    total TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goods_receipts (
    receipt_id TEXT PRIMARY KEY,
    po_number TEXT NOT NULL REFERENCES purchase_orders (po_number),
    lines TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS goods_receipts_po ON goods_receipts (po_number);
CREATE TABLE IF NOT EXISTS invoices (
    invoice_id TEXT PRIMARY KEY,
    supplier_id TEXT NOT NULL REFERENCES suppliers (supplier_id),
    po_number TEXT REFERENCES purchase_orders (po_number),
    currency TEXT NOT NULL,
    lines TEXT NOT NULL,
    total TEXT NOT NULL,
    exception_reason TEXT,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_status ON invoices (status);
CREATE TABLE IF NOT EXISTS invoice_status_history (
    seq INTEGER PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoices (invoice_id),
    status TEXT NOT NULL,
    note TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoice_status_history_invoice
    ON invoice_status_history (invoice_id);
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE,
    invoice_id TEXT NOT NULL,
    supplier_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    reversed_at TEXT,
    reversal_reason TEXT
);
CREATE INDEX IF NOT EXISTS payments_invoice ON payments (invoice_id);
-- Refunds to customers: money out of the same payments system, in a ledger of their own.
CREATE TABLE IF NOT EXISTS payments_refunds (
    seq INTEGER PRIMARY KEY,
    refund_id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT,
    reference TEXT,
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    reversed_at TEXT,
    reversal_reason TEXT
);
CREATE INDEX IF NOT EXISTS payments_refunds_order ON payments_refunds (order_id);
CREATE INDEX IF NOT EXISTS payments_refunds_customer ON payments_refunds (customer_id);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL UNIQUE,
    "to" TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    case_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS itsm_configuration_items (
    ci_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner_team TEXT NOT NULL,
    oncall TEXT NOT NULL,
    criticality TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS itsm_kb_articles (
    article_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS itsm_tickets (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    requester TEXT NOT NULL,
    ci_id TEXT REFERENCES itsm_configuration_items (ci_id),
    category TEXT,
    severity INTEGER,
    status TEXT NOT NULL,
    team TEXT,
    assignee TEXT,
    resolution TEXT,
    kb_article_id TEXT REFERENCES itsm_kb_articles (article_id),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS itsm_tickets_status ON itsm_tickets (status);
CREATE TABLE IF NOT EXISTS itsm_ticket_comments (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES itsm_tickets (ticket_id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS itsm_ticket_comments_ticket ON itsm_ticket_comments (ticket_id);
CREATE TABLE IF NOT EXISTS itsm_ticket_history (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES itsm_tickets (ticket_id),
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS itsm_ticket_history_ticket ON itsm_ticket_history (ticket_id);
-- One row per (operation, key): the fingerprint of the request that first used the key and
-- the response it got, so a retry is answered from here instead of being applied again.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    operation TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (operation, key)
);
"""

ModelT = TypeVar("ModelT", bound=BaseModel)


class Database:
    """One SQLite connection shared by the request threads, serialised by a lock.

    Each request does a handful of tiny statements, so a single writer costs nothing here and
    makes every check-then-write (duplicates, idempotency keys) atomic without retry loops.
    """

    def __init__(self, path: str | Path, system_schemas: Sequence[str] = ()) -> None:
        """``system_schemas``: the tables of systems that keep their schema in their own module."""
        # isolation_level=None: transactions are opened explicitly in `transaction`.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.executescript(SCHEMA)
        for schema in system_schemas:
            self._conn.executescript(schema)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block atomically: committed if it returns, rolled back if it raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT may already have ended the transaction.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(get_db)]


def utc_now() -> datetime:
    return datetime.now(UTC)


def columns(model: type[BaseModel]) -> str:
    """The SELECT list for a model whose fields are all columns of one table."""
    return ", ".join(f'"{name}"' for name in model.model_fields)


def insert(conn: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> None:
    """Insert a row whose keys are column names (table and columns come from code, not input)."""
    names = ", ".join(f'"{column}"' for column in row)
    placeholders = ", ".join(f":{column}" for column in row)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", dict(row))


def next_id(conn: sqlite3.Connection, table: str, prefix: str) -> tuple[int, str]:
    """The next sequence number of `table` and its human-readable id, e.g. PAY-000001."""
    seq: int = conn.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}").fetchone()[0]
    return seq, f"{prefix}-{seq:06d}"


def _key_header(
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Client-chosen key; retries with the same key are applied at most once.",
            max_length=255,
        ),
    ] = None,
) -> str | None:
    return idempotency_key or None


OptionalIdempotencyKey = Annotated[str | None, Depends(_key_header)]


def _require_key(key: OptionalIdempotencyKey) -> str:
    # A missing key is a client bug we want to name plainly, not FastAPI's generic 422.
    if key is None:
        raise HTTPException(400, "Idempotency-Key header is required")
    return key


IdempotencyKey = Annotated[str, Depends(_require_key)]


def _canonical(value: Any) -> Any:
    # 100 and "100.00" are the same amount; a retry must not be refused over formatting.
    if isinstance(value, Decimal):
        return str(value.normalize())
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def _fingerprint(subject: str, request: BaseModel) -> str:
    payload = json.dumps(
        [subject, request.model_dump(mode="python")], default=_canonical, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def apply_once(
    conn: sqlite3.Connection,
    response: Response,
    *,
    operation: str,
    key: str | None,
    subject: str,
    request: BaseModel,
    result_type: type[ModelT],
    apply: Callable[[], ModelT],
) -> ModelT:
    """Run `apply` once per idempotency key and answer repeats with the first response.

    `subject` is what the operation acts on (an invoice id, a payment id); together with the
    request body it decides whether a repeat is the same request. A replay is answered with
    200 and ``Idempotent-Replayed: true``; reusing a key for a different request is a 409.
    Without a key, `apply` simply runs.
    """
    if key is None:
        return apply()
    fingerprint = _fingerprint(subject, request)
    row = conn.execute(
        "SELECT fingerprint, response FROM idempotency_keys WHERE operation = ? AND key = ?",
        (operation, key),
    ).fetchone()
    if row is not None:
        if row["fingerprint"] != fingerprint:
            raise HTTPException(
                409,
                f"Idempotency-Key {key!r} was already used for a different {operation} request; "
                "use a new key for a new request",
            )
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
        return result_type.model_validate_json(row["response"])
    result = apply()
    insert(
        conn,
        "idempotency_keys",
        {
            "operation": operation,
            "key": key,
            "fingerprint": fingerprint,
            "response": result.model_dump_json(),
        },
    )
    return result
