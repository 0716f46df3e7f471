"""Rows 1 and 2: casework against bare Temporal, on one server, with one in-process worker each.

Row 1 runs straight-through invoice cases (auto-approved by policy, offline stand-in model) and
bare workflows with the same number of no-op activities, in alternating rounds so that a warm-up
or a noisy moment hits both sides. Row 2 sends approval decisions one at a time, alternating a
casework case and a bare signal->activity workflow, and measures from just before the signal is
sent to the moment the payment (or the bare activity) happened, on the same wall clock.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BARE_TASK_QUEUE, BareApproval, BareCase, noop, record_time
from bench.infra import (
    NEEDS_APPROVAL,
    STRAIGHT_THROUGH,
    Sandbox,
    activity_types,
    gather_limited,
    median,
    percentile,
    progress,
    start_invoice_case,
    wait_for_count,
)
from casework.case.tasks import TaskDecision
from casework.testing.signing import signed
from workflows.invoice_exception import Outcome

ROUNDS = 2
START_CONCURRENCY = 32


@dataclass
class Overhead:
    cases: int
    activities_per_case: int
    activity_names: list[str]
    casework_seconds: float
    bare_seconds: float

    @property
    def casework_per_second(self) -> float:
        return self.cases / self.casework_seconds

    @property
    def bare_per_second(self) -> float:
        return self.cases / self.bare_seconds

    @property
    def ratio(self) -> float:
        return self.casework_per_second / self.bare_per_second


@dataclass
class Latency:
    samples: int
    casework_ms: list[float]
    bare_ms: list[float]

    def summary(self) -> dict[str, float]:
        return {
            "casework_p50_ms": median(self.casework_ms),
            "casework_p95_ms": percentile(self.casework_ms, 95),
            "bare_p50_ms": median(self.bare_ms),
            "bare_p95_ms": percentile(self.bare_ms, 95),
            "ratio_p50": median(self.casework_ms) / median(self.bare_ms),
            "ratio_p95": percentile(self.casework_ms, 95) / percentile(self.bare_ms, 95),
        }


def bare_worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=BARE_TASK_QUEUE,
        workflows=[BareCase, BareApproval],
        activities=[noop, record_time],
    )


async def _casework_batch(client: Client, sandbox: Sandbox, task_queue: str, n: int) -> float:
    """Seconds for ``n`` straight-through cases, from the first start to the last result.

    Seeding happens before the clock starts: it is the ERP's setup, not casework's work.
    """
    ids = [f"INV-ST-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    await sandbox.seed_invoices(ids, STRAIGHT_THROUGH)
    started = time.perf_counter()
    handles = await gather_limited(
        START_CONCURRENCY, (lambda i=i: start_invoice_case(client, i, task_queue) for i in ids)
    )
    results = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - started
    wrong = [r.case_id for r in results if r.outcome is not Outcome.AUTO_APPROVED]
    if wrong:
        raise RuntimeError(f"not straight-through: {wrong[:3]} ...")
    return elapsed


async def _bare_batch(client: Client, n: int, activities: int) -> float:
    started = time.perf_counter()
    handles = await gather_limited(
        START_CONCURRENCY,
        (
            lambda: client.start_workflow(
                BareCase.run,
                activities,
                id=f"bench-bare-{uuid.uuid4().hex}",
                task_queue=BARE_TASK_QUEUE,
            )
            for _ in range(n)
        ),
    )
    await asyncio.gather(*(h.result() for h in handles))
    return time.perf_counter() - started


async def measure_overhead(
    client: Client, sandbox: Sandbox, task_queue: str, cases: int
) -> Overhead:
    # One case first, untimed: it warms both workers and its history says how many activities
    # a straight-through case really runs.
    probe = f"INV-PROBE-{uuid.uuid4().hex[:8]}"
    await sandbox.seed_invoices([probe], STRAIGHT_THROUGH)
    handle = await start_invoice_case(client, probe, task_queue)
    await handle.result()
    names = await activity_types(client, handle.id)
    await _bare_batch(client, 1, len(names))
    progress(f"a straight-through case runs {len(names)} activities: {', '.join(names)}")

    per_round = max(1, cases // ROUNDS)
    casework_seconds = bare_seconds = 0.0
    for round_number in range(1, ROUNDS + 1):
        # Alternate which side goes first, so neither always runs on a warmer server.
        order = ["casework", "bare"] if round_number % 2 else ["bare", "casework"]
        for side in order:
            if side == "casework":
                seconds = await _casework_batch(client, sandbox, task_queue, per_round)
                casework_seconds += seconds
            else:
                seconds = await _bare_batch(client, per_round, len(names))
                bare_seconds += seconds
            progress(f"round {round_number}: {per_round} {side} cases in {seconds:.2f}s")
    return Overhead(
        cases=per_round * ROUNDS,
        activities_per_case=len(names),
        activity_names=names,
        casework_seconds=casework_seconds,
        bare_seconds=bare_seconds,
    )


async def measure_latency(
    client: Client, sandbox: Sandbox, task_queue: str, samples: int
) -> Latency:
    ids = [f"INV-AP-{uuid.uuid4().hex[:10]}" for _ in range(samples)]
    await sandbox.seed_invoices(ids, NEEDS_APPROVAL)
    handles = await gather_limited(
        START_CONCURRENCY, (lambda i=i: start_invoice_case(client, i, task_queue) for i in ids)
    )
    bare_handles = [
        await client.start_workflow(
            BareApproval.run,
            id=f"bench-bare-approval-{uuid.uuid4().hex}",
            task_queue=BARE_TASK_QUEUE,
        )
        for _ in range(samples)
    ]
    # Every case must be waiting for bob before any decision goes out.
    query = "CaseStatus = 'awaiting_approval' AND ApproverRole = 'ap_supervisor'"
    await wait_for_count(client, query, samples, timeout=120)
    progress(f"{samples} invoice cases waiting for approval; sending decisions one at a time")

    casework_ms: list[float] = []
    bare_ms: list[float] = []
    decision = TaskDecision(approver="bob", action="approve", comment="benchmark")
    for invoice_id, handle, bare in zip(ids, handles, bare_handles, strict=True):
        approval = signed(handle.id, decision)
        sent = time.time()
        await handle.signal("decide", approval)
        await handle.result()
        paid_at = await sandbox.payment_created_at(invoice_id)
        if paid_at is None:
            raise RuntimeError(f"{invoice_id} finished without a payment")
        casework_ms.append((paid_at - sent) * 1000)

        sent = time.time()
        await bare.signal(BareApproval.decide)
        ran_at = await bare.result()
        bare_ms.append((ran_at - sent) * 1000)
    return Latency(samples=samples, casework_ms=casework_ms, bare_ms=bare_ms)
