"""``casework demo``: seed the sandbox and run one case per outcome on the running stack.

Each process's demo is a module of the demo packages declaring ``DEMO`` (a
:class:`~casework.cli.seeding.ProcessDemo`), found at run time (``casework.cli.extensions``).
The demo seeds every process's scenarios, starts their cases through the catalogue and drives
them side by side, playing people's parts; it leaves some cases waiting for a person and prints
the commands to decide them.

Each run uses a fresh batch of business objects (INV-1001.., INV-2001.., ...) so it can be run
again on the same stack without colliding with earlier cases' business keys.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle

from casework.case import CaseState
from casework.case.tasks import HumanTask
from casework.catalogue import discover
from casework.cli.cases import CommandError, command, directory_users, link
from casework.cli.extensions import declared, demo_modules
from casework.cli.output import table
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    ProcessDemo,
    installed_command,
    sandbox_request,
)
from casework.config import Settings
from casework.discovery import CatalogueError

DemoCase = tuple[ProcessDemo[Any], DemoScenario[Any], WorkflowHandle]


def process_demos() -> list[ProcessDemo[Any]]:
    """The demos the demo packages' modules declare (``DEMO``), in their table order."""
    demos = [demo for module in demo_modules() for demo in declared(module, "DEMO", ProcessDemo)]
    if not demos:
        raise CatalogueError("no module of the demo packages declares a DEMO")
    return sorted(demos, key=lambda demo: demo.order)


async def run_demo(client: Client, settings: Settings) -> int:
    demos = process_demos()
    async with httpx.AsyncClient(base_url=settings.sandbox_url, timeout=10.0) as sandbox:
        await _check_sandbox(sandbox, settings)
        run = DemoRun(client, settings, sandbox, await next_batch(sandbox, demos))
        print(f"seeding the sandbox at {settings.sandbox_url} with demo batch {run.batch} ...")
        seeded = await seed_scenarios(run, demos)
        print("starting one case per scenario ...")
        cases = await start_cases(run, seeded)
        await asyncio.gather(
            *(demo.play(run, scenario, handle) for demo, scenario, handle in cases)
        )
    return await _report(client, settings, cases)


Seeded = tuple[ProcessDemo[Any], DemoScenario[Any], BaseModel]


async def seed_scenarios(run: DemoRun, demos: list[ProcessDemo[Any]]) -> list[Seeded]:
    """The records every batch shares, unless an earlier run created them; then each
    scenario's records, with the input its case starts with."""
    for demo in demos:
        if demo.reference is not None:
            await demo.reference(run)
    return [
        (demo, scenario, await demo.seed(run, scenario))
        for demo in demos
        for scenario in demo.scenarios
    ]


async def start_cases(run: DemoRun, seeded: list[Seeded]) -> list[DemoCase]:
    """One case per seeded scenario, started as the catalogue's process it is of."""
    catalogue = discover()
    cases = []
    for demo, scenario, request in seeded:
        process = catalogue.process(demo.process)
        handle = await run.client.start_workflow(
            process.workflow_type,
            request,
            id=process.case_id(request),
            task_queue=run.settings.task_queue,
        )
        cases.append((demo, scenario, handle))
    return cases


async def _report(client: Client, settings: Settings, cases: list[DemoCase]) -> int:
    """Print the cases' table and how to decide the ones left waiting; 0 if every case ended
    (or waits) as its scenario expects."""
    rows = []
    waiting: list[tuple[WorkflowHandle, HumanTask]] = []
    agent_model = ""
    for _, scenario, handle in cases:
        state = await handle.query("state", result_type=CaseState)
        agent_model = agent_model or str(state.facts.get("agent_model", ""))
        if state.open_tasks:
            waiting.extend((handle, task) for task in state.open_tasks)
            outcome = " + ".join(f"awaiting {task.role}" for task in state.open_tasks)
        else:
            outcome = state.status
        rows.append(
            [
                handle.id,
                scenario.story,
                outcome,
                _shorten(str(state.facts.get("message", "")), 60),
                link(settings, client, handle.id),
            ]
        )
    print()
    print(table(["case", "scenario", "outcome", "detail", "Web UI"], rows))
    print()
    if agent_model:
        print(f"agent model: {agent_model}")
    casework, temporal = installed_command("casework"), installed_command("temporal")
    for handle, task in waiting:
        approver = demo_approver(task.role)
        print(f"{handle.id} is waiting for {task.role}. Approve it with:")
        print(f"  {command(casework, 'approve', handle.id, '--as', approver, '--comment', 'ok')}")
        print("or with the Temporal CLI (cases accept only decisions signed by the approver):")
        sign = command(casework, "sign", handle.id, "--as", approver, "--action", "approve")
        signal = command(temporal, "workflow", "signal", "--workflow-id", handle.id)
        print(f'  {signal} --name decide --input "$({sign})"')
    if waiting:
        print(
            f"or decide in the review queue at {settings.review_url}, signed in as "
            + " / ".join(sorted({demo_approver(task.role) for _, task in waiting}))
            + f" (passwords in {settings.state_dir / 'ui' / 'demo-credentials.txt'})"
        )
    print(f"KPIs: {casework} report, or {settings.review_url}/report")
    print(f"\nthe stack keeps running: {casework} inbox | show CASE | audit CASE;")
    print("stop it with: make down")
    outcomes = [row[2] for row in rows]
    return 0 if outcomes == [scenario.expected for _, scenario, _ in cases] else 1


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def demo_approver(role: str) -> str:
    return next(iter(directory_users([role])), "<user>")


async def _check_sandbox(sandbox: httpx.AsyncClient, settings: Settings) -> None:
    try:
        (await sandbox.get("/health")).raise_for_status()
    except httpx.HTTPError as error:
        raise CommandError(
            f"the systems sandbox at {settings.sandbox_url} is not answering ({error!r}); "
            "start the stack with: casework up"
        ) from error


async def next_batch(sandbox: httpx.AsyncClient, demos: list[ProcessDemo[Any]]) -> int:
    """The batch after the highest any demo's numbered records in the sandbox carry."""
    highest = 0
    for demo in demos:
        numbered = demo.numbered
        for record in await sandbox_request(sandbox, "GET", numbered.path):
            record_id = str(record[numbered.id_field])
            number = record_id[len(numbered.prefix) :]
            if record_id.startswith(numbered.prefix) and number.isdigit():
                highest = max(highest, int(number))
    return highest // 1000 + 1
