"""Row 3: many cases waiting for approval, with the worker as a separate process.

The worker runs as ``python -m workers`` (as in production) so its resident memory can be
read from ``/proc``. Two batches of the same size: the first is started, measured and approved
in bulk with the worker that started it; the second is started, measured, then the worker is
stopped (SIGTERM, like a deploy) and a new one started before the bulk approval, so finishing
means replaying every case's history on a worker that has never seen it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from bench.bare import WAITING_LOG_ENV
from bench.infra import (
    NEEDS_APPROVAL,
    Sandbox,
    activity_types,
    count,
    db_size_bytes,
    gather_limited,
    progress,
    start_invoice_case,
    wait_for_count,
)
from casework.case.tasks import TaskDecision
from casework.testing.signing import signed

START_CONCURRENCY = 64
SIGNAL_CONCURRENCY = 64
# Before its measured batches each worker runs one case (bare workflow) to its end, then starts
# this many at once, as a batch's are, and leaves them waiting until the measured batches are done:
# what a worker loads on its first case, and the buffers, connections and allocator arenas it grows
# to serve that many at once, are paid once per worker, not per waiting case. Left waiting rather
# than finished, they free no memory that the measured cases could reuse without the RSS growing.
WARM_UP_CASES = START_CONCURRENCY
WORKER_READY_TIMEOUT = 60.0
READY_LINE = "worker polling task queue"  # logged by casework.worker.serve


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class WorkerProcess:
    def __init__(
        self,
        address: str,
        sandbox_url: str,
        task_queue: str,
        log: Path,
        extra_env: dict[str, str] | None = None,
        module: str = "workers",
    ) -> None:
        """``extra_env`` is laid over the rest (the reliability suite points the worker at a
        scripted model and a policy folder of its own); ``module`` is what runs
        (``bench.bare_worker`` for the bare side)."""
        env = os.environ | {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "default",
            "CASEWORK_SANDBOX_URL": sandbox_url,
            "CASEWORK_TASK_QUEUE": task_queue,
        }
        env.pop("CASEWORK_MODEL", None)  # the offline stand-in answers, as in rows 1 and 2
        env |= extra_env or {}
        self._log_path = log
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self) -> None:
        """Wait for the worker's "polling" log line, which it writes once it serves the queue."""
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while READY_LINE not in self._log_path.read_text(errors="replace"):
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not start polling; see {self._log_path}")
            await asyncio.sleep(0.1)

    @property
    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when a machine dies; in-flight work is simply lost."""
        self.process.kill()
        self.process.wait(timeout=60)
        self._log.close()


@dataclass
class Batch:
    cases: int
    start_requests_seconds: float
    """From the first start request until the server accepted the last one."""
    start_seconds: float
    """From the first start request until every case waits for its approver (visibility)."""
    db_growth_bytes: int
    """How much the server's database grew from before the batch until all of it waited."""
    db_bytes_waiting: int
    """The server's whole database then (it also holds every earlier case)."""
    worker_rss_before: int
    """The worker's RSS before the batch started (batch A: a fresh worker)."""
    worker_rss_waiting: int
    worker_rss_at_approval: int
    """When the approvals went out: the same worker, or the restarted one (idle, empty cache)."""
    finish_seconds: float
    """From the first decision sent until every case has completed (visibility)."""
    worker_rss_finished: int
    restarted: bool


@dataclass
class BareBatch:
    """The same number of bare workflows, each running as many activities as a case does before
    it waits, on a bare worker process with the same cache size."""

    cases: int
    activities: int
    start_seconds: float
    worker_rss_before: int
    worker_rss_waiting: int
    finish_seconds: float


@dataclass
class DefaultCacheBatch:
    """A batch on a worker that keeps only ``cache`` cases in memory (the SDK's default of
    1,000 in a full run): the rest are evicted and replayed from history at their next step."""

    cases: int
    cache: int
    start_seconds: float
    worker_rss_before: int
    worker_rss_waiting: int
    finish_seconds: float
    worker_rss_finished: int


@dataclass
class Waiting:
    before_restart: Batch
    after_restart: Batch
    bare: BareBatch
    default_cache: DefaultCacheBatch

    @property
    def casework_kib_per_case(self) -> float:
        a = self.before_restart
        return (a.worker_rss_waiting - a.worker_rss_before) / a.cases / 1024

    @property
    def bare_kib_per_case(self) -> float:
        b = self.bare
        return (b.worker_rss_waiting - b.worker_rss_before) / b.cases / 1024

    def as_dict(self) -> dict[str, object]:
        return {
            "before_restart": asdict(self.before_restart),
            "after_restart": asdict(self.after_restart),
            "bare": asdict(self.bare),
            "default_cache": asdict(self.default_cache),
            "casework_kib_per_waiting_case": round(self.casework_kib_per_case, 1),
            "bare_kib_per_waiting_case": round(self.bare_kib_per_case, 1),
        }


@dataclass
class _Started:
    ids: list[str]
    requests_seconds: float
    seconds: float
    db_growth: int


def _in_batch(tag: str) -> str:
    return f"WorkflowId STARTS_WITH 'invoice-exception-INV-W{tag}-'"


async def _start_batch(
    client: Client, sandbox: Sandbox, task_queue: str, n: int, tag: str, db_file: Path
) -> _Started:
    ids = [f"INV-W{tag}-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    progress(f"seeding {n} invoices that need approval")
    await sandbox.seed_invoices(ids, NEEDS_APPROVAL)
    db_before = db_size_bytes(db_file)
    progress(f"starting {n} cases")
    started = time.perf_counter()
    await gather_limited(
        START_CONCURRENCY, (lambda i=i: start_invoice_case(client, i, task_queue) for i in ids)
    )
    requests_seconds = time.perf_counter() - started
    query = f"CaseStatus = 'awaiting_approval' AND {_in_batch(tag)}"
    await wait_for_count(client, query, n, timeout=3600)
    seconds = time.perf_counter() - started
    progress(f"{n} cases waiting for approval after {seconds:.1f}s")
    return _Started(ids, requests_seconds, seconds, db_size_bytes(db_file) - db_before)


async def _approve_all(client: Client, ids: list[str], tag: str) -> float:
    decision = TaskDecision(approver="bob", action="approve", comment="bulk approval")
    approvals = {i: signed(f"invoice-exception-{i}", decision) for i in ids}
    started = time.perf_counter()
    await gather_limited(
        SIGNAL_CONCURRENCY,
        (
            lambda i=i: client.get_workflow_handle(f"invoice-exception-{i}").signal(
                "decide", approvals[i]
            )
            for i in ids
        ),
    )
    query = f"ExecutionStatus = 'Completed' AND {_in_batch(tag)}"
    await wait_for_count(client, query, len(ids), timeout=3600)
    seconds = time.perf_counter() - started
    paid = await count(client, f"CaseStatus = 'paid' AND {_in_batch(tag)}")
    if paid != len(ids):
        raise RuntimeError(f"only {paid}/{len(ids)} bulk-approved cases ended paid")
    progress(f"{len(ids)} cases approved and paid in {seconds:.1f}s")
    return seconds


async def _wait_for_lines(path: Path, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (found := _lines(path)) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {found}/{expected} bare workflows waiting after {timeout}s")
        await asyncio.sleep(0.25)


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


async def _bare_batch(
    client: Client,
    address: str,
    sandbox_url: str,
    cases: int,
    activities: int,
    cache: dict[str, str],
    log_dir: Path,
) -> BareBatch:
    waiting_log = log_dir / "bare-waiting.log"
    task_queue = f"bench-bare-waiting-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(
        address,
        sandbox_url,
        task_queue,
        log_dir / "bare-worker.log",
        extra_env=cache | {WAITING_LOG_ENV: str(waiting_log)},
        module="bench.bare_worker",
    )
    try:
        await worker.ready()
        warm_prefix = f"bench-bare-warm-{uuid.uuid4().hex[:6]}-"

        def start(workflow_id: str) -> Awaitable[WorkflowHandle[Any, Any]]:
            return client.start_workflow(
                "BenchBareWaiting", activities, id=workflow_id, task_queue=task_queue
            )

        first = await start(f"{warm_prefix}first")
        await _wait_for_lines(waiting_log, 1, timeout=600)
        await first.signal("decide")
        await first.result()
        warm = await gather_limited(
            START_CONCURRENCY,
            (lambda n=n: start(f"{warm_prefix}{n}") for n in range(WARM_UP_CASES)),
        )
        await _wait_for_lines(waiting_log, 1 + WARM_UP_CASES, timeout=600)
        rss_before = worker.rss
        prefix = f"bench-bare-waiting-{uuid.uuid4().hex[:6]}-"
        ids = [f"{prefix}{n}" for n in range(cases)]
        progress(f"starting {cases} bare workflows ({activities} activities, then a wait)")
        started = time.perf_counter()
        await gather_limited(START_CONCURRENCY, (lambda i=i: start(i) for i in ids))
        await _wait_for_lines(waiting_log, 1 + WARM_UP_CASES + cases, timeout=3600)
        start_seconds = time.perf_counter() - started
        rss_waiting = worker.rss
        progress(f"{cases} bare workflows waiting after {start_seconds:.1f}s")
        started = time.perf_counter()
        await gather_limited(
            SIGNAL_CONCURRENCY,
            (lambda i=i: client.get_workflow_handle(i).signal("decide") for i in ids),
        )
        query = f"ExecutionStatus = 'Completed' AND WorkflowId STARTS_WITH '{prefix}'"
        await wait_for_count(client, query, cases, timeout=3600)
        finish_seconds = time.perf_counter() - started
        await gather_limited(SIGNAL_CONCURRENCY, (lambda h=h: h.signal("decide") for h in warm))
        await gather_limited(SIGNAL_CONCURRENCY, (lambda h=h: h.result() for h in warm))
    finally:
        worker.stop()
    return BareBatch(
        cases=cases,
        activities=activities,
        start_seconds=start_seconds,
        worker_rss_before=rss_before,
        worker_rss_waiting=rss_waiting,
        finish_seconds=finish_seconds,
    )


async def default_cache_batch(
    client: Client,
    sandbox: Sandbox,
    address: str,
    sandbox_url: str,
    cases: int,
    cache: int,
    db_file: Path,
    log_dir: Path,
) -> DefaultCacheBatch:
    task_queue = f"bench-waiting-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(
        address,
        sandbox_url,
        task_queue,
        log_dir / "worker-default-cache.log",
        extra_env={"CASEWORK_MAX_CACHED_WORKFLOWS": str(cache)},
    )
    try:
        await worker.ready()
        rss_before = worker.rss
        started = await _start_batch(client, sandbox, task_queue, cases, "C", db_file)
        rss_waiting = worker.rss
        finish_seconds = await _approve_all(client, started.ids, "C")
        rss_finished = worker.rss
    finally:
        worker.stop()
    return DefaultCacheBatch(
        cases=cases,
        cache=cache,
        start_seconds=started.seconds,
        worker_rss_before=rss_before,
        worker_rss_waiting=rss_waiting,
        finish_seconds=finish_seconds,
        worker_rss_finished=rss_finished,
    )


