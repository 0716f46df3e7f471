"""The ITSM's follow-up tasks: work a post-incident review assigns, linked to its incident.

Created once per idempotency key (a retried or replayed create makes one task), listed by
incident, and cancelled with a reason (how a review that cannot be completed undoes the tasks
it created). The incident must be a ticket the service desk holds.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from casework.sandbox.models import Closing, RecordId, StrictModel, Text
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

router = APIRouter(prefix="/itsm/follow-ups", tags=["ITSM: follow-ups"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS itsm_follow_ups (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    incident_id TEXT NOT NULL,
    title TEXT NOT NULL,
    owner TEXT NOT NULL,
    due_in_days INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    cancelled_at TEXT,
    cancel_reason TEXT
);
CREATE INDEX IF NOT EXISTS itsm_follow_ups_incident ON itsm_follow_ups (incident_id);
"""


class NewFollowUp(StrictModel):
    incident_id: RecordId = Field(description="The incident ticket the follow-up comes from.")
    title: Text
    owner: Text = Field(description="The person or team that does it.")
    due_in_days: int = Field(ge=1, le=365)


class FollowUp(StrictModel):
    task_id: str
    incident_id: str
    title: str
    owner: str
    due_in_days: int
    status: Literal["open", "cancelled"]
    created_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None


FOLLOW_UPS = RecordTable.of(FollowUp, "itsm_follow_ups", "task_id", "follow-up task")
CANCELLED = FinalStatus("cancelled", "cancelled_at", "cancel_reason")


@router.post("", status_code=201)
def create_follow_up(
    follow_up: NewFollowUp, db: Db, response: Response, key: IdempotencyKey
) -> FollowUp:
    """Open a follow-up task on an incident; once per Idempotency-Key."""

    def apply(conn: sqlite3.Connection) -> FollowUp:
        incident = conn.execute(
            "SELECT 1 FROM itsm_tickets WHERE ticket_id = ?", (follow_up.incident_id,)
        ).fetchone()
        if incident is None:
            raise HTTPException(404, f"incident {follow_up.incident_id} not found")
        _, task_id = next_id(conn, "itsm_follow_ups", "FUP")
        insert(
            conn,
            "itsm_follow_ups",
            follow_up.model_dump()
            | {"task_id": task_id, "status": "open", "created_at": utc_now().isoformat()},
        )
        return FOLLOW_UPS.read(conn, task_id)

    return apply_once(
        db,
        response,
        operation="follow-up creation",
        key=key,
        subject=follow_up.incident_id,
        request=follow_up,
        result_type=FollowUp,
        apply=apply,
    )


@router.get("")
def list_follow_ups(db: Db, incident_id: str | None = None) -> list[FollowUp]:
    """Follow-up tasks, oldest first, optionally one incident's."""
    return FOLLOW_UPS.list_where(db, "incident_id", incident_id)


@router.get("/{task_id}")
def get_follow_up(task_id: str, db: Db) -> FollowUp:
    return FOLLOW_UPS.get(db, task_id)


@router.post("/{task_id}/cancel")
def cancel_follow_up(
    task_id: str, closing: Closing, db: Db, response: Response, key: IdempotencyKey
) -> FollowUp:
    """Cancel a follow-up with a reason; cancelling one already cancelled changes nothing."""
    return FOLLOW_UPS.close_once(
        db,
        response,
        operation="follow-up cancellation",
        key=key,
        record_id=task_id,
        request=closing,
        final=CANCELLED,
    )
