"""Notification tools: messages to people land in the notification outbox."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from casework.systems.base import SystemActivities
from casework.systems.http import call
from casework.systems.records import Record


class Notification(Record):
    notification_id: str
    to: str
    subject: str
    body: str = ""
    case_id: str | None = None


class NotificationRequest(BaseModel):
    to: str
    subject: str
    body: str
    case_id: str | None = None
    idempotency_key: str


class NotificationActivities(SystemActivities):
    system = "notifications"

    @activity.defn(name="notifications.send")
    async def send(self, request: NotificationRequest) -> Notification:
        return Notification.model_validate(
            await call(
                self._client,
                "POST",
                "/notifications",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )
