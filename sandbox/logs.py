"""The log-search stand-in: what each service logged, with timestamps and levels.

A dumb store of log lines: test data and the demo write entries (``POST /logs/entries``); the
incident investigator reads them through a search by service, time window, level and words.
Each entry has an ID, so a review can cite the exact line it rests on and the case can check that
the line exists and says what it was cited for.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, Field

from casework.sandbox.models import RecordId, StrictModel, Text
from casework.sandbox.store import Db, columns, insert, next_id, utc_now

router = APIRouter(prefix="/logs", tags=["Logs"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_entries (
    seq INTEGER PRIMARY KEY,
    entry_id TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL,
    at TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    host TEXT
);
CREATE INDEX IF NOT EXISTS log_entries_service_at ON log_entries (service, at);
"""

Level = Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
LEVELS: tuple[Level, ...] = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
Limit = Annotated[int, Query(ge=1, le=200, description="At most this many entries.")]


class NewLogEntry(StrictModel):
    service: RecordId = Field(description="The service that logged the line, e.g. checkout-api.")
    at: AwareDatetime = Field(default_factory=utc_now)
    level: Level = "INFO"
    message: Text
    host: RecordId | None = None


class LogEntry(StrictModel):
    entry_id: str
    service: str
    at: datetime
    level: Level
    message: str
    host: str | None


_SELECT = f"SELECT {columns(LogEntry)} FROM log_entries"


@router.post("/entries", status_code=201)
def create_entries(entries: list[NewLogEntry], db: Db) -> list[LogEntry]:
    """Record log lines (test data), in the order given; each gets an ID like LOG-000001."""
    created: list[LogEntry] = []
    with db.transaction() as conn:
        for entry in entries:
            _, entry_id = next_id(conn, "log_entries", "LOG")
            row = LogEntry(entry_id=entry_id, **entry.model_dump())
            insert(conn, "log_entries", row.model_dump(mode="json"))
            created.append(row)
    return created


def _words(text: str) -> list[str]:
    return [word for word in re.findall(r"\w+", text.casefold()) if len(word) > 1]


@router.get("/search")
def search(
    db: Db,
    service: Annotated[str, Query(min_length=1, max_length=64)],
    q: Annotated[str | None, Query(max_length=200)] = None,
    min_level: Level = "DEBUG",
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Limit = 50,
) -> list[LogEntry]:
    """A service's entries at or above ``min_level`` in the window, oldest first; with ``q``,
    only entries containing every one of its words."""
    wanted = LEVELS[LEVELS.index(min_level) :]
    with db.transaction() as conn:
        rows = conn.execute(f"{_SELECT} WHERE service = ? ORDER BY at, seq", (service,)).fetchall()
    words = _words(q or "")
    found: list[LogEntry] = []
    for row in rows:
        entry = _entry(row)
        if entry.level not in wanted:
            continue
        if (since and entry.at < since) or (until and entry.at > until):
            continue
        text = entry.message.casefold()
        if all(word in text for word in words):
            found.append(entry)
    return found[:limit]


@router.get("/entries/{entry_id}")
def get_entry(entry_id: str, db: Db) -> LogEntry:
    with db.transaction() as conn:
        row = conn.execute(f"{_SELECT} WHERE entry_id = ?", (entry_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"log entry {entry_id} not found")
    return _entry(row)


def _entry(row: sqlite3.Row) -> LogEntry:
    return LogEntry.model_validate(dict(row))
