"""Record the stored histories a replay test replays: one recorder, driven by a registry.

Each process declares its scenarios in a module of their own, as a module-level
``Recordings``: the workflow, the business key a scenario's case runs under, the input that
starts it, and the scenarios (faked systems, what people do while the case runs, the result it
must reach). ``discover_histories(package)`` imports every module of a package (say
``tests.histories``) and collects them, so adding a process adds a module and edits none.

A scenario runs one case on the time-skipping test server with its systems faked by activity
name (``casework.testing.fakes``) and saves the case's full history beside the modules as
``<process>_<name>.json`` (the process as its case type, ``-`` spelt ``_``). A child workflow
the process declares (the agent region, ``<case ID>-agent``) is saved as
``<process>_<name>.agent.json``, as its history is its own.

When to (re)record: only when a change is *meant* to be incompatible with running cases, and
then together with ``workflow.patched()`` so cases already running keep replaying on the old
path; keep the old histories beside the new ones. A replay failure after any other change means
the change would break running cases: fix the code, never the histories.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import pkgutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.client import WorkflowHandle
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from casework.testing.fakes import Fakes, fake_worker
from casework.testing.signing import install_test_keys
from casework.testing.temporal import time_skipping_server

Drive = Callable[[WorkflowEnvironment, WorkflowHandle[Any, Any]], Awaitable[None]]
"""What people do while the case runs; returns once the case may run to its end."""


async def nothing(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """Nobody acts: the case runs on its own (time skips through any SLA)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    """Unique across processes: the recorder takes scenario names from the command line."""
    systems: Callable[[str, datetime], Fakes]
    """The faked systems for the case's business key, dated (if they need dates) from the
    server's clock: it runs ahead of the wall clock once time has been skipped."""
    drive: Drive
    expect: Mapping[str, object]
    """What the case's result must say, by field: ``{"outcome": Outcome.APPROVED}``."""


@dataclass(frozen=True)
class Recordings:
    """One process's scenarios, and how a case of it is started for one."""

    workflow: type[Any]
    """The process's workflow class (``case_type``, ``case_id``)."""
    key: Callable[[str], str]
    """The business key a scenario's case runs under, from the scenario's name."""
    start: Callable[[str, Any], BaseModel]
    """The workflow's input for the business key and the scenario's faked systems."""
    scenarios: tuple[Scenario, ...]
    children: Mapping[str, type[Any]] = field(default_factory=dict)
    """Child workflows whose histories are stored too, by their ID's suffix after the case's
    (``{"agent": AgentRegionWorkflow}``: ``<case ID>-agent``)."""

    @property
    def process(self) -> str:
        return str(self.workflow.case_type).replace("-", "_")

    def case_id(self, name: str) -> str:
        return str(self.workflow.case_id(self.key(name)))


class HistoriesError(RuntimeError):
    """The registry cannot be used as declared; the message says which module and why."""


