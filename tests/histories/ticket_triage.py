"""Ticket-triage scenarios: the service desk, the outbox and the model faked by activity name
(``tests.triage_support.FakeItsm``). Each saves two histories, as the agent region is a child
workflow with a history of its own: ``ticket_triage_<name>.json`` for the case and
``ticket_triage_<name>.agent.json`` for its region."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.agents.ticket_triage import stand_in_turn
from activities.itsm import ConfigurationItem, KbArticle, Ticket
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.region import AgentRegionWorkflow, RegionOutcome
from casework.agents.tools import FINAL_ANSWER
from casework.audit import AuditEvent, AuditKind
from casework.testing.cases import audit, events_of, open_task
from casework.testing.recorder import Recordings, Scenario, nothing
from casework.testing.signing import decide, signed_act
from casework.testing.temporal import eventually
from tests.triage_support import FakeItsm, keep_reading_the_ticket
from workflows.ticket_triage import (
    Acknowledgement,
    TicketTriageInput,
    TicketTriageResult,
    TicketTriageWorkflow,
    TriageStatus,
)

TriageHandle = WorkflowHandle[TicketTriageWorkflow, TicketTriageResult]

PASSWORD_ARTICLE = KbArticle(
    article_id="KB-101",
    title="Reset a forgotten password and unlock your account",
    body="Open the self-service portal, choose 'Forgot password', then sign in again.",
    category="access",
    tags=["password", "locked", "account"],
)
PAYMENTS_DB = ConfigurationItem(
    ci_id="CI-PAYDB",
    name="payments database",
    kind="database",
    owner_team="database-ops",
    oncall="ivy",
    criticality="critical",
)


def _ticket(ticket_id: str, title: str, description: str, **fields: object) -> dict[str, Ticket]:
    ticket = Ticket(
        ticket_id=ticket_id,
        title=title,
        description=description,
        requester="erin",
        status="new",
        **fields,
    )
    return {ticket_id: ticket}


def _password_reset(ticket_id: str, now: datetime) -> FakeItsm:
    # The offline stand-in finds the article and proposes resolving with it.
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Forgot my password, locked out",
            "I changed my password on Friday and now I am locked out of my account.",
        ),
        articles={PASSWORD_ARTICLE.article_id: PASSWORD_ARTICLE},
        turn=stand_in_turn,
    )


def _endless_lookups(ticket_id: str, now: datetime) -> FakeItsm:
    # A model that never answers: the region ends at its model-call budget.
    return FakeItsm(
        tickets=_ticket(ticket_id, "Strange noise from the coffee machine", "It hums loudly."),
        turn=keep_reading_the_ticket,
    )


def _outage(ticket_id: str, now: datetime) -> FakeItsm:
    # The stand-in escalates an outage of a critical item as severity 1: its on-call is paged.
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Payments database down",
            "The payments database is not responding; all users see checkout errors.",
            ci_id=PAYMENTS_DB.ci_id,
        ),
        items={PAYMENTS_DB.ci_id: PAYMENTS_DB},
        turn=stand_in_turn,
    )


def _database_outage_called_a_password_problem(messages: list[ChatMessage]) -> ChatMessage:
    """A model that calls the outage of a critical item a password problem and cites the
    password article, confidently: the ticket's own category and severity say otherwise."""
    answer = {
        "category": "access",
        "severity": 1,
        "action": "auto_resolve",
        "kb_article_id": PASSWORD_ARTICLE.article_id,
        "reasons": ["the users cannot sign in"],
        "confidence": 0.95,
    }
    return ChatMessage(
        role="assistant",
        tool_calls=[ToolCall(id="call-1", name=FINAL_ANSWER, arguments=json.dumps(answer))],
    )


def _categorised_outage(ticket_id: str, now: datetime) -> FakeItsm:
    return FakeItsm(
        tickets=_ticket(
            ticket_id,
            "Payments database down for all users",
            "The payments database is not responding; all users see checkout errors.",
            ci_id=PAYMENTS_DB.ci_id,
            category="database",
            severity=1,
        ),
        items={PAYMENTS_DB.ci_id: PAYMENTS_DB},
        articles={PASSWORD_ARTICLE.article_id: PASSWORD_ARTICLE},
        turn=_database_outage_called_a_password_problem,
    )


async def _reject_review(env: WorkflowEnvironment, handle: TriageHandle) -> None:
    task = await open_task(handle, "a review task")
    if task.role != "service_desk_lead":
        raise RuntimeError(f"expected a review by service_desk_lead, not {task.role}")
    await decide(handle, approver="frank", action="reject", comment="not for the agent")


async def _page_escalates_then_acknowledge(env: WorkflowEnvironment, handle: TriageHandle) -> None:
    async def paged(count: int) -> list[AuditEvent] | None:
        events = events_of(await audit(handle), AuditKind.PAGE_SENT)
        return events if len(events) >= count else None

    async def sla_timer_started() -> bool | None:
        history = await handle.fetch_history()
        return any(e.HasField("timer_started_event_attributes") for e in history.events) or None

    await eventually(lambda: paged(1), what="the on-call to be paged")
    await eventually(sla_timer_started, what="the acknowledgement SLA's timer")
    # Past the 15-minute acknowledgement SLA: the service desk lead is paged next.
    await env.sleep(timedelta(minutes=16))
    second = (await eventually(lambda: paged(2), what="the page to escalate"))[1]
    if second.data["paged"] != ["frank"]:
        raise RuntimeError(f"expected frank to be paged second, not {second.data['paged']}")
    ack = signed_act(handle.id, "acknowledge", Acknowledgement(responder="frank"), "frank")
    await handle.execute_update("acknowledge", ack)


RECORDINGS = Recordings(
    workflow=TicketTriageWorkflow,
    key=lambda name: f"INC-REPLAY-{name}",
    start=lambda ticket_id, itsm: TicketTriageInput(ticket_id=ticket_id, submitted_by="erin"),
    children={"agent": AgentRegionWorkflow},
    scenarios=(
        Scenario(
            "auto_resolved",
            _password_reset,
            nothing,
            {"status": TriageStatus.RESOLVED, "agent_outcome": RegionOutcome.ANSWERED},
        ),
        Scenario(
            "budget_exhausted_reviewed",
            _endless_lookups,
            _reject_review,
            {"status": TriageStatus.ASSIGNED, "agent_outcome": RegionOutcome.BUDGET_EXHAUSTED},
        ),
        Scenario(
            "severity_1_paged",
            _outage,
            _page_escalates_then_acknowledge,
            {"status": TriageStatus.ESCALATED, "agent_outcome": RegionOutcome.ANSWERED},
        ),
        # Patch triage-starts-incident-review: the concluded severity-1 triage starts the
        # incident's review (an abandoned child; its own histories are incident_review_*).
        Scenario(
            "severity_1_review_started",
            _outage,
            _page_escalates_then_acknowledge,
            {
                "status": TriageStatus.ESCALATED,
                "incident_review": "incident-review-INC-REPLAY-severity_1_review_started",
            },
        ),
        # The agent's word contradicts the ticket: checked (patch agent-proposals-checked),
        # reviewed.
        Scenario(
            "proposal_contradicted_reviewed",
            _categorised_outage,
            _reject_review,
            {"status": TriageStatus.ASSIGNED, "agent_outcome": RegionOutcome.ANSWERED},
        ),
    ),
)
