"""``python -m bench.bare_worker``: the bare-Temporal worker process of row 3.

The same SDK, the same default workflow sandbox and the same cache size as casework's worker
process, running only the bare workflows, so their resident memory can be read side by side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareApproval, BareCase, BareWaiting, noop, reached_wait, record_time

log = logging.getLogger("bench.bare_worker")


async def serve() -> None:
    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task_queue = os.environ["CASEWORK_TASK_QUEUE"]
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareCase, BareApproval, BareWaiting],
        activities=[noop, reached_wait, record_time],
        max_cached_workflows=int(os.environ.get("CASEWORK_MAX_CACHED_WORKFLOWS", "1000")),
    ):
        # The line row 3 waits for, as it does for casework's worker.
        log.info("worker polling task queue %r", task_queue)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve())