@dataclass(frozen=True)
class Histories:
    """The stored histories of a directory and the scenarios that record them."""

    directory: Path
    recordings: tuple[Recordings, ...]

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def scenarios(self) -> Iterator[tuple[Recordings, Scenario]]:
        for recordings in self.recordings:
            for scenario in recordings.scenarios:
                yield recordings, scenario

    def paths(self, recordings: Recordings, scenario: Scenario) -> list[Path]:
        """The files a scenario is stored in: its case's history, then each child's."""
        stem = f"{recordings.process}_{scenario.name}"
        return [
            self.directory / f"{stem}.json",
            *(self.directory / f"{stem}.{child}.json" for child in recordings.children),
        ]

    def missing(self) -> list[str]:
        """The scenarios some of whose files are not stored."""
        return [
            scenario.name
            for recordings, scenario in self.scenarios()
            if not all(path.exists() for path in self.paths(recordings, scenario))
        ]

    def workflow_id_for(self, history: Path) -> str:
        """The workflow ID a stored history was recorded under, from its file name."""
        owners = [r for r in self.recordings if history.stem.startswith(f"{r.process}_")]
        if not owners:
            raise HistoriesError(f"{history.name} belongs to no process with recordings")
        recordings = max(owners, key=lambda r: len(r.process))
        name = history.stem.removeprefix(f"{recordings.process}_")
        for child in recordings.children:
            if name.endswith(f".{child}"):
                # The case names its child after itself.
                return f"{recordings.case_id(name.removesuffix(f'.{child}'))}-{child}"
        return recordings.case_id(name)

    async def record(
        self, env: WorkflowEnvironment, recordings: Recordings, scenario: Scenario
    ) -> list[Path]:
        key = recordings.key(scenario.name)
        systems = scenario.systems(key, await env.get_current_time())
        # Once each: a region's children are regions too.
        workflows = list(dict.fromkeys([recordings.workflow, *recordings.children.values()]))
        # Fixed names (each run has a fresh server) keep a re-recording's diff to what changed.
        async with fake_worker(
            env.client, systems, *workflows, task_queue=f"record-{scenario.name}"
        ) as task_queue:
            handle = await env.client.start_workflow(
                recordings.workflow.run,
                recordings.start(key, systems),
                id=recordings.workflow.case_id(key),
                task_queue=task_queue,
            )
            await scenario.drive(env, handle)
            result = await handle.result()
        if any(getattr(result, name) != value for name, value in scenario.expect.items()):
            raise HistoriesError(f"{scenario.name}: expected {dict(scenario.expect)}, got {result}")
        paths = self.paths(recordings, scenario)
        workflow_ids = [handle.id, *(f"{handle.id}-{child}" for child in recordings.children)]
        for workflow_id, path in zip(workflow_ids, paths, strict=True):
            history = await env.client.get_workflow_handle(workflow_id).fetch_history()
            path.write_text(history.to_json() + "\n")
        return paths

    async def record_all(self, names: Sequence[str] | None = None) -> None:
        """Record the scenarios named (all of them if None) on a fresh server."""
        server = time_skipping_server(
            # Not "<pid>@<host>": a re-recording then differs only where the workflow does.
            identity="casework-history-recorder",
            # A runtime of its own, released in main(): the process-wide default one, torn down
            # during interpreter shutdown, can abort the process (temporalio/sdk-python#300).
            # Core warns about every worker's server lacking a capability the test server never
            # has.
            runtime=Runtime(
                telemetry=TelemetryConfig(
                    logging=LoggingConfig(
                        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                    )
                )
            ),
        )
        with tempfile.TemporaryDirectory(prefix="casework-record-keys-") as keys:
            async with server as env:
                install_test_keys(Path(keys))
                for recordings, scenario in self.scenarios():
                    if names is None or scenario.name in names:
                        for path in await self.record(env, recordings, scenario):
                            print(f"recorded {path}")

    def main(self, argv: Sequence[str]) -> None:
        """``python -m <package>.record [NAME ...]``: record the named scenarios, or all."""
        # Scenarios fail activities on purpose; their tracebacks are not news.
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
        known = {scenario.name for _, scenario in self.scenarios()}
        names = list(argv) or None
        if unknown := set(names or ()) - known:
            sys.exit(f"unknown scenarios {sorted(unknown)}; known: {sorted(known)}")
        try:
            asyncio.run(self.record_all(names))
        finally:
            gc.collect()


@cache
def discover_histories(package: str) -> Histories:
    """The recordings every module of ``package`` declares, and the package's directory, where
    their histories are stored. A module that does not import stops discovery, named."""
    root = importlib.import_module(package)
    found: dict[int, Recordings] = {}
    for info in pkgutil.iter_modules(root.__path__, f"{package}."):
        try:
            module = importlib.import_module(info.name)
        except Exception as error:
            raise HistoriesError(
                f"{info.name} does not import: {type(error).__name__}: {error}"
            ) from error
        for value in vars(module).values():
            if isinstance(value, Recordings):
                found[id(value)] = value
    recordings = tuple(sorted(found.values(), key=lambda r: r.process))
    processes = [r.process for r in recordings]
    if twice := sorted({p for p in processes if processes.count(p) > 1}):
        raise HistoriesError(f"processes with more than one set of recordings: {twice}")
    return Histories(directory=Path(root.__path__[0]), recordings=recordings)
