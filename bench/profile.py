"""``python -m bench.profile [--cases N]``: where a waiting case's memory and history go.

Not a row of the benchmark: the measurements behind ``bench/README.md``'s findings, made side by
side on one fresh dev server and sandbox (process), each worker a process of its own so its
RSS can be read:

1. worker memory per waiting case: a bare sandboxed workflow (as many activities as a case runs
   before it waits), a casework invoice case on a worker with the workflow sandbox
   (``CASEWORK_WORKFLOW_SANDBOX=strict``), and the same on a worker without it (the default);
2. what one waiting case holds, attribute by attribute (deep ``sys.getsizeof``, shared objects
   counted once per attribute), read from an in-process worker;
3. history events, workflow tasks and history bytes of a waiting case against a bare one;
4. with ``--heap``, where a waiting case's resident memory is: each side's worker in a process
   of its own (in-process, workflow code unsandboxed on both sides), its RSS growth per case
   split into the C heap in use (glibc's ``mallinfo2``: the SDK core's Rust allocations, and
   Python's blocks over 512 bytes) and the rest (Python's small-object arenas, mostly).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import types
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.bare import WAITING_LOG_ENV, BareWaiting, noop, reached_wait
from bench.infra import (
    NEEDS_APPROVAL,
    Sandbox,
    activity_types,
    bench_stack,
    gather_limited,
    progress,
    start_invoice_case,
    wait_for_count,
)
from bench.waiting import (
    START_CONCURRENCY,
    WorkerProcess,
    _start_batch,
    _wait_for_lines,
    rss_bytes,
)
from casework.config import Settings
from casework.worker import running_worker

SETTLE_SECONDS = 2.0
"""RSS is read this long after the last case waits, once the worker has finished its tasks."""


async def _casework_kib(
    client: Client, sandbox: Sandbox, address: str, url: str, work: Path, n: int, mode: str
) -> tuple[float, str]:
    queue = f"profile-{mode}-{uuid.uuid4().hex[:6]}"
    env = {"CASEWORK_MAX_CACHED_WORKFLOWS": str(n + 1000), "CASEWORK_WORKFLOW_SANDBOX": mode}
    worker = WorkerProcess(address, url, queue, work / f"worker-{mode}.log", extra_env=env)
    try:
        await worker.ready()
        await asyncio.sleep(SETTLE_SECONDS)
        before = worker.rss
        tag = uuid.uuid4().hex[:6]
        ids = [f"INV-PR{tag}-{i}" for i in range(n)]
        await sandbox.seed_invoices(ids, NEEDS_APPROVAL)
        await gather_limited(
            START_CONCURRENCY, (lambda i=i: start_invoice_case(client, i, queue) for i in ids)
        )
        batch = f"WorkflowId STARTS_WITH 'invoice-exception-INV-PR{tag}-'"
        query = f"CaseStatus = 'awaiting_approval' AND {batch}"
        await wait_for_count(client, query, n, timeout=1800)
        await asyncio.sleep(SETTLE_SECONDS)
        return (worker.rss - before) / n / 1024, f"invoice-exception-{ids[0]}"
    finally:
        worker.stop()


async def _bare_kib(
    client: Client, address: str, url: str, work: Path, n: int, activities: int
) -> tuple[float, str]:
    queue = f"profile-bare-{uuid.uuid4().hex[:6]}"
    log = work / "bare-waiting.log"
    env = {"CASEWORK_MAX_CACHED_WORKFLOWS": str(n + 1000), WAITING_LOG_ENV: str(log)}
    worker = WorkerProcess(
        address, url, queue, work / "worker-bare.log", extra_env=env, module="bench.bare_worker"
    )
    try:
        await worker.ready()
        await asyncio.sleep(SETTLE_SECONDS)
        before = worker.rss
        ids = [f"profile-bare-{uuid.uuid4().hex[:6]}-{i}" for i in range(n)]
        await gather_limited(
            START_CONCURRENCY,
            (
                lambda i=i: client.start_workflow(
                    "BenchBareWaiting", activities, id=i, task_queue=queue
                )
                for i in ids
            ),
        )
        await _wait_for_lines(log, n, timeout=1800)
        await asyncio.sleep(SETTLE_SECONDS)
        return (worker.rss - before) / n / 1024, ids[0]
    finally:
        worker.stop()


def _deep_size(value: Any, seen: set[int]) -> int:
    if id(value) in seen or isinstance(
        value, type | types.ModuleType | types.FunctionType | types.BuiltinFunctionType
    ):
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        size += sum(_deep_size(item, seen) for item in value)
    if hasattr(value, "__dict__"):
        size += _deep_size(vars(value), seen)
    return size


async def _what_a_case_holds(client: Client, sandbox: Sandbox, url: str) -> dict[str, float]:
    """KiB per attribute of one waiting invoice case, on an unsandboxed in-process worker."""
    queue = f"profile-held-{uuid.uuid4().hex[:6]}"
    settings = Settings(task_queue=queue, sandbox_url=url, sandboxed_workflows=False)
    async with running_worker(client, settings):
        invoice = f"INV-HELD-{uuid.uuid4().hex[:8]}"
        await sandbox.seed_invoices([invoice], NEEDS_APPROVAL)
        await start_invoice_case(client, invoice, queue)
        query = f"CaseStatus = 'awaiting_approval' AND WorkflowId = 'invoice-exception-{invoice}'"
        await wait_for_count(client, query, 1, timeout=120)
        gc.collect()
        (case,) = [o for o in gc.get_objects() if type(o).__name__ == "InvoiceExceptionWorkflow"]
        return {name: _deep_size(value, set()) / 1024 for name, value in vars(case).items()}


async def _history(client: Client, workflow_id: str) -> tuple[int, int, int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    tasks = sum(
        1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    return len(history.events), tasks, len(history.to_json())


async def run(n: int) -> int:
    """Sections 1 to 3; returns how many activities a case runs before it waits."""
    async with bench_stack(Path(tempfile.gettempdir())) as stack:
        client, sandbox, url, work = stack.client, stack.sandbox, stack.sandbox_url, stack.work
        progress(f"{n} cases on a worker without the workflow sandbox")
        off, case_id = await _casework_kib(client, sandbox, stack.address, url, work, n, "off")
        activities = len(await activity_types(client, case_id))
        progress(f"{n} bare workflows ({activities} activities, then a wait)")
        bare, bare_id = await _bare_kib(client, stack.address, url, work, n, activities)
        progress(f"{n} cases on a worker with the workflow sandbox")
        strict, _ = await _casework_kib(client, sandbox, stack.address, url, work, n, "strict")
        held = await _what_a_case_holds(client, sandbox, url)
        case_history = await _history(client, case_id)
        bare_history = await _history(client, bare_id)
    print(f"\nworker memory per waiting case (n={n} each, RSS delta / n)")
    print(f"  bare, sandboxed ({activities} activities, then a wait)  {bare:6.0f} KiB")
    print(f"  casework, workflow sandbox on (strict)             {strict:6.0f} KiB")
    print(f"  casework, workflow sandbox off (the default)       {off:6.0f} KiB")
    print("\nwhat one waiting invoice case holds (deep size, KiB)")
    for name, kib in sorted(held.items(), key=lambda item: -item[1]):
        if kib >= 0.5:
            print(f"  {name:24s} {kib:6.1f}")
    print("\nhistory of a waiting case: events / workflow tasks / JSON bytes")
    print(f"  casework  {case_history[0]:4d} / {case_history[1]:3d} / {case_history[2]:7d}")
    print(f"  bare      {bare_history[0]:4d} / {bare_history[1]:3d} / {bare_history[2]:7d}")
    return activities


class _MallInfo2(ctypes.Structure):
    # glibc's struct mallinfo2, in its order: ten size_t fields.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _rss_and_c_heap() -> tuple[int, int]:
    """This process's RSS and the bytes its C heap has in use (glibc's ``mallinfo2``)."""
    gc.collect()
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return rss_bytes(os.getpid()), info.uordblks + info.hblkhd


async def _heap_of(side: str, n: int, activities: int) -> dict[str, float]:
    """One side's in-process worker: RSS and C-heap growth per waiting case over ``n`` cases,
    after ``START_CONCURRENCY`` cases left waiting (what serving that many at once costs); a
    bare workflow runs ``activities`` activities before it waits."""
    async with bench_stack(Path(tempfile.gettempdir())) as stack:
        queue = f"heap-{side}-{uuid.uuid4().hex[:6]}"
        if side == "casework":
            settings = Settings(
                task_queue=queue,
                sandbox_url=stack.sandbox_url,
                sandboxed_workflows=False,
                max_cached_workflows=n + 1000,
            )
            worker = running_worker(stack.client, settings)

            async def batch(size: int) -> None:
                tag = uuid.uuid4().hex[:6]
                await _start_batch(stack.client, stack.sandbox, queue, size, tag, stack.db_file)

        else:
            log = stack.work / "bare-waiting.log"
            os.environ[WAITING_LOG_ENV] = str(log)
            worker = Worker(
                stack.client,
                task_queue=queue,
                workflows=[BareWaiting],
                activities=[noop, reached_wait],
                workflow_runner=UnsandboxedWorkflowRunner(),
                max_cached_workflows=n + 1000,
            )
            started = 0

            async def batch(size: int) -> None:
                nonlocal started
                ids = [f"heap-bare-{uuid.uuid4().hex[:6]}-{i}" for i in range(size)]
                await gather_limited(
                    START_CONCURRENCY,
                    (
                        lambda i=i: stack.client.start_workflow(
                            "BenchBareWaiting", activities, id=i, task_queue=queue
                        )
                        for i in ids
                    ),
                )
                started += size
                await _wait_for_lines(log, started, timeout=1800)

        async with worker:
            await batch(START_CONCURRENCY)
            await asyncio.sleep(SETTLE_SECONDS)
            rss, c_heap = _rss_and_c_heap()
            await batch(n)
            await asyncio.sleep(SETTLE_SECONDS)
            rss_after, c_heap_after = _rss_and_c_heap()
    return {"rss": (rss_after - rss) / n / 1024, "c_heap": (c_heap_after - c_heap) / n / 1024}


def _heap_split(n: int, activities: int) -> None:
    print(f"\nwhere a waiting case's memory is (n={n} each, in-process worker, per case, KiB)")
    print(f"  {'':10s} {'RSS':>6s} {'C heap in use':>14s} {'rest':>6s}")
    for side in ("bare", "casework"):
        progress(f"{n} {side} waiting on an in-process worker (a process of its own)")
        command = ["--heap-of", side, "--cases", str(n), "--activities", str(activities)]
        out = subprocess.run(
            [sys.executable, "-m", "bench.profile", *command],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        rest = figures["rss"] - figures["c_heap"]
        print(f"  {side:10s} {figures['rss']:6.0f} {figures['c_heap']:14.0f} {rest:6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--cases", type=int, default=300, help="waiting cases per worker")
    parser.add_argument(
        "--heap", action="store_true", help="also split each side's RSS per case (section 4)"
    )
    # How --heap runs each side in a process of its own.
    parser.add_argument("--heap-of", choices=("casework", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--activities", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.heap_of:
        print(json.dumps(asyncio.run(_heap_of(args.heap_of, args.cases, args.activities))))
        return
    activities = asyncio.run(run(args.cases))
    if args.heap:
        _heap_split(args.cases, activities)


if __name__ == "__main__":
    main()
