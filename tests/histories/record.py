"""Record the stored histories that ``tests/test_replay.py`` replays.

    .venv/bin/python -m tests.histories.record

When to (re)record: only when a change is *meant* to be incompatible with running cases, and
then together with ``workflow.patched()`` so cases already running keep replaying on the old
path; keep the old histories beside the new ones. A replay failure after any other change means
the change would break running cases: fix the code, never the histories.

Each scenario runs one representative case on the time-skipping test server, with the systems
of record faked by activity name (``tests.fake_systems``), and saves its full history as
``invoice_exception_<name>.json``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from casework import search_attributes
from casework.audit import AuditEvent, AuditKind
from casework.converter import data_converter
from casework.tasks import HumanTask, TaskDecision
from casework.workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
    Outcome,
    case_id_for,
)
from tests.conftest import BIN
from tests.fake_systems import FakeSystems, scenario
from tests.integration_support import eventually

HISTORIES = Path(__file__).parent
PREFIX = "invoice_exception_"

CaseHandle = WorkflowHandle[InvoiceExceptionWorkflow, InvoiceExceptionResult]
Drive = Callable[[WorkflowEnvironment, CaseHandle], Awaitable[None]]


def history_path(name: str) -> Path:
    return HISTORIES / f"{PREFIX}{name}.json"


def invoice_id_for(name: str) -> str:
    return f"INV-REPLAY-{name}"


def workflow_id_for(history: Path) -> str:
    """The workflow ID a stored history was recorded under, from its file name."""
    return case_id_for(invoice_id_for(history.stem.removeprefix(PREFIX)))


@dataclass(frozen=True)
class Recording:
    name: str
    systems: Callable[[str], FakeSystems]
    """Builds the faked systems of record for the case's invoice ID."""
    drive: Drive
    """What people do while the case runs; returns once the case may run to its end."""
    outcome: Outcome


async def _open_task(handle: CaseHandle) -> HumanTask:
    async def probe() -> HumanTask | None:
        return await handle.query("open_task", result_type=HumanTask | None)

    return await eventually(probe, what=f"{handle.id} to open an approval task")


async def _decide(handle: CaseHandle, **decision: str) -> None:
    await handle.execute_update("decide", TaskDecision(**decision))


async def _nothing(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    """Nobody acts: the case runs on its own (time skips through any SLA)."""


async def _escalate_then_approve(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    first = await _open_task(handle)
    # Past the ap_supervisor's 24h SLA: the task moves to finance_manager, where bob is no
    # longer eligible, so carol decides.
    await env.sleep(timedelta(hours=25))

    async def escalated() -> HumanTask | None:
        task = await handle.query("open_task", result_type=HumanTask | None)
        return task if task is not None and task.task_id != first.task_id else None

    task = await eventually(escalated, what="the task to escalate")
    if task.role != "finance_manager":
        raise RuntimeError(f"expected the task to escalate to finance_manager, not {task.role}")
    await _decide(handle, approver="carol", action="approve")


async def _reject(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await _open_task(handle)
    await _decide(handle, approver="bob", action="reject", comment="no surcharge was agreed")


async def _invalid_signal_then_update(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await _open_task(handle)
    # alice submitted the case: her signal is recorded as refused and the task stays open.
    await handle.signal("decide", TaskDecision(approver="alice", action="approve"))

    async def refused() -> list[AuditEvent] | None:
        events = await handle.query("audit", result_type=list[AuditEvent])
        return [e for e in events if e.kind is AuditKind.DECISION_REFUSED] or None

    # Wait for the signal to land first, so the history always holds it before the update.
    await eventually(refused, what="the invalid signal to be recorded")
    await _decide(handle, approver="bob", action="approve")


def _price_variance(invoice_id: str) -> FakeSystems:
    # 5% over the PO on 3,000.00: outside tolerance, within the ap_supervisor's limit.
    return FakeSystems(scenario(invoice_id, invoice_price="31.50"))


RECORDINGS = (
    Recording(
        "auto_approved",
        lambda invoice_id: FakeSystems(scenario(invoice_id)),
        _nothing,
        Outcome.AUTO_APPROVED,
    ),
    Recording("escalated_approved", _price_variance, _escalate_then_approve, Outcome.APPROVED),
    Recording("rejected", _price_variance, _reject, Outcome.REJECTED),
    Recording(
        "failed_compensated",
        lambda invoice_id: FakeSystems(scenario(invoice_id), failing_statuses={"paid"}),
        _nothing,
        Outcome.FAILED_COMPENSATED,
    ),
    Recording("timed_out", _price_variance, _nothing, Outcome.TIMED_OUT),
    Recording(
        "invalid_signal_then_update",
        _price_variance,
        _invalid_signal_then_update,
        Outcome.APPROVED,
    ),
)


async def record(env: WorkflowEnvironment, recording: Recording) -> Path:
    invoice_id = invoice_id_for(recording.name)
    systems = recording.systems(invoice_id)
    # Fixed names (each run has a fresh server) keep a re-recording's diff to what changed.
    task_queue = f"record-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[InvoiceExceptionWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            InvoiceExceptionWorkflow.run,
            InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice"),
            id=case_id_for(invoice_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if result.outcome is not recording.outcome:
        raise RuntimeError(f"{recording.name}: expected {recording.outcome}, got {result}")
    path = history_path(recording.name)
    path.write_text((await handle.fetch_history()).to_json() + "\n")
    return path


async def record_all() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter,
        # Not "<pid>@<host>": a re-recording then differs only where the workflow does.
        identity="casework-history-recorder",
        # A runtime of its own, released in main(): the process-wide default one, torn down
        # during interpreter shutdown, can abort the process (temporalio/sdk-python#300). Core
        # warns about every worker's server lacking a capability the test server never has.
        runtime=Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        ),
    )
    async with env:
        await search_attributes.register(env.client, "default")
        for recording in RECORDINGS:
            path = await record(env, recording)
            print(f"recorded {path}")


def main() -> None:
    # The failed_compensated case fails an activity on purpose; its traceback is not news.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    try:
        asyncio.run(record_all())
    finally:
        gc.collect()


if __name__ == "__main__":
    main()