async def measure_waiting(
    client: Client,
    sandbox: Sandbox,
    address: str,
    sandbox_url: str,
    cases: int,
    db_file: Path,
    log_dir: Path,
    default_cache: int,
) -> Waiting:
    """Batches A and B (casework, every case cached; B across a worker restart), the bare batch
    of the same size, then batch C on a worker caching only ``default_cache`` cases."""
    task_queue = f"bench-waiting-{uuid.uuid4().hex[:6]}"
    # Room for every case of a batch: with the default 1,000, a batch of 10,000 started at once
    # would evict cases between their steps and replay each from history at its next one. The
    # memory this costs is what the RSS figures show.
    cache = {"CASEWORK_MAX_CACHED_WORKFLOWS": str(cases + 1000)}
    worker = WorkerProcess(
        address, sandbox_url, task_queue, log_dir / "worker-1.log", extra_env=cache
    )
    await worker.ready()
    first = await _start_batch(client, sandbox, task_queue, 1, "F", db_file)
    await _approve_all(client, first.ids, "F")
    warm = await _start_batch(client, sandbox, task_queue, WARM_UP_CASES, "W", db_file)
    batches: list[Batch] = []
    activities = 0
    try:
        for tag, restart in (("A", False), ("B", True)):
            rss_before = worker.rss
            started = await _start_batch(client, sandbox, task_queue, cases, tag, db_file)
            rss_waiting, db_waiting = worker.rss, db_size_bytes(db_file)
            if not activities:
                waiting_case = f"invoice-exception-{started.ids[0]}"
                activities = len(await activity_types(client, waiting_case))
            if restart:
                progress("restarting the worker (SIGTERM, then a new process)")
                worker.stop()
                worker = WorkerProcess(
                    address, sandbox_url, task_queue, log_dir / "worker-2.log", extra_env=cache
                )
                await worker.ready()
            rss_at_approval = worker.rss
            finish_seconds = await _approve_all(client, started.ids, tag)
            batches.append(
                Batch(
                    cases=cases,
                    start_requests_seconds=started.requests_seconds,
                    start_seconds=started.seconds,
                    db_growth_bytes=started.db_growth,
                    db_bytes_waiting=db_waiting,
                    worker_rss_before=rss_before,
                    worker_rss_waiting=rss_waiting,
                    worker_rss_at_approval=rss_at_approval,
                    finish_seconds=finish_seconds,
                    worker_rss_finished=worker.rss,
                    restarted=restart,
                )
            )
        await _approve_all(client, warm.ids, "W")
    finally:
        if worker.process.poll() is None:
            worker.stop()
    bare = await _bare_batch(client, address, sandbox_url, cases, activities, cache, log_dir)
    progress(f"batch C: a worker caching {default_cache} cases")
    default = await default_cache_batch(
        client, sandbox, address, sandbox_url, cases, default_cache, db_file, log_dir
    )
    return Waiting(
        before_restart=batches[0], after_restart=batches[1], bare=bare, default_cache=default
    )
