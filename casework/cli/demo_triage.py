"""The ticket-triage part of ``casework demo``: one ticket per route the policy can take."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from casework.cli.cases import CommandError
from casework.cli.seeding import create_once, sandbox_request
from casework.config import Settings
from casework.workflows.case import CaseState
from casework.workflows.ticket_triage import Acknowledgement, TicketTriageInput, case_id_for

DEADLINE_SECONDS = 180

CONFIGURATION_ITEMS = [
    {
        "ci_id": "CI-PAYDB",
        "name": "payments database",
        "kind": "database",
        "owner_team": "database-ops",
        "oncall": "ivy",
        "criticality": "critical",
    },
]
KB_ARTICLES = [
    {
        "article_id": "KB-101",
        "title": "Reset a forgotten password and unlock your account",
        "body": "Open the self-service portal, choose 'Forgot password', confirm with MFA, then "
        "sign in again. Accounts unlock automatically after the reset.",
        "category": "access",
        "tags": ["password", "locked", "account"],
    },
    {
        "article_id": "KB-214",
        "title": "Failover of the payments database",
        "body": "Only the database on-call may fail over the payments database.",
        "category": "database",
        "tags": ["database", "failover"],
    },
]


@dataclass(frozen=True)
class TriageScenario:
    suffix: int
    story: str
    title: str
    description: str
    expected: str
    ci_id: str | None = None
    acknowledge_as: str | None = None
    """Who acknowledges the severity-1 page once it arrives."""


SCENARIOS = [
    TriageScenario(
        1,
        "password reset with a KB article",
        "Forgot my password, locked out",
        "I changed my password on Friday and now I am locked out of my account.",
        expected="resolved",
    ),
    TriageScenario(
        2,
        "hardware fault",
        "Printer on floor 3 keeps jamming",
        "The printer by the kitchen jams on every second page since this morning.",
        expected="assigned",
    ),
    TriageScenario(
        3,
        "severity 1: pages on-call, who acknowledges",
        "Payments database down",
        "The payments database is not responding; all users see checkout errors.",
        expected="escalated",
        ci_id="CI-PAYDB",
        acknowledge_as="ivy",
    ),
    TriageScenario(
        4,
        "unclear ticket: a person reviews",
        "Strange noise from the coffee machine",
        "It started humming loudly after lunch.",
        expected="awaiting service_desk_lead",
    ),
]


async def seed(sandbox: httpx.AsyncClient, batch: int) -> dict[int, str]:
    for item in CONFIGURATION_ITEMS:
        await create_once(sandbox, f"/itsm/cis/{item['ci_id']}", "/itsm/cis", item)
    for article in KB_ARTICLES:
        await create_once(sandbox, f"/itsm/kb/{article['article_id']}", "/itsm/kb", article)
    ticket_ids = {}
    for scenario in SCENARIOS:
        ticket_id = f"INC-{batch * 1000 + scenario.suffix}"
        await sandbox_request(
            sandbox,
            "POST",
            "/itsm/tickets",
            {
                "ticket_id": ticket_id,
                "title": scenario.title,
                "description": scenario.description,
                "requester": "erin",
                "ci_id": scenario.ci_id,
            },
        )
        ticket_ids[scenario.suffix] = ticket_id
    return ticket_ids


async def start(
    client: Client, settings: Settings, ticket_ids: dict[int, str]
) -> dict[int, WorkflowHandle]:
    return {
        suffix: await client.start_workflow(
            "TicketTriage",
            TicketTriageInput(ticket_id=ticket_id, submitted_by="erin"),
            id=case_id_for(ticket_id),
            task_queue=settings.task_queue,
        )
        for suffix, ticket_id in ticket_ids.items()
    }


async def drive(scenario: TriageScenario, handle: WorkflowHandle) -> None:
    """Acknowledge the page when it comes; stop when the case ends or waits for a person."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    last = ""
    while time.monotonic() < deadline:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            print(f"  {handle.id}: finished")
            return
        state = await handle.query("state", result_type=CaseState)
        if state.status != last:
            print(f"  {handle.id}: {state.status}")
            last = state.status
        if state.open_task is not None:
            return
        if state.waiting_on and "acknowledge" in state.waiting_on and scenario.acknowledge_as:
            message = await handle.execute_update(
                "acknowledge", Acknowledgement(responder=scenario.acknowledge_as), result_type=str
            )
            print(f"  {handle.id}: {message}")
        await asyncio.sleep(0.3)
    raise CommandError(
        f"{handle.id} did not progress within {DEADLINE_SECONDS}s; "
        f"is the worker running? see: casework status, casework show {handle.id}"
    )
