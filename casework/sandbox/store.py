"""SQLite storage and the idempotency-key machinery shared by every sandbox router.

A system's write that must not happen twice goes through :func:`apply_once` (create something,
answer a retry with what the first attempt created) or a :class:`RecordTable` (change one record,
close it with a final status), so every system replays, refuses a reused key and rolls back the
same way."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel

from casework.sandbox.models import Closing

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL UNIQUE,
    "to" TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    case_id TEXT,
    created_at TEXT NOT NULL
);
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
RecordT = TypeVar("RecordT", bound=BaseModel)


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
        # A service's usual durability: WAL, synced at checkpoints rather than at every commit.
        # With SQLite's default (a rollback journal, fsync per commit) each write waited on the
        # disk, and a benchmark measured this stand-in's disk instead of casework.
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
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
    db: Database,
    response: Response,
    *,
    operation: str,
    key: str | None,
    request: BaseModel,
    result_type: type[ModelT],
    apply: Callable[[sqlite3.Connection], ModelT],
    subject: str = "",
) -> ModelT:
    """Run `apply` in a transaction once per idempotency key; answer repeats with the first
    response.

    `subject` is what the operation acts on (an invoice id, a payment id); together with the
    request body it decides whether a repeat is the same request. A replay is answered with
    200 and ``Idempotent-Replayed: true``; reusing a key for a different request is a 409.
    Without a key, `apply` simply runs. What `apply` raises rolls back all it wrote, and the key
    stays unused.
    """
    with db.transaction() as conn:
        if key is None:
            return apply(conn)
        fingerprint = _fingerprint(subject, request)
        row = conn.execute(
            "SELECT fingerprint, response FROM idempotency_keys WHERE operation = ? AND key = ?",
            (operation, key),
        ).fetchone()
        if row is not None:
            if row["fingerprint"] != fingerprint:
                raise HTTPException(
                    409,
                    f"Idempotency-Key {key!r} was already used for a different {operation} "
                    "request; use a new key for a new request",
                )
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return result_type.model_validate_json(row["response"])
        result = apply(conn)
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


def applied_under(
    conn: sqlite3.Connection, operation: str, key: str, result_type: type[ModelT]
) -> ModelT | None:
    """What `operation` answered when it was applied under `key`, or None when nothing was:
    how a client whose every answer was lost learns whether its write went through."""
    row = conn.execute(
        "SELECT response FROM idempotency_keys WHERE operation = ? AND key = ?", (operation, key)
    ).fetchone()
    return None if row is None else result_type.model_validate_json(row["response"])


def refuse_duplicate(
    conn: sqlite3.Connection, record: str, table: str, column: str, value: str
) -> None:
    """A 409 naming the record when `table` already has one with this `column` value."""
    if conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone():
        raise HTTPException(409, f"{record} {value} already exists")


@dataclass(frozen=True)
class FinalStatus:
    """The status a record ends in (a payment reversed, a vendor deactivated) and the columns
    that say when and why."""

    status: str
    at_column: str
    reason_column: str


@dataclass(frozen=True)
class RecordTable(Generic[RecordT]):
    """One table of records a system keeps by id, and the writes to one of them: each applied
    at most once per idempotency key (:func:`apply_once`), keyed on the record, and answered
    with the record as it is after the write."""

    model: type[RecordT]
    table: str
    id_column: str
    read: Callable[[sqlite3.Connection, str], RecordT]
    """The record by id; a 404 naming it when there is none."""

    def write_once(
        self,
        db: Database,
        response: Response,
        *,
        operation: str,
        key: str | None,
        record_id: str,
        request: BaseModel,
        change: Callable[[sqlite3.Connection, RecordT], None],
    ) -> RecordT:
        """Apply `change` to the record as it is; an unknown record is a 404 before anything
        is written."""

        def apply(conn: sqlite3.Connection) -> RecordT:
            change(conn, self.read(conn, record_id))
            return self.read(conn, record_id)

        return apply_once(
            db,
            response,
            operation=operation,
            key=key,
            subject=record_id,
            request=request,
            result_type=self.model,
            apply=apply,
        )

    def close_once(
        self,
        db: Database,
        response: Response,
        *,
        operation: str,
        key: str | None,
        record_id: str,
        request: Closing,
        final: FinalStatus,
    ) -> RecordT:
        """Put the record in its `final` status (reverse it, deactivate it), noting when and
        the request's reason; closing a record already closed changes nothing."""

        def close(conn: sqlite3.Connection, record: RecordT) -> None:
            if getattr(record, "status", None) == final.status:
                return
            conn.execute(
                f"UPDATE {self.table} SET status = ?, {final.at_column} = ?, "
                f"{final.reason_column} = ? WHERE {self.id_column} = ?",
                (final.status, utc_now().isoformat(), request.reason, record_id),
            )

        return self.write_once(
            db,
            response,
            operation=operation,
            key=key,
            record_id=record_id,
            request=request,
            change=close,
        )

    @classmethod
    def of(
        cls, model: type[RecordT], table: str, id_column: str, noun: str
    ) -> RecordTable[RecordT]:
        """A table whose rows are ``model``'s fields, read by id as they are stored (a 404
        naming the ``noun`` when there is none)."""

        def read(conn: sqlite3.Connection, record_id: str) -> RecordT:
            row = conn.execute(
                f"SELECT {columns(model)} FROM {table} WHERE {id_column} = ?", (record_id,)
            ).fetchone()
            if row is None:
                raise HTTPException(404, f"{noun} {record_id} not found")
            return model.model_validate(dict(row))

        return cls(model, table, id_column, read)

    def get(self, db: Database, record_id: str) -> RecordT:
        with db.transaction() as conn:
            return self.read(conn, record_id)

    def list_where(self, db: Database, column: str, value: str | None) -> list[RecordT]:
        """The records, oldest first; only those whose ``column`` is ``value`` unless None."""
        with db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {columns(self.model)} FROM {self.table} "
                f"WHERE ? IS NULL OR {column} = ? ORDER BY seq",
                (value, value),
            ).fetchall()
        return [self.model.model_validate(dict(row)) for row in rows]
