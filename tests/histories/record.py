"""Record the stored histories that ``tests/test_replay.py`` replays.

    .venv/bin/python -m tests.histories.record

When to (re)record: only when a change is *meant* to be incompatible with running cases, and
then together with ``workflow.patched()`` so cases already running keep replaying on the old
path; keep the old histories beside the new ones. A replay failure after any other change means
the change would break running cases: fix the code, never the histories.

Each scenario runs one representative case on the time-skipping test server, with the systems
of record faked by activity name (``tests.fake_systems``), and saves its full history as
``invoice_exception_<name>.json``. Ticket-triage scenarios fake the service desk and the model
the same way (``tests.triage_support.FakeItsm``) and save two histories each, as the agent region
is a child workflow with a history of its own: ``ticket_triage_<name>.json`` for the case and
``ticket_triage_<name>.agent.json`` for its region.

Name scenarios to record only those (re-recording changes timestamps in every file):

    .venv/bin/python -m tests.histories.record severity_1_paged
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from casework import search_attributes
from casework.agents.triage import stand_in_turn
from casework.audit import AuditEvent, AuditKind
from casework.converter import data_converter
from casework.records import ConfigurationItem, KbArticle, Ticket
from casework.tasks import HumanTask, TaskDecision
from casework.workflows.agent_region import AgentRegionWorkflow, RegionOutcome
from casework.workflows.case import CaseStatus
from casework.workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
    Outcome,
    case_id_for,
)
from casework.workflows.ticket_triage import (
    Acknowledgement,
    TicketTriageInput,
    TicketTriageResult,
    TicketTriageWorkflow,
)
from casework.workflows.ticket_triage import case_id_for as triage_case_id_for
from tests.conftest import BIN
from tests.fake_systems import FakeSystems, scenario
from tests.integration_support import eventually
from tests.triage_support import FakeItsm, keep_reading_the_ticket

HISTORIES = Path(__file__).parent
PREFIX = "invoice_exception_"
TRIAGE_PREFIX = "ticket_triage_"
REGION_SUFFIX = ".agent"

CaseHandle = WorkflowHandle[InvoiceExceptionWorkflow, InvoiceExceptionResult]
Drive = Callable[[WorkflowEnvironment, CaseHandle], Awaitable[None]]


def history_path(name: str) -> Path:
    return HISTORIES / f"{PREFIX}{name}.json"


def invoice_id_for(name: str) -> str:
    return f"INV-REPLAY-{name}"


def triage_history_path(name: str, *, region: bool = False) -> Path:
    return HISTORIES / f"{TRIAGE_PREFIX}{name}{REGION_SUFFIX if region else ''}.json"


def ticket_id_for(name: str) -> str:
    return f"INC-REPLAY-{name}"


def workflow_id_for(history: Path) -> str:
    """The workflow ID a stored history was recorded under, from its file name."""
    if history.stem.startswith(TRIAGE_PREFIX):
        name = history.stem.removeprefix(TRIAGE_PREFIX)
        case_id = triage_case_id_for(ticket_id_for(name.removesuffix(REGION_SUFFIX)))
        # The case names its region after itself.
        return f"{case_id}-agent" if name.endswith(REGION_SUFFIX) else case_id
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
    # Behind workflow.patched("reconcile-failed-payment"): the payment went through but every
    # answer was lost; the case finds it in the ledger and reverses it.
    Recording(
        "payment_outcome_unknown",
        lambda invoice_id: FakeSystems(scenario(invoice_id), lose_payment_answers=True),
        _nothing,
        Outcome.FAILED_COMPENSATED,
    ),
)


# -- ticket triage ------------------------------------------------------------------------------

TriageHandle = WorkflowHandle[TicketTriageWorkflow, TicketTriageResult]
TriageDrive = Callable[[WorkflowEnvironment, TriageHandle], Awaitable[None]]

PASSWORD_ARTICLE = KbArticle(
    article_id="KB-101",
    title="Reset a forgotten password and unlock your account",
    body="Open the self-service portal, choose 'Forgot password', then sign in again.",
    category="access",
    tags=["password", "locked", "account"],
)
PAYMENTS_DB = ConfigurationItem(
    ci_id="CI-PAYDB",
    name="payments database",
    kind="database",
    owner_team="database-ops",
    oncall="ivy",
    criticality="critical",
)


@dataclass(frozen=True)
class TriageRecording:
    name: str
    systems: Callable[[str], FakeItsm]
    """Builds the faked service desk and model for the case's ticket ID."""
    drive: TriageDrive
    status: CaseStatus
    agent_outcome: RegionOutcome


def _ticket(ticket_id: str, title: str, description: str, **fields: object) -> dict[str, Ticket]:
    ticket = Ticket(
        ticket_id=ticket_id,
        title=title,
        description=description,
        requester="erin",
        status="new",
        **fields,
    )
    return {ticket_id: ticket}


