"""The ITSM's follow-up tasks: the work an approved post-incident review assigns.

A review's follow-ups are created after the incident manager approves it, each once by
idempotency key, and cancelled (compensation) when the review cannot be completed; those writes
are the workflow's. Agents may read an incident's follow-ups.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class FollowUpTask(Record):
    task_id: str
    incident_id: str
    title: str
    owner: str
    due_in_days: int
    status: str


class FollowUpRequest(BaseModel):
    incident_id: str
    title: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=200)
    due_in_days: int = Field(ge=1, le=365)
    idempotency_key: str


class FollowUpLookup(BaseModel):
    """The follow-up tasks an incident's past reviews assigned, with owners and status."""

    incident_id: str = Field(min_length=1, description="The incident's ticket ID.")


class FollowUpCancellation(BaseModel):
    task_id: str
    reason: str
    idempotency_key: str


class FollowUpActivities(SystemActivities):
    system = "ITSM"

    @read_only_tool(name="list_follow_ups")
    @activity.defn(name="itsm.list_follow_ups")
    async def list_follow_ups(self, lookup: FollowUpLookup) -> list[FollowUpTask]:
        tasks = await call(
            self._client, "GET", "/itsm/follow-ups", params={"incident_id": lookup.incident_id}
        )
        return [FollowUpTask.model_validate(task) for task in tasks]

    @activity.defn(name="itsm.create_follow_up")
    async def create_follow_up(self, request: FollowUpRequest) -> FollowUpTask:
        return FollowUpTask.model_validate(
            await call(
                self._client,
                "POST",
                "/itsm/follow-ups",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="itsm.cancel_follow_up")
    async def cancel_follow_up(self, cancellation: FollowUpCancellation) -> FollowUpTask:
        return FollowUpTask.model_validate(
            await call(
                self._client,
                "POST",
                f"/itsm/follow-ups/{quote(cancellation.task_id, safe='')}/cancel",
                json={"reason": cancellation.reason},
                idempotency_key=cancellation.idempotency_key,
            )
        )
