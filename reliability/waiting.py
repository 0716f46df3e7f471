"""Waiting at scale survives restarts: N cases wait for approval, the worker is SIGKILLed and the
dev server restarted on its SQLite file, a new worker starts, and every case resumes and pays
exactly once when approved.

Shares the benchmark's seeding and starting (``bench.infra``) and its worker process
(``bench.waiting.WorkerProcess``); where ``bench`` measures (SIGTERM, memory, time), this checks:
every case still waits after the restarts, every one pays once when approved, nothing is lost,
no workflow task failed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from bench.infra import (
    NEEDS_APPROVAL,
    Sandbox,
    count,
    gather_limited,
    progress,
    start_invoice_case,
    wait_for_count,
)
from casework.case.tasks import TaskDecision
from reliability.stack import retrying, running_stack

START_CONCURRENCY = 64
SIGNAL_CONCURRENCY = 64
HISTORY_CONCURRENCY = 32
# Starting 10,000 waiting cases took 1,344 s here (bench/README); allow for a slower day.
SECONDS_PER_CASE = 0.5


@dataclass
class WaitingResult:
    cases: int
    start_seconds: float = 0.0
    restart_seconds: float = 0.0
    waiting_after_restart: int = 0
    finish_seconds: float = 0.0
    paid: int = 0
    failed: int = 0
    payments: int = 0
    duplicates: int = 0
    reversed: int = 0
    unpaid: int = 0
    task_failures: int = 0
    histories_checked: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.cases - self.paid - self.failed

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and self.waiting_after_restart == self.cases
            and self.paid == self.cases
            and self.duplicates == 0
            and self.unpaid == 0
            and self.reversed == 0
            and self.task_failures == 0
        )


async def run_waiting(cases: int, work: Path | None = None) -> WaitingResult:
    work = work or Path(tempfile.mkdtemp(prefix="casework-waiting-"))
    result = WaitingResult(cases=cases)
    began = time.monotonic()
    tag = uuid.uuid4().hex[:6].upper()
    ids = [f"INV-WR{tag}-{n:05d}" for n in range(cases)]
    in_run = f"WorkflowId STARTS_WITH 'invoice-exception-INV-WR{tag}-'"
    timeout = 600 + cases * SECONDS_PER_CASE
    async with running_stack(work, lambda request: None, offline_model=True) as stack:
        client = stack.client
        sandbox = Sandbox(stack.http)
        progress(f"seeding {cases} invoices that need approval")
        await sandbox.seed_invoices(ids, NEEDS_APPROVAL)
        progress(f"starting {cases} cases")
        started = time.monotonic()
        await gather_limited(
            START_CONCURRENCY,
            (lambda i=i: start_invoice_case(client, i, stack.task_queue) for i in ids),
        )
        waiting = f"CaseStatus = 'awaiting_approval' AND {in_run}"
        await wait_for_count(client, waiting, cases, timeout=timeout, interval=2)
        result.start_seconds = time.monotonic() - started
        progress(f"{cases} cases waiting for approval after {result.start_seconds:.0f} s")

        restarting = time.monotonic()
        pid = stack.worker_pid
        await stack.kill_worker(then_restart=False)
        progress(f"worker (pid {pid}) SIGKILLed; restarting the dev server on its SQLite file")
        await stack.restart_server()
        await stack.start_worker()
        result.restart_seconds = time.monotonic() - restarting
        result.waiting_after_restart = await retrying(
            lambda: count(client, waiting), what="count waiting cases"
        )
        progress(
            f"new worker (pid {stack.worker_pid}) up after {result.restart_seconds:.0f} s; "
            f"{result.waiting_after_restart} cases still waiting"
        )

        decision = TaskDecision(approver="bob", action="approve", comment="bulk approval")
        signed = {i: stack.sign(f"invoice-exception-{i}", decision) for i in ids}
        finishing = time.monotonic()
        await gather_limited(
            SIGNAL_CONCURRENCY,
            (
                lambda i=i: retrying(
                    lambda: client.get_workflow_handle(f"invoice-exception-{i}").signal(
                        "decide", signed[i]
                    ),
                    what=f"approve {i}",
                )
                for i in ids
            ),
        )
        progress(f"{cases} approvals sent; waiting for every case to pay")
        try:
            await wait_for_count(
                client, f"ExecutionStatus != 'Running' AND {in_run}", cases, timeout=timeout
            )
        except TimeoutError as error:
            result.problems.append(str(error))
        result.finish_seconds = time.monotonic() - finishing
        result.paid = await count(client, f"CaseStatus = 'paid' AND {in_run}")
        result.failed = await count(client, f"ExecutionStatus = 'Failed' AND {in_run}")
        progress(f"{result.paid} paid after {result.finish_seconds:.0f} s; checking the ledger")

        ledger = (await stack.http.get("/payments")).raise_for_status().json()
        per_invoice = Counter(row["invoice_id"] for row in ledger if row["invoice_id"] in ids)
        result.payments = sum(per_invoice.values())
        result.duplicates = sum(1 for n in per_invoice.values() if n > 1)
        result.unpaid = sum(1 for invoice_id in ids if not per_invoice[invoice_id])
        result.reversed = sum(
            1 for row in ledger if row["invoice_id"] in per_invoice and row["status"] == "reversed"
        )

        progress(f"reading {cases} histories for workflow task failures")

        async def failures(invoice_id: str) -> int:
            history = await client.get_workflow_handle(
                f"invoice-exception-{invoice_id}"
            ).fetch_history()
            return sum(
                1
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            )

        counts = await gather_limited(HISTORY_CONCURRENCY, (lambda i=i: failures(i) for i in ids))
        result.task_failures = sum(counts)
        result.histories_checked = len(counts)
    result.seconds = time.monotonic() - began
    if result.ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        result.problems.append(f"logs and databases kept in {work}")
    return result


def render_waiting(result: WaitingResult) -> str:
    rate = result.cases / result.start_seconds if result.start_seconds else 0
    rows = [
        ("started until all wait for approval", f"{result.start_seconds:.0f} s ({rate:.1f}/s)"),
        ("worker SIGKILLed, server restarted, new worker", f"{result.restart_seconds:.0f} s"),
        ("still waiting after the restarts", f"{result.waiting_after_restart:,}"),
        ("approved (decide signal) until all done", f"{result.finish_seconds:.0f} s"),
        ("paid", f"{result.paid:,}"),
        (
            "payments in the ledger",
            f"{result.payments:,} (duplicates {result.duplicates}, reversed {result.reversed}, "
            f"unpaid {result.unpaid})",
        ),
        ("lost / failed", f"{result.lost} / {result.failed}"),
        (
            "workflow task failures",
            f"{result.task_failures} (in {result.histories_checked:,} histories)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"waiting at scale: {result.cases:,} cases in {result.seconds:.0f} s"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    lines.append("")
    if result.ok:
        lines.append("every case waited through the restarts and paid exactly once when approved")
    else:
        lines.append("INVARIANTS FAILED:")
        lines += [f"  {problem}" for problem in result.problems or ["see the figures above"]]
    return "\n".join(lines)
