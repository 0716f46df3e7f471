"""The bare-Temporal floors casework is compared against, run on the same server in the same run.

``BareCase`` runs as many do-nothing activities, one after another, as a straight-through
casework invoice case executes (the count is read from a real case's history at run time, not
assumed). ``BareApproval`` waits for one signal, then runs one activity that reports when it ran:
the least any approval can cost on Temporal.
"""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity, workflow

BARE_TASK_QUEUE = "bench-bare"
_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bench.noop")
async def noop(step: int) -> int:
    return step


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
