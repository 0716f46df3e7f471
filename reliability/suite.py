"""The fault suite: many cases through the real stack while things fail, then the invariants.

One run:

1. brings up the dev server (SQLite file), the sandbox, the scripted model and the worker, each
   a process of its own (``reliability.stack``);
2. plans the cases, every process's driver in turn, and gives each fault kind to at least one
   case (a model fault and a sandbox fault per case at most), then seeds and starts them all;
3. while they run: SIGKILLs the worker mid-case and starts a new one, stops and restarts the dev
   server while cases wait for approval and while writes are in flight (held by slow sandbox
   responses), and plays people's part once the cases that need a person wait for one;
4. waits until every case is final, or waiting as its scenario leaves it, or the deadline passes;
5. checks, against the sandbox's ledger and every case's Temporal history (its children's too):
   each case reached a final or waiting state with an expected status, no write happened twice,
   each compensated case has its reversal, no workflow task failed and none is stuck.

It prints progress as it goes, then the table; ``Report.ok`` says whether every invariant held.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from bench.infra import gather_limited, progress
from casework import search_attributes as sa
from casework.audit import AuditEvent
from casework.case import CaseState
from casework.testing.scripted_llm import ScriptedReply, turn_of
from reliability.drivers import DRIVERS
from reliability.drivers.base import (
    WAITING_STATUSES,
    CaseDriver,
    Ledger,
    Outcome,
    People,
    PlannedCase,
    SandboxFault,
)
from reliability.model import ModelFault
from reliability.stack import Stack, retrying, running_stack

WORKER_KILLED = "worker SIGKILL mid-case, restarted"
SERVER_RESTARTED = "dev server stopped, restarted on its SQLite file"
HELD = "write held in flight over kill and restart"
SEED_CONCURRENCY = 16
START_CONCURRENCY = 32
CHECK_CONCURRENCY = 12
POLL_SECONDS = 1.0
# Holds the first write after each decision in flight while the worker is killed and the server
# restarted: long enough to outlast the kill, short enough not to be a timeout.
HOLD_SECONDS = 3.0


@dataclass(frozen=True)
class Size:
    name: str
    cases_per_process: int
    early_kills: int
    """Worker kills while cases are being analysed (agents, reads, first writes in flight)."""
    kill_while_waiting: bool
    """Kill the worker once half the cases that need a person wait for one."""
    restart_while_waiting: bool
    """Restart the dev server then too, before anyone decides."""
    late_kills: int
    """Worker kills after the decisions, while cases execute."""
    settle_seconds: float
    """How long cases may take to settle after the last fault. A model call lost with a killed
    worker is retried only after its 2-minute start-to-close timeout, so this is well above it."""

    @property
    def worker_kills(self) -> int:
        # The execution phase always kills the worker once, with writes held in flight.
        return self.early_kills + int(self.kill_while_waiting) + 1 + self.late_kills

    @property
    def server_restarts(self) -> int:
        # ... and always restarts the dev server then.
        return int(self.restart_while_waiting) + 1


# The CI size keeps every kill and restart inside one window, so the activities they strand
# (retried when their 30 s start-to-close timeout passes) are waited for once, not per fault.
CI = Size(
    "ci",
    cases_per_process=9,
    early_kills=0,
    kill_while_waiting=True,
    restart_while_waiting=False,
    late_kills=0,
    settle_seconds=240,
)
FULL = Size(
    "full",
    cases_per_process=150,
    early_kills=3,
    kill_while_waiting=True,
    restart_while_waiting=True,
    late_kills=1,
    settle_seconds=600,
)
LOAD = Size(
    "load",
    cases_per_process=500,
    early_kills=1,
    kill_while_waiting=True,
    restart_while_waiting=True,
    late_kills=1,
    settle_seconds=900,
)
SIZES = {size.name: size for size in (CI, FULL, LOAD)}


# -- planning -----------------------------------------------------------------------------------


def plan_cases(drivers: Iterable[CaseDriver], size: Size, tag: str) -> list[PlannedCase]:
    """Every process's cases, each fault kind given to at least one compatible case, then to
    every other case or so, a model fault and a sandbox fault per case at most."""
    cases: list[PlannedCase] = []
    for driver in drivers:
        own = [
            PlannedCase(
                driver=driver,
                key=(key := driver.new_key(tag, number)),
                case_id=driver.case_id(key),
                scenario=driver.scenarios[number % len(driver.scenarios)],
            )
            for number in range(size.cases_per_process)
        ]
        model_kinds = sorted(driver.model_faults)
        sandbox_kinds = sorted(driver.sandbox_faults)
        for kind in model_kinds:
            target = next((c for c in own if c.model_fault is None), None)
            if target is not None:
                target.model_fault = kind
        for kind in sandbox_kinds:
            target = next(
                (c for c in own if c.sandbox_fault is None and driver.compatible(c.scenario, kind)),
                None,
            )
            if target is not None:
                target.sandbox_fault = kind
        # Beyond one of each, about half the cases meet a model fault and half a sandbox fault:
        # of the kinds that can fire in a case's scenario, the one given least so far.
        given = Counter(c.sandbox_fault for c in own if c.sandbox_fault)
        for number, case in enumerate(own):
            if case.model_fault is None and model_kinds and number % 2 == 0:
                case.model_fault = model_kinds[number // 2 % len(model_kinds)]
            if case.sandbox_fault is None and number % 2 == 1:
                fits = [k for k in sandbox_kinds if driver.compatible(case.scenario, k)]
                if fits:
                    case.sandbox_fault = min(fits, key=lambda k: given[k])
                    given[case.sandbox_fault] += 1
        cases += own
    return cases


# -- the report ---------------------------------------------------------------------------------


@dataclass
class CaseVerdict:
    case: PlannedCase
    outcome: Outcome
    ledger: Ledger
    problems: list[str]
    task_failures: int = 0
    task_timeouts: int = 0
    retried_activities: Counter[str] = field(default_factory=Counter)
    stranded_activities: Counter[str] = field(default_factory=Counter)
    """Activity type -> how many were retried after a start-to-close timeout: the attempt was
    lost (its worker killed) and Temporal ran it again."""
    """Activity type -> how many of its activities needed more than one attempt."""
    stuck: bool = False
    settled: bool = True

    @property
    def completed(self) -> bool:
        return self.settled and self.outcome.final

    @property
    def waiting(self) -> bool:
        return self.settled and self.outcome.waiting


@dataclass
class Report:
    size: Size
    seconds: float
    verdicts: list[CaseVerdict]
    planned: Counter[str]
    """Cases planned per fault kind (and kills/restarts planned)."""
    injected: Counter[str]
    """Faults that actually fired: faulted calls, model answers replaced, kills, restarts."""
    work: Path
    notes: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return len(self.verdicts)

    def count(self, test: Any) -> int:
        return sum(1 for verdict in self.verdicts if test(verdict))

    @property
    def completed(self) -> int:
        return self.count(lambda v: v.completed)

    @property
    def waiting(self) -> int:
        return self.count(lambda v: v.waiting)

    @property
    def lost(self) -> int:
        return self.count(lambda v: not v.settled)

    @property
    def duplicates(self) -> int:
        return sum(len(v.ledger.duplicates) for v in self.verdicts)

    @property
    def wrong_outcomes(self) -> int:
        return self.count(lambda v: v.settled and v.problems)

    @property
    def task_failures(self) -> int:
        return sum(v.task_failures for v in self.verdicts)

    @property
    def stuck(self) -> int:
        return self.count(lambda v: v.stuck)

    @property
    def compensated(self) -> tuple[int, int]:
        """Cases that ended compensated, and how many of them have every reversal."""
        compensated = [v for v in self.verdicts if "compensated" in v.outcome.status]
        reversed_ = [
            v for v in compensated if v.ledger.reversals and all(v.ledger.reversals.values())
        ]
        return len(compensated), len(reversed_)

    @property
    def unfired(self) -> list[str]:
        """Fault kinds planned but never injected: the run would not have tested them."""
        return [kind for kind, n in self.planned.items() if n and not self.injected[kind]]

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates
            or self.wrong_outcomes
            or self.task_failures
            or self.stuck
            or self.unfired
            or self.compensated[0] != self.compensated[1]
        )

    def failures(self) -> list[str]:
        lines = []
        for verdict in self.verdicts:
            what = list(verdict.problems)
            if not verdict.settled:
                what.insert(0, f"lost: still {verdict.outcome.status} after the deadline")
            if verdict.ledger.duplicates:
                what.append("duplicates: " + ", ".join(verdict.ledger.duplicates))
            if verdict.task_failures:
                what.append(f"{verdict.task_failures} workflow task failure(s)")
            if verdict.stuck:
                what.append("stuck: its workflow task keeps failing")
            if what:
                faults = ", ".join(
                    str(f) for f in (verdict.case.model_fault, verdict.case.sandbox_fault) if f
                )
                lines.append(
                    f"{verdict.case.case_id} ({verdict.case.scenario.name}; {faults or 'no fault'}"
                    f"): " + "; ".join(what)
                )
        lines += [f"fault kind {kind!r} was planned but never fired" for kind in self.unfired]
        return lines


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def render(report: Report) -> str:
    fault_rows = [
        [kind, str(report.planned[kind]), str(report.injected[kind])]
        for kind in sorted(set(report.planned) | set(report.injected), key=_fault_order)
    ]
    per_process: dict[str, list[CaseVerdict]] = {}
    for verdict in report.verdicts:
        per_process.setdefault(verdict.case.process, []).append(verdict)

    def row(name: str, verdicts: list[CaseVerdict]) -> list[str]:
        return [
            name,
            str(len(verdicts)),
            str(sum(v.completed for v in verdicts)),
            str(sum(v.waiting for v in verdicts)),
            str(sum(len(v.ledger.duplicates) for v in verdicts)),
            str(sum(not v.settled for v in verdicts)),
            str(sum(bool(v.settled and v.problems) for v in verdicts)),
            str(sum(v.task_failures for v in verdicts)),
            str(sum(v.stuck for v in verdicts)),
        ]

    case_rows = [row(name, verdicts) for name, verdicts in sorted(per_process.items())]
    case_rows.append(row("all", report.verdicts))
    # Every case lives through the kills and restarts; these rows split each process's cases by
    # the fault of their own (a case with a model and a sandbox fault counts under both).
    by_fault: list[list[str]] = []
    for name, verdicts in sorted(per_process.items()):
        kinds = sorted(
            {str(f) for v in verdicts for f in (v.case.model_fault, v.case.sandbox_fault) if f},
            key=_fault_order,
        )
        for kind in [*kinds, NO_OWN_FAULT]:
            met = [v for v in verdicts if kind in _own_faults(v.case)]
            if met:
                by_fault.append([name, kind, *row("", met)[1:]])
    compensated, reversed_ = report.compensated
    outcomes = Counter(v.outcome.status for v in report.verdicts)
    retried: Counter[str] = sum((v.retried_activities for v in report.verdicts), Counter())
    stranded: Counter[str] = sum((v.stranded_activities for v in report.verdicts), Counter())
    lines = [
        f"reliability suite, {report.size.name} size: {report.cases} cases in "
        f"{report.seconds:.0f} s",
        "",
        _table(["fault", "planned (cases)", "injected (calls/answers/events)"], fault_rows),
        "",
        _table(
            [
                "process",
                "cases run",
                "completed",
                "waiting",
                "duplicates",
                "lost",
                "wrong outcome",
                "wf task failures",
                "stuck",
            ],
            case_rows,
        ),
        "",
        _table(
            [
                "process",
                "fault of its own",
                "cases",
                "completed",
                "waiting",
                "duplicates",
                "lost",
                "wrong outcome",
                "wf task failures",
                "stuck",
            ],
            by_fault,
        ),
        "",
        _wrap("outcomes:", [f"{status} {n}" for status, n in sorted(outcomes.items())]),
        f"compensated cases with their reversal: {reversed_}/{compensated}",
        _wrap(
            "activities that needed more than one attempt:",
            [f"{name} {n}" for name, n in retried.most_common()] or ["none"],
        ),
        _wrap(
            "of which run again after their attempt was lost with a killed worker "
            "(start-to-close timeout):",
            [f"{name} {n}" for name, n in stranded.most_common()] or ["none"],
        ),
        "workflow tasks timed out (a killed worker's): "
        f"{sum(v.task_timeouts for v in report.verdicts)}",
        *report.notes,
    ]
    failures = report.failures()
    lines.append("")
    if failures:
        lines.append(f"INVARIANTS FAILED ({len(failures)}):")
        lines += [f"  {line}" for line in failures[:50]]
        lines.append(f"logs and databases kept in {report.work}")
    else:
        lines.append(
            "every invariant held: every case final or waiting, 0 duplicates, 0 lost,\n"
            "every compensation reversed, no workflow task failed or stuck"
        )
    return "\n".join(lines)


def _wrap(prefix: str, items: list[str], width: int = 100) -> str:
    """``prefix item, item, ...`` in lines of at most ``width``, never splitting an item."""
    lines = [prefix]
    for number, item in enumerate(items):
        text = item + ("," if number < len(items) - 1 else "")
        if len(lines[-1]) + 1 + len(text) > width:
            lines.append(" ")
        lines[-1] += " " + text
    return "\n".join(lines)


NO_OWN_FAULT = "none (kills and restarts only)"


def _own_faults(case: PlannedCase) -> set[str]:
    """The fault kinds planned for this case alone, or ``NO_OWN_FAULT``."""
    own = {str(f) for f in (case.model_fault, case.sandbox_fault) if f}
    return own or {NO_OWN_FAULT}


def _aimed(spec: dict[str, Any], case: PlannedCase) -> bool:
    """Whether a fault spec can only hit this case (its path or idempotency key names it)."""
    return case.key in spec["path"] or case.key in spec.get("idempotency_key", "")


def _fault_order(kind: str) -> tuple[int, str]:
    order = [WORKER_KILLED, SERVER_RESTARTED, HELD, *SandboxFault, *ModelFault]
    return (order.index(kind) if kind in order else len(order), kind)


# -- running ------------------------------------------------------------------------------------


class Run:
    def __init__(self, stack: Stack, cases: list[PlannedCase], size: Size) -> None:
        self.stack = stack
        self.cases = cases
        self.size = size
        self.by_id = {case.case_id: case for case in cases}
        self.injected: Counter[str] = Counter()
        self.planned: Counter[str] = Counter()
        self.fault_ids: dict[str, tuple[str, int]] = {}
        """Sandbox fault ID -> (kind, calls it was given)."""
        self.visible: dict[str, tuple[WorkflowExecutionStatus | None, str | None]] = {}
        self.people_go = asyncio.Event()
        self.decided_tasks: set[str] = set()
        self.answered_outside: set[str] = set()
        """Cases whose outside systems (a credit bureau) have answered them."""
        self.done = asyncio.Event()

    @property
    def client(self) -> Client:
        return self.stack.client

    # -- the model's good answers -----------------------------------------------------------

    def good_reply(self, request: dict[str, Any]) -> tuple[str, ScriptedReply] | None:
        for driver in {case.driver for case in self.cases}:
            case_id = driver.case_of(request)
            if case_id is not None and case_id in self.by_id:
                case = self.by_id[case_id]
                return case_id, driver.model_reply(case, turn_of(request), request)
        return None

    # -- setup ------------------------------------------------------------------------------

    async def seed(self) -> None:
        await gather_limited(
            SEED_CONCURRENCY,
            (lambda c=c: c.driver.seed(self.stack.http, c.key, c.scenario) for c in self.cases),
        )

    async def add_fault(self, kind: str, spec: dict[str, Any]) -> None:
        response = await self.stack.http.post("/_faults", json=spec)
        response.raise_for_status()
        self.fault_ids[response.json()["id"]] = (kind, spec.get("count", 1))

    async def inject_planned_faults(self) -> None:
        shared: dict[tuple[str, str], dict[str, Any]] = {}
        for case in self.cases:
            if case.model_fault is not None:
                self.stack.model.faults[case.case_id] = case.model_fault
                self.planned[case.model_fault] += 1
            if case.sandbox_fault is None:
                continue
            self.planned[case.sandbox_fault] += 1
            for spec in case.driver.fault_specs(case.sandbox_fault, case.key):
                if _aimed(spec, case):
                    await self.add_fault(case.sandbox_fault, spec)
                else:
                    # One spec per shared route, given as many calls as cases planned it.
                    merged = shared.setdefault(
                        (case.sandbox_fault, repr(sorted(spec.items()))), dict(spec, count=0)
                    )
                    merged["count"] += spec.get("count", 1)
        for (kind, _), spec in shared.items():
            await self.add_fault(kind, spec)
        self.planned[WORKER_KILLED] = self.size.worker_kills
        self.planned[SERVER_RESTARTED] = self.size.server_restarts

    async def start_cases(self) -> None:
        async def start(case: PlannedCase) -> None:
            await self.client.start_workflow(
                case.driver.workflow_type,
                case.driver.case_input(case.key),
                id=case.case_id,
                task_queue=self.stack.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(sa.CASE_TYPE, case.process)]
                ),
            )

        await gather_limited(START_CONCURRENCY, (lambda c=c: start(c) for c in self.cases))

    # -- watching ---------------------------------------------------------------------------

    def settled(self, case: PlannedCase) -> bool:
        status, case_status = self.visible.get(case.case_id, (None, None))
        if status is None:
            return False
        if status != WorkflowExecutionStatus.RUNNING:
            return True
        driver = case.driver
        return case_status in driver.resting_statuses or (
            case.scenario.people is People.LEAVE
            and case_status in WAITING_STATUSES - driver.outside_statuses
        )

    async def refresh(self) -> None:
        """Every case's execution status and CaseStatus, from visibility in one listing."""
        seen: dict[str, tuple[WorkflowExecutionStatus | None, str | None]] = {}
        query = f"TaskQueue = '{self.stack.task_queue}'"
        async for execution in self.client.list_workflows(query):
            if execution.id in self.by_id:
                seen[execution.id] = (
                    execution.status,
                    execution.typed_search_attributes.get(sa.CASE_STATUS),
                )
        self.visible = seen

    def unsettled(self) -> list[PlannedCase]:
        return [case for case in self.cases if not self.settled(case)]

    async def watch(self) -> None:
        """Keep the view of the cases fresh and report progress."""
        last_report = 0.0
        while not self.done.is_set():
            with suppress(RPCError, RuntimeError):
                await self.refresh()
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                statuses = Counter(status for status, _ in self.visible.values())
                waiting = sum(
                    1 for _, case_status in self.visible.values() if case_status in WAITING_STATUSES
                )
                progress(
                    f"{len(self.cases) - len(self.unsettled())}/{len(self.cases)} settled; "
                    f"{statuses.get(WorkflowExecutionStatus.COMPLETED, 0)} completed, "
                    f"{waiting} waiting for people; worker #{self.stack.worker_generation}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def people(self) -> None:
        """Once people start deciding, answer every case that waits for them, pass after pass.

        A person whose decision fails (the server restarting, the worker gone, the update timing
        out) simply tries again on the next pass, as a person would.
        """
        await self.people_go.wait()
        seen: set[str] = set()
        while not self.done.is_set():
            try:
                await self.play_people()
            except Exception as error:
                if type(error).__name__ not in seen:
                    seen.add(type(error).__name__)
                    progress(f"people's part met {type(error).__name__}; trying again")
            await asyncio.sleep(POLL_SECONDS)

    async def outside(self) -> None:
        """From the start: the systems the drivers play answer each case that waits for them,
        once (until the answer reached the case, that is: a failed try is tried again)."""
        while not self.done.is_set():
            await self.play_outside()
            await asyncio.sleep(POLL_SECONDS)

    async def play_outside(self) -> None:
        async def answer(case: PlannedCase) -> None:
            # The server restarting, the worker gone: try again on the next pass.
            with suppress(Exception):
                if await asyncio.wait_for(
                    case.driver.answer_outside(self.client, self.stack.http, case), 30
                ):
                    self.answered_outside.add(case.case_id)

        asking = [
            case
            for case in self.cases
            if case.case_id not in self.answered_outside
            and self.visible.get(case.case_id, (None, None))
            in {(WorkflowExecutionStatus.RUNNING, s) for s in case.driver.outside_statuses}
        ]
        await gather_limited(8, (lambda c=c: answer(c) for c in asking))

    async def play_people(self) -> None:
        asking = [
            case
            for case in self.cases
            if case.scenario.people is not People.LEAVE
            and self.visible.get(case.case_id, (None, None))[1]
            in WAITING_STATUSES - case.driver.outside_statuses
            and self.visible[case.case_id][0] == WorkflowExecutionStatus.RUNNING
        ]

        async def respond(case: PlannedCase) -> None:
            handle = self.client.get_workflow_handle(case.case_id)
            state = await handle.query("state", result_type=CaseState)
            fresh = [t for t in state.open_tasks if t.task_id not in self.decided_tasks]
            if not fresh:
                return
            state = state.model_copy(update={"open_tasks": fresh})
            await asyncio.wait_for(
                case.driver.respond(self.client, case, state, self.stack.sign), 30
            )
            self.decided_tasks.update(task.task_id for task in fresh)

        async def guarded(case: PlannedCase) -> None:
            # The server restarted, the worker is gone, the update timed out, or the task closed
            # meanwhile: look again on the next pass.
            with suppress(Exception):
                await respond(case)

        await gather_limited(8, (lambda c=c: guarded(c) for c in asking))

    # -- chaos ------------------------------------------------------------------------------

    async def kill_worker(self, when: str) -> None:
        # A model call lost with a killed worker is only retried after its 2-minute timeout;
        # prefer a moment between model calls (the suite still copes when there is none).
        deadline = time.monotonic() + 3
        while self.stack.model.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        running = len(self.unsettled())
        pid = self.stack.worker_pid
        await self.stack.kill_worker(then_restart=False)
        self.injected[WORKER_KILLED] += 1
        progress(f"SIGKILL worker (pid {pid}) {when}, {running} cases unsettled; restarting it")
        await self.stack.start_worker()

    async def restart_server(self, when: str) -> None:
        progress(f"stopping the dev server {when}")
        await self.stack.restart_server()
        self.injected[SERVER_RESTARTED] += 1
        progress(f"dev server back on {self.stack.server.db_file.name}")

    async def wait_until(self, test: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not test() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)

    def waiting_for_people(self) -> bool:
        """Every case is final, or waits for people (whether they will act or not)."""
        for case in self.cases:
            status, case_status = self.visible.get(case.case_id, (None, None))
            waits = (WAITING_STATUSES | case.driver.resting_statuses) - case.driver.outside_statuses
            if status == WorkflowExecutionStatus.RUNNING and case_status not in waits:
                return False
            if status is None:
                return False
        return True

    async def hold_next_writes(self) -> None:
        """Slow down the first write each decision triggers, so that it is in flight when the
        worker dies and the server stops."""
        shared: dict[str, dict[str, Any]] = {}
        for case in self.cases:
            if case.scenario.people is People.LEAVE:
                continue
            for spec in case.driver.held_after_decision(case.key):
                spec = spec | {"status": 0, "delay_seconds": HOLD_SECONDS}
                if _aimed(spec, case):
                    await self.add_fault(HELD, spec)
                else:
                    merged = shared.setdefault(spec["path"], spec | {"count": 0})
                    merged["count"] += 1
        for spec in shared.values():
            await self.add_fault(HELD, spec)
        self.planned[HELD] = sum(count for kind, count in self.fault_ids.values() if kind == HELD)

    def half_waiting(self) -> bool:
        """Half the cases that people will decide wait for them (or every case has settled
        or waits)."""
        deciding = [c for c in self.cases if c.scenario.people is not People.LEAVE]
        waiting = sum(
            1
            for case in deciding
            if self.visible.get(case.case_id, (None, None))[1]
            in WAITING_STATUSES - case.driver.outside_statuses
        )
        return waiting * 2 >= len(deciding) or self.waiting_for_people()

    async def until_a_held_write_is_in_flight(self, timeout: float = 60) -> None:
        """Until the sandbox is holding a write a decision set off (it holds each for
        ``HOLD_SECONDS``), so that the kill that follows strands it."""
        held = {fault_id for fault_id, (kind, _) in self.fault_ids.items() if kind == HELD}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            faults = (await self.stack.http.get("/_faults")).json()
            remaining = {fault["id"]: fault["remaining"] for fault in faults}
            if any(remaining.get(i, 0) < self.fault_ids[i][1] for i in held):
                return
            await asyncio.sleep(0.1)

    async def chaos(self) -> None:
        size = self.size
        # Analysis: model calls, reads and the straight-through cases' writes in flight.
        for number in range(size.early_kills):
            await asyncio.sleep(2 if number == 0 else 12)
            await self.kill_worker("while cases are being analysed")
        await self.wait_until(self.half_waiting, timeout=240)
        if size.kill_while_waiting:
            await self.kill_worker("while cases wait for people")
        if size.restart_while_waiting:
            await self.restart_server("while cases wait for approval")
        # Execution: people decide; the first write after each decision is held in flight.
        await self.hold_next_writes()
        self.people_go.set()
        progress("people start deciding")
        await self.until_a_held_write_is_in_flight()
        await self.kill_worker("while decided cases write (held in flight)")
        await self.restart_server("while writes are in flight and cases wait")
        for _ in range(size.late_kills):
            await asyncio.sleep(4)
            await self.kill_worker("while cases execute")

    # -- settling and checking --------------------------------------------------------------

    async def settle(self) -> None:
        deadline = time.monotonic() + self.size.settle_seconds
        while self.unsettled() and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)

    async def count_injected(self) -> None:
        response = await self.stack.http.get("/_faults")
        remaining = {fault["id"]: fault["remaining"] for fault in response.json()}
        for fault_id, (kind, calls) in self.fault_ids.items():
            self.injected[kind] += calls - remaining.get(fault_id, 0)
        for kind, served in self.stack.model.served.items():
            self.injected[kind] += served

    async def verdict(self, case: PlannedCase) -> CaseVerdict:
        client = self.client
        handle = client.get_workflow_handle(case.case_id)
        description = await retrying(handle.describe, what=f"describe {case.case_id}")
        execution = description.status.name if description.status else "UNKNOWN"
        state = await retrying(lambda: handle.query("state", result_type=CaseState), what="state")
        audit = await retrying(
            lambda: handle.query("audit", result_type=list[AuditEvent]), what="audit"
        )
        outcome = Outcome(
            execution=execution, state=state, audit=audit, resting=case.driver.resting_statuses
        )
        ledger = await case.driver.ledger(self.stack.http, case.key)
        settled = (
            self.settled(case)
            or outcome.final
            or (
                outcome.waiting
                and (
                    case.scenario.people is People.LEAVE
                    or outcome.status in case.driver.resting_statuses
                )
                and outcome.status not in case.driver.outside_statuses
            )
        )
        problems: list[str] = []
        if settled and outcome.status not in case.driver.expected_statuses(case):
            problems.append(
                f"ended {outcome.status} (workflow {execution}); expected one of "
                + ", ".join(sorted(case.driver.expected_statuses(case)))
            )
        if settled:
            problems += case.driver.problems(case, outcome, ledger)
        failures, timeouts, retried, stranded = await self.history_counts(case.case_id)
        pending = description.raw_description.pending_workflow_task
        stuck = (
            execution == "RUNNING"
            and description.raw_description.HasField("pending_workflow_task")
            and pending.attempt > 1
        )
        return CaseVerdict(
            case=case,
            outcome=outcome,
            ledger=ledger,
            problems=problems,
            task_failures=failures,
            task_timeouts=timeouts,
            retried_activities=retried,
            stranded_activities=stranded,
            stuck=stuck,
            settled=settled,
        )

    async def history_counts(self, workflow_id: str) -> tuple[int, int, Counter[str], Counter[str]]:
        """Workflow task failures and timeouts; the activities that needed more than one attempt,
        and those run again because an attempt timed out (by type); in a case's history and its
        child workflows' (an agent region)."""
        history = await retrying(
            lambda: self.client.get_workflow_handle(workflow_id).fetch_history(),
            what=f"history of {workflow_id}",
        )
        failures = timeouts = 0
        retried: Counter[str] = Counter()
        stranded: Counter[str] = Counter()
        activity_types: dict[int, str] = {}
        for event in history.events:
            match event.event_type:
                case EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failures += 1
                case EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                    timeouts += 1
                case EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    attributes = event.activity_task_scheduled_event_attributes
                    activity_types[event.event_id] = attributes.activity_type.name
                case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    started = event.activity_task_started_event_attributes
                    name = activity_types.get(started.scheduled_event_id, "?")
                    if started.attempt > 1:
                        retried[name] += 1
                        if started.last_failure.HasField("timeout_failure_info"):
                            stranded[name] += 1
                case EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                    child = event.child_workflow_execution_started_event_attributes
                    more = await self.history_counts(child.workflow_execution.workflow_id)
                    failures += more[0]
                    timeouts += more[1]
                    retried += more[2]
                    stranded += more[3]
        return failures, timeouts, retried, stranded


