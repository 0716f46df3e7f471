"""The demo kit: what a process's part in ``casework demo`` declares, and the helpers it seeds
the systems sandbox with over its HTTP API.

A process's demo module declares ``DEMO = ProcessDemo(...)``: its scenarios (one
:class:`DemoScenario` per outcome worth seeing), how to seed a scenario's records and what case
input they make, and optionally the reference records every batch shares and how people play
their parts. ``casework demo`` (``casework.cli.demo``) finds the modules at run time
(``casework.cli.extensions``), numbers a fresh batch, seeds, starts one case per scenario through
the catalogue and drives them side by side.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle

from casework.case import CaseState
from casework.case.tasks import TaskDecision
from casework.cli.cases import CommandError, drive_case
from casework.config import Settings
from casework.decisions import act_on, decide_on
from casework.signing_keys import load_signing_key, signing_keys_dir

FactsT = TypeVar("FactsT")

Responder = Callable[[WorkflowHandle, CaseState], Awaitable[bool]]
"""Plays people's part when a case waits (``casework.cli.cases.drive_case``): acts and returns
True to go on, or returns False to leave the case waiting."""

# Every attempt a workflow's retry policy for a system write allows: Temporal retries with
# backoff, then gives up, and the saga undoes what was done before.
WRITE_ATTEMPTS = 4


@dataclass(frozen=True)
class DemoScenario(Generic[FactsT]):
    """One case of the demo: one outcome of a process worth seeing."""

    suffix: int
    """Numbers the scenario's business objects within a batch: ``batch * 1000 + suffix``."""
    story: str
    """What happens, for the demo's table."""
    expected: str
    """The outcome the demo expects: a case status, or ``awaiting <role>`` for a task left
    open."""
    facts: FactsT
    """What the process seeds the scenario's records from (a dataclass of its own)."""
    decisions: Mapping[str, TaskDecision] = field(default_factory=dict)
    """What the demo's people decide once a task for their role opens, by role; a task of any
    other role is left waiting."""

    def number(self, batch: int) -> int:
        return batch * 1000 + self.suffix


@dataclass(frozen=True)
class DemoRun:
    """One ``casework demo`` run, as a process's demo sees it."""

    client: Client
    settings: Settings
    sandbox: httpx.AsyncClient
    batch: int
    """This run's batch: its business objects are numbered ``batch * 1000 + suffix``."""


@dataclass(frozen=True)
class Numbered:
    """A sandbox collection whose records carry the batch number in their ID (``INV-2003``), so
    the next run can start a fresh batch."""

    path: str
    id_field: str
    prefix: str


async def play_decisions(run: DemoRun, scenario: DemoScenario[Any], handle: WorkflowHandle) -> None:
    """The default part people play: decide as the scenario says, leave the rest waiting."""
    await drive_case(handle, decide_tasks(run, scenario))


@dataclass(frozen=True)
class ProcessDemo(Generic[FactsT]):
    """A process's part in ``casework demo``, declared as ``DEMO`` in a demo module."""

    process: str
    """The process its cases are of, by the catalogue's name (``invoice-exception``)."""
    order: int
    """Where its cases stand in the demo's table: lower first."""
    scenarios: Sequence[DemoScenario[FactsT]]
    numbered: Numbered
    seed: Callable[[DemoRun, DemoScenario[FactsT]], Awaitable[BaseModel]]
    """Create the scenario's records in the sandbox; the input its case starts with."""
    reference: Callable[[DemoRun], Awaitable[None]] | None = None
    """Create the records every batch shares, unless an earlier run did (``create_once``)."""
    play: Callable[[DemoRun, DemoScenario[FactsT], WorkflowHandle], Awaitable[None]] = (
        play_decisions
    )
    """Play people's (and outside systems') parts in the scenario's case until it ends or
    waits as the scenario says."""


def decide_tasks(run: DemoRun, scenario: DemoScenario[Any]) -> Responder:
    """Decides each open task whose role the scenario names, once, in the order they opened;
    anything else is left waiting."""
    pending = dict(scenario.decisions)

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        ours = [task for task in state.open_tasks if task.role in pending]
        for task in ours:
            decision = pending.pop(task.role).model_copy(update={"task_id": task.task_id})
            await decide_as_demo_user(handle, run.settings, decision)
        return bool(ours)

    return respond


async def sandbox_request(
    sandbox: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    response = await sandbox.request(method, path, json=body)
    if response.is_error:
        raise CommandError(
            f"sandbox {method} {path} failed: {response.status_code} {response.text}"
        )
    return response.json()


async def create_once(
    sandbox: httpx.AsyncClient, path: str, collection: str, body: dict[str, Any]
) -> None:
    """Create a reference record unless an earlier demo run already did."""
    if (await sandbox.get(path)).status_code == 404:
        await sandbox_request(sandbox, "POST", collection, body)


async def fail_writes(sandbox: httpx.AsyncClient, path: str) -> None:
    """Make the system refuse every attempt of the case's write to ``path`` (503), so the case
    must undo what it did before."""
    await sandbox_request(
        sandbox,
        "POST",
        "/_faults",
        {"method": "POST", "path": path, "count": WRITE_ATTEMPTS, "status": 503},
    )


async def decide_as_demo_user(
    handle: WorkflowHandle, settings: Settings, decision: TaskDecision
) -> None:
    """Send a demo person's decision, signed with their generated key, and say so."""
    key = load_signing_key(decision.approver, signing_keys_dir(settings.state_dir))
    receipt = await decide_on(handle, decision, key)
    print(f"  {handle.id}: {receipt.message}")


async def act_as_demo_user(
    handle: WorkflowHandle,
    settings: Settings,
    act_name: str,
    act: BaseModel,
    signer: str,
    result_type: type[Any],
) -> Any:
    """Send a demo person's answer, acknowledgement or other act, signed with their generated
    key like their decisions; returns what the case's update returned."""
    key = load_signing_key(signer, signing_keys_dir(settings.state_dir))
    return await act_on(handle, act_name, act, key, result_type)


def installed_command(name: str) -> str:
    """How to type ``name`` so a pasted command works: bare when on PATH, else its venv path."""
    installed = Path(sys.prefix) / "bin" / name
    on_path = shutil.which(name)
    if on_path and Path(on_path).resolve() == installed.resolve():
        return name
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)
