"""Creating demo records in the systems sandbox over its HTTP API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from casework.case.tasks import TaskDecision
from casework.cli.cases import CommandError
from casework.config import Settings
from casework.decisions import decide_on
from casework.signing_keys import load_signing_key, signing_keys_dir


@dataclass(frozen=True)
class DemoCase:
    handle: WorkflowHandle
    story: str
    expected: str
    """The outcome the demo expects: a case status, or ``awaiting <role>``."""


ProcessDemo = Callable[[Client, Settings, httpx.AsyncClient, int], Awaitable[list[DemoCase]]]
"""A process's demo: seed its records for batch N, start its cases, play people's parts until
each case ends or waits as its story says, and return them."""


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


async def decide_as_demo_user(
    handle: WorkflowHandle, settings: Settings, decision: TaskDecision
) -> None:
    """Send a demo person's decision, signed with their generated key, and say so."""
    key = load_signing_key(decision.approver, signing_keys_dir(settings.state_dir))
    receipt = await decide_on(handle, decision, key)
    print(f"  {handle.id}: {receipt.message}")
