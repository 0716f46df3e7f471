"""Looking at a running case the way people and tools do: through its queries."""

from __future__ import annotations

from temporalio.client import WorkflowHandle

from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.case.tasks import HumanTask
from casework.testing.temporal import eventually


async def state(handle: WorkflowHandle) -> CaseState:
    return await handle.query("state", result_type=CaseState)


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


def events_of(events: list[AuditEvent], kind: AuditKind) -> list[AuditEvent]:
    return [event for event in events if event.kind is kind]


async def open_task(handle: WorkflowHandle, what: str = "a task") -> HumanTask:
    """Wait until the case has a task open; returns it."""

    async def probe() -> HumanTask | None:
        return await handle.query("open_task", result_type=HumanTask | None)

    return await eventually(probe, what=f"{handle.id} to open {what}")
