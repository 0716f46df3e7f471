"""The ticket-triage part of ``casework demo``: one ticket per route the policy can take."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import WorkflowHandle

from casework.case import CaseState
from casework.cli.cases import drive_case
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    Responder,
    act_as_demo_user,
    create_once,
    sandbox_request,
)
from workflows.ticket_triage import Acknowledgement, TicketTriageInput

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
class Ticket:
    """What the requester wrote, and who acknowledges a severity-1 page once it arrives."""

    title: str
    description: str
    ci_id: str | None = None
    acknowledge_as: str | None = None


SCENARIOS = [
    DemoScenario(
        1,
        "password reset with a KB article",
        "resolved",
        Ticket(
            "Forgot my password, locked out",
            "I changed my password on Friday and now I am locked out of my account.",
        ),
    ),
    DemoScenario(
        2,
        "hardware fault",
        "assigned",
        Ticket(
            "Printer on floor 3 keeps jamming",
            "The printer by the kitchen jams on every second page since this morning.",
        ),
    ),
    DemoScenario(
        3,
        "severity 1: pages on-call, who acknowledges",
        "escalated",
        Ticket(
            "Payments database down",
            "The payments database is not responding; all users see checkout errors.",
            ci_id="CI-PAYDB",
            acknowledge_as="ivy",
        ),
    ),
    DemoScenario(
        4,
        "unclear ticket: a person reviews",
        "awaiting service_desk_lead",
        Ticket("Strange noise from the coffee machine", "It started humming loudly after lunch."),
    ),
]


async def reference(run: DemoRun) -> None:
    for item in CONFIGURATION_ITEMS:
        await create_once(run.sandbox, f"/itsm/cis/{item['ci_id']}", "/itsm/cis", item)
    for article in KB_ARTICLES:
        await create_once(run.sandbox, f"/itsm/kb/{article['article_id']}", "/itsm/kb", article)


async def seed(run: DemoRun, scenario: DemoScenario[Ticket]) -> TicketTriageInput:
    ticket_id = f"INC-{scenario.number(run.batch)}"
    await sandbox_request(
        run.sandbox,
        "POST",
        "/itsm/tickets",
        {
            "ticket_id": ticket_id,
            "title": scenario.facts.title,
            "description": scenario.facts.description,
            "requester": "erin",
            "ci_id": scenario.facts.ci_id,
        },
    )
    return TicketTriageInput(ticket_id=ticket_id, submitted_by="erin")


def on_call(run: DemoRun, scenario: DemoScenario[Ticket]) -> Responder:
    """The scenario's on-call engineer acknowledges the page; review tasks are left waiting."""

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.open_task is not None:
            return False
        responder = scenario.facts.acknowledge_as
        if state.waiting_on and "acknowledge" in state.waiting_on and responder:
            message = await act_as_demo_user(
                handle,
                run.settings,
                "acknowledge",
                Acknowledgement(responder=responder),
                responder,
                str,
            )
            print(f"  {handle.id}: {message}")
        return True

    return respond


async def play(run: DemoRun, scenario: DemoScenario[Ticket], handle: WorkflowHandle) -> None:
    await drive_case(handle, on_call(run, scenario))


DEMO = ProcessDemo(
    process="ticket-triage",
    order=20,
    scenarios=SCENARIOS,
    numbered=Numbered("/itsm/tickets", "ticket_id", "INC-"),
    seed=seed,
    reference=reference,
    play=play,
)