async def run_suite(
    size: Size,
    drivers: Iterable[CaseDriver] | None = None,
    *,
    work: Path | None = None,
) -> Report:
    """Run the fault suite at ``size``; the report says what happened and whether it held."""
    chosen = list(drivers or DRIVERS.values())
    tag = uuid.uuid4().hex[:4].upper()
    cases = plan_cases(chosen, size, tag)
    work = work or Path(tempfile.mkdtemp(prefix="casework-reliability-"))
    started = time.monotonic()
    progress(
        f"{size.name} size: {len(cases)} cases ("
        + ", ".join(f"{size.cases_per_process} {d.process}" for d in chosen)
        + f"), {size.worker_kills} worker kills, {size.server_restarts} server restarts; "
        f"work dir {work}"
    )
    run: Run | None = None

    def good_reply(request: dict[str, Any]) -> tuple[str, ScriptedReply] | None:
        return run.good_reply(request) if run else None

    async with running_stack(work, good_reply) as stack:
        run = Run(stack, cases, size)
        progress("seeding the sandbox")
        await run.seed()
        await run.inject_planned_faults()
        progress(
            f"starting {len(cases)} cases; faults planned: "
            + ", ".join(
                f"{kind} {n}"
                for kind, n in sorted(run.planned.items(), key=lambda i: _fault_order(i[0]))
            )
        )
        await run.start_cases()
        watchers = [
            asyncio.create_task(run.watch()),
            asyncio.create_task(run.people()),
            asyncio.create_task(run.outside()),
        ]
        try:
            await run.chaos()
            progress("last fault injected; waiting for every case to settle")
            await run.settle()
        finally:
            run.done.set()
            run.people_go.set()
            await asyncio.gather(*watchers)
        await run.refresh()
        progress("checking every case against the ledger and its history")
        await run.count_injected()
        verdicts = await gather_limited(
            CHECK_CONCURRENCY, (lambda c=c: run.verdict(c) for c in cases)
        )
    report = Report(
        size=size,
        seconds=time.monotonic() - started,
        verdicts=verdicts,
        planned=run.planned,
        injected=run.injected,
        work=work,
    )
    if report.ok:
        shutil.rmtree(work, ignore_errors=True)
    return report