def _password_reset(ticket_id: str) -> FakeItsm:
    # The offline stand-in finds the article and proposes resolving with it.
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Forgot my password, locked out",
            "I changed my password on Friday and now I am locked out of my account.",
        ),
        articles={PASSWORD_ARTICLE.article_id: PASSWORD_ARTICLE},
        turn=stand_in_turn,
    )


def _endless_lookups(ticket_id: str) -> FakeItsm:
    # A model that never answers: the region ends at its model-call budget.
    return FakeItsm(
        tickets=_ticket(ticket_id, "Strange noise from the coffee machine", "It hums loudly."),
        turn=keep_reading_the_ticket,
    )


def _outage(ticket_id: str) -> FakeItsm:
    # The stand-in escalates an outage of a critical item as severity 1: its on-call is paged.
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Payments database down",
            "The payments database is not responding; all users see checkout errors.",
            ci_id=PAYMENTS_DB.ci_id,
        ),
        items={PAYMENTS_DB.ci_id: PAYMENTS_DB},
        turn=stand_in_turn,
    )


async def _events(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


async def _reject_review(env: WorkflowEnvironment, handle: TriageHandle) -> None:
    task = await _open_task(handle)
    if task.role != "service_desk_lead":
        raise RuntimeError(f"expected a review by service_desk_lead, not {task.role}")
    await _decide(handle, approver="frank", action="reject", comment="not for the agent")


async def _page_escalates_then_acknowledge(env: WorkflowEnvironment, handle: TriageHandle) -> None:
    async def paged(count: int) -> list[AuditEvent] | None:
        events = [e for e in await _events(handle) if e.kind is AuditKind.PAGE_SENT]
        return events if len(events) >= count else None

    async def sla_timer_started() -> bool | None:
        history = await handle.fetch_history()
        return any(e.HasField("timer_started_event_attributes") for e in history.events) or None

    await eventually(lambda: paged(1), what="the on-call to be paged")
    await eventually(sla_timer_started, what="the acknowledgement SLA's timer")
    # Past the 15-minute acknowledgement SLA: the service desk lead is paged next.
    await env.sleep(timedelta(minutes=16))
    second = (await eventually(lambda: paged(2), what="the page to escalate"))[1]
    if second.data["paged"] != ["frank"]:
        raise RuntimeError(f"expected frank to be paged second, not {second.data['paged']}")
    await handle.execute_update("acknowledge", Acknowledgement(responder="frank"))


TRIAGE_RECORDINGS = (
    TriageRecording(
        "auto_resolved", _password_reset, _nothing, CaseStatus.RESOLVED, RegionOutcome.ANSWERED
    ),
    TriageRecording(
        "budget_exhausted_reviewed",
        _endless_lookups,
        _reject_review,
        CaseStatus.ASSIGNED,
        RegionOutcome.BUDGET_EXHAUSTED,
    ),
    TriageRecording(
        "severity_1_paged",
        _outage,
        _page_escalates_then_acknowledge,
        CaseStatus.ESCALATED,
        RegionOutcome.ANSWERED,
    ),
)


async def record_triage(env: WorkflowEnvironment, recording: TriageRecording) -> list[Path]:
    ticket_id = ticket_id_for(recording.name)
    systems = recording.systems(ticket_id)
    task_queue = f"record-{recording.name}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[TicketTriageWorkflow, AgentRegionWorkflow],
        activities=systems.activities(),
    ):
        handle = await env.client.start_workflow(
            TicketTriageWorkflow.run,
            TicketTriageInput(ticket_id=ticket_id, submitted_by="erin"),
            id=triage_case_id_for(ticket_id),
            task_queue=task_queue,
        )
        await recording.drive(env, handle)
        result = await handle.result()
    if (result.status, result.agent_outcome) != (recording.status, recording.agent_outcome):
        raise RuntimeError(
            f"{recording.name}: expected {recording.status} after "
            f"{recording.agent_outcome}, got {result}"
        )
    paths = []
    for workflow_id, path in (
        (handle.id, triage_history_path(recording.name)),
        (f"{handle.id}-agent", triage_history_path(recording.name, region=True)),
    ):
        history = await env.client.get_workflow_handle(workflow_id).fetch_history()
        path.write_text(history.to_json() + "\n")
        paths.append(path)
    return paths


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


async def record_all(names: list[str] | None = None) -> None:
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
            if names is None or recording.name in names:
                path = await record(env, recording)
                print(f"recorded {path}")
        for triage in TRIAGE_RECORDINGS:
            if names is None or triage.name in names:
                for path in await record_triage(env, triage):
                    print(f"recorded {path}")


def main() -> None:
    # The failed_compensated case fails an activity on purpose; its traceback is not news.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    known = {r.name for r in RECORDINGS} | {r.name for r in TRIAGE_RECORDINGS}
    names = sys.argv[1:] or None
    if unknown := set(names or ()) - known:
        sys.exit(f"unknown scenarios {sorted(unknown)}; known: {sorted(known)}")
    try:
        asyncio.run(record_all(names))
    finally:
        gc.collect()


if __name__ == "__main__":
    main()
