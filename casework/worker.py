"""The casework worker: every process of the catalogue, and its systems' activities, on one task
queue.

Run it with ``casework worker`` or ``python -m workers``; scale out by running more. What it runs
is discovered (``casework.catalogue``): a module that does not import stops it at start, named.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from casework import telemetry
from casework.agents.mcp import McpActivities
from casework.catalogue import Catalogue, CatalogueError, discover
from casework.client import connect
from casework.config import SANDBOX_URL_ENV, Settings, SettingsError
from casework.determinism import workflow_problems
from casework.governance import activity as policy
from casework.governance.loader import load_policy, policy_dir
from casework.governance.models import DIRECTORY_ID, Directory
from casework.governance.registry import policy_problems
from casework.plugin import CaseworkPlugin
from casework.signing_keys import SigningKeyError, load_public_keys
from casework.systems.notifications import NotificationActivities

log = logging.getLogger("casework.worker")


def build_activities(
    catalogue: Catalogue, settings: Settings, http: httpx.AsyncClient
) -> list[Callable[..., Any]]:
    """The framework's activities (policies, models, notifications) and every catalogue
    system's, each system's class built once over the shared HTTP client."""
    # litellm takes seconds to import: a worker that refuses to start (a bad policy, a module
    # that does not import) says so before paying for it.
    from casework.agents.llm import LlmActivities

    systems = [NotificationActivities, *catalogue.systems]
    llm = LlmActivities(settings)
    # A policy names the sandbox's MCP endpoint as ${CASEWORK_SANDBOX_URL}/mcp: the sandbox this
    # worker is configured with, whether that came from the environment or not.
    mcp = McpActivities({**os.environ, SANDBOX_URL_ENV: settings.sandbox_url})
    return [
        policy.load,
        llm.propose,
        llm.chat,
        mcp.list_tools,
        mcp.call_tool,
        *(fn for system in systems for fn in system(http).activities()),
    ]


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, catalogue: Catalogue | None = None
) -> AsyncIterator[Worker]:
    """A worker polling ``settings.task_queue`` for as long as the context is open, running
    every process of ``catalogue`` (default: the one discovered)."""
    catalogue = catalogue or discover()
    async with httpx.AsyncClient(base_url=settings.sandbox_url, timeout=20.0) as http:
        # The payload converter and codec come with the client (``casework.client.connect``).
        plugin = CaseworkPlugin(
            passthrough=catalogue.passthrough_packages,
            workflows=catalogue.workflows,
            activities=build_activities(catalogue, settings, http),
            sandboxed=settings.sandboxed_workflows,
        )
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            plugins=[plugin],
            max_cached_workflows=settings.max_cached_workflows,
        )
        async with worker:
            yield worker


async def serve(settings: Settings) -> None:
    client = await connect(
        runtime=telemetry.runtime(settings.metrics_address),
        interceptors=telemetry.tracing_interceptors("casework-worker"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    model = settings.model or "offline stand-in (set CASEWORK_MODEL to use a real model)"
    sandbox = "strict" if settings.sandboxed_workflows else "off (CASEWORK_WORKFLOW_SANDBOX)"
    async with running_worker(client, settings):
        log.info(
            "worker polling task queue %r on %s; systems at %s; model: %s; workflow sandbox: %s",
            settings.task_queue,
            client.service_client.config.target_host,
            settings.sandbox_url,
            model,
            sandbox,
        )
        if settings.metrics_address:
            log.info("Prometheus metrics on http://%s/metrics", settings.metrics_address)
        if endpoint := telemetry.otlp_endpoint():
            log.info("OpenTelemetry traces to %s", endpoint)
        await stop.wait()
    telemetry.shutdown_tracing()
    log.info("worker stopped")


def load_catalogue() -> Catalogue:
    """The catalogue, or stop naming the module that keeps it from loading."""
    try:
        return discover()
    except CatalogueError as error:
        print(f"casework worker: not starting: {error}", file=sys.stderr)
        sys.exit(2)


def check_policies(catalogue: Catalogue) -> None:
    """Refuse to start on a broken policy, naming file and field, rather than fail each case
    that loads it."""
    directory = policy_dir()
    if problems := policy_problems(directory, catalogue.policy_models):
        print(f"casework worker: not starting: invalid policy in {directory}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(2)


def check_workflows(catalogue: Catalogue) -> None:
    """Refuse to run workflow code that reads the clock, does I/O or draws random numbers: the
    worker runs it outside the sandbox that would otherwise stop it (``casework.determinism``)."""
    if problems := workflow_problems(catalogue.workflows):
        print("casework worker: not starting: nondeterministic workflow code:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(2)


def check_decision_keys(settings: Settings) -> None:
    """Refuse to start without the users' public decision keys: every case would fail when it
    loads its directory. Users without a key are named, since their decisions will be refused."""
    try:
        keys = load_public_keys(settings.state_dir)
    except SigningKeyError as error:
        print(f"casework worker: not starting: {error}", file=sys.stderr)
        sys.exit(2)
    users = Directory.model_validate(load_policy(DIRECTORY_ID).content).users
    if unkeyed := sorted(set(users) - set(keys)):
        log.warning("no decision key for %s: their decisions will be refused", ", ".join(unkeyed))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    catalogue = load_catalogue()
    check_policies(catalogue)
    check_workflows(catalogue)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"casework worker: not starting: {error}", file=sys.stderr)
        sys.exit(2)
    check_decision_keys(settings)
    asyncio.run(serve(settings))
