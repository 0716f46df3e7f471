"""The bare-Temporal floors casework is compared against, run on the same server in the same run.

``BareCase`` runs as many do-nothing activities, one after another, as a straight-through
casework invoice case executes (the count is read from a real case's history at run time, not
assumed). ``BareApproval`` waits for one signal, then runs one activity that reports when it ran:
the least any approval can cost on Temporal.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow

BARE_TASK_QUEUE = "bench-bare"
_TIMEOUT = timedelta(seconds=30)


WAITING_LOG_ENV = "BENCH_BARE_WAITING_LOG"


@activity.defn(name="bench.noop")
async def noop(step: int) -> int:
    return step


@activity.defn(name="bench.reached_wait")
async def reached_wait() -> None:
    """Row 3's bare side has no search attribute to count waiting workflows by: its last step
    before the wait appends the workflow's ID to a file the harness counts lines of."""
    with Path(os.environ[WAITING_LOG_ENV]).open("a") as log:
        log.write(f"{activity.info().workflow_id}\n")


@activity.defn(name="bench.record_time")
async def record_time() -> float:
    """When the activity ran, on the machine's wall clock (the sandbox stamps payments with it)."""
    return time.time()


@workflow.defn(name="BenchBareCase")
class BareCase:
    @workflow.run
    async def run(self, activities: int) -> int:
        # Sequential, like the casework case: each step waits for the previous one.
        for step in range(activities):
            await workflow.execute_activity(noop, step, start_to_close_timeout=_TIMEOUT)
        return activities


@workflow.defn(name="BenchBareApproval")
class BareApproval:
    def __init__(self) -> None:
        self._decided = False

    @workflow.run
    async def run(self) -> float:
        await workflow.wait_condition(lambda: self._decided)
        return await workflow.execute_activity(record_time, start_to_close_timeout=_TIMEOUT)

    @workflow.signal
    def decide(self) -> None:
        self._decided = True


@workflow.defn(name="BenchBareWaiting")
class BareWaiting:
    """Row 3's floor: as many activities as a case runs before it waits for its approver (no-ops,
    the last one saying it got there), then a wait for one signal, then one more activity."""

    def __init__(self) -> None:
        self._decided = False

    @workflow.run
    async def run(self, activities: int) -> int:
        for step in range(activities - 1):
            await workflow.execute_activity(noop, step, start_to_close_timeout=_TIMEOUT)
        await workflow.execute_activity(reached_wait, start_to_close_timeout=_TIMEOUT)
        await workflow.wait_condition(lambda: self._decided)
        return await workflow.execute_activity(noop, activities, start_to_close_timeout=_TIMEOUT)

    @workflow.signal
    def decide(self) -> None:
        self._decided = True
