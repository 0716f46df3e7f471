"""The ticket-triage part of ``casework demo``: one ticket per route the policy can take."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from temporalio.client import Client, WorkflowHandle

from casework.case import CaseState
from casework.cli.seeding import create_once, sandbox_request
from casework.config import Settings
from workflows.ticket_triage import Acknowledgement, TicketTriageInput, TicketTriageWorkflow

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
            id=TicketTriageWorkflow.case_id(ticket_id),
            task_queue=settings.task_queue,
        )
        for suffix, ticket_id in ticket_ids.items()
    }


def on_call(scenario: TriageScenario) -> Callable[[WorkflowHandle, CaseState], Awaitable[bool]]:
    """The scenario's on-call engineer acknowledges the page; review tasks are left waiting."""

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.open_task is not None:
            return False
        if state.waiting_on and "acknowledge" in state.waiting_on and scenario.acknowledge_as:
            message = await handle.execute_update(
                "acknowledge", Acknowledgement(responder=scenario.acknowledge_as), result_type=str
            )
            print(f"  {handle.id}: {message}")
        return True

    return respond
