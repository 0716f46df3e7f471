"""The notification stand-in: an outbox that records messages instead of sending them."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from fastapi import APIRouter, Response

from casework.sandbox.models import StrictModel, Text
from casework.sandbox.store import (
    Db,
    OptionalIdempotencyKey,
    apply_once,
    columns,
    insert,
    next_id,
    utc_now,
)

router = APIRouter(prefix="/notifications", tags=["Notifications"])


class NotificationRequest(StrictModel):
    to: Text
    subject: Text
    body: Text
    case_id: Text | None = None


class Notification(NotificationRequest):
    notification_id: str
    created_at: datetime


_SELECT = f"SELECT {columns(Notification)} FROM notifications"


@router.post("", status_code=201)
def send_notification(
    request: NotificationRequest, key: OptionalIdempotencyKey, response: Response, db: Db
) -> Notification:
    """Put a message in the outbox; with an Idempotency-Key a retry does not send it twice."""

    def apply(conn: sqlite3.Connection) -> Notification:
        seq, notification_id = next_id(conn, "notifications", "NTF")
        notification = Notification(
            notification_id=notification_id, **request.model_dump(), created_at=utc_now()
        )
        insert(conn, "notifications", {"seq": seq, **notification.model_dump(mode="json")})
        return notification

    return apply_once(
        db,
        response,
        operation="notification",
        key=key,
        request=request,
        result_type=Notification,
        apply=apply,
    )


@router.get("")
def list_notifications(
    db: Db, to: str | None = None, case_id: str | None = None
) -> list[Notification]:
    """The outbox, oldest first, optionally filtered by recipient and/or case."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT} WHERE (:to IS NULL OR "to" = :to)
                AND (:case_id IS NULL OR case_id = :case_id) ORDER BY seq""",
            {"to": to, "case_id": case_id},
        ).fetchall()
    return [Notification.model_validate(dict(row)) for row in rows]
