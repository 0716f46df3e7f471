"""Helpers for the agent-region and ticket-triage tests.

The scripted model (``casework.testing.scripted_llm.ScriptedModel``) is keyed by ticket, and by
turn: a request's turn is the number of assistant messages already in its conversation, so a
retried model call gets the same reply as the first attempt, and one test's leftover script can
never be served to another test's case.

``FakeItsm`` fakes the service desk, the notifications outbox and the model by activity name
(``casework.testing.fakes``), for recording replay histories on the time-skipping server; the
tests themselves run the real activities against the real sandbox.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.itsm import (
    ConfigurationItem,
    ConfigurationItemLookup,
    KbArticle,
    KbArticleLookup,
    KbHit,
    KnowledgeSearch,
    SimilarTicketSearch,
    Ticket,
    TicketAssignment,
    TicketClassification,
    TicketCommentRequest,
    TicketLookup,
    TicketResolution,
)
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.region import AgentRegionResult, AgentRegionWorkflow
from casework.audit import AuditEvent
from casework.config import Settings
from casework.sandbox.server import running_sandbox
from casework.systems.notifications import Notification
from casework.testing.cases import audit, state
from casework.testing.fakes import FakeChat, FakeOutbox, fake, not_found
from casework.testing.scripted_llm import (
    ScriptedLlmServer,
    ScriptedModel,
    ScriptedReply,
    case_data,
    scripted_llm_server,
)
from casework.testing.temporal import eventually, scripted_settings
from casework.worker import running_worker
from workflows.ticket_triage import TicketTriageInput, TicketTriageResult, TicketTriageWorkflow

TriageHandle = WorkflowHandle[TicketTriageWorkflow, TicketTriageResult]
RegionHandle = WorkflowHandle[AgentRegionWorkflow, AgentRegionResult]

# -- what the model says ------------------------------------------------------------------------

_call_ids = itertools.count(1)


def tool_call(name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """One tool call as an OpenAI-compatible API returns it; ``arguments`` as a str is sent
    verbatim (to script malformed JSON)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": f"call_{next(_call_ids)}",
        "type": "function",
        "function": {"name": name, "arguments": text},
    }


def calls(*tool_calls: dict[str, Any]) -> ScriptedReply:
    """A model turn asking for these tool calls."""
    return ScriptedReply(tool_calls=list(tool_calls))


def proposal(**fields: Any) -> dict[str, Any]:
    """A ``TriageProposal``; the defaults assign a network ticket confidently."""
    return {
        "category": "network",
        "severity": 3,
        "action": "assign",
        "team": "network-ops",
        "reasons": ["scripted for a test"],
        "confidence": 0.9,
    } | fields


def final(**fields: Any) -> ScriptedReply:
    """A model turn submitting ``proposal(**fields)`` with the final_answer tool."""
    return calls(tool_call("final_answer", proposal(**fields)))


def tool_messages(request: dict[str, Any]) -> list[str]:
    """The tool results a request carries to the model, oldest first."""
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def offered_tools(request: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools", [])]


class ScriptedTriageModel(ScriptedModel):
    """Scripts the model behind the triage agent, one ticket at a time, turn by turn."""

    def __init__(self, server: ScriptedLlmServer) -> None:
        super().__init__(server, "ticket", "ticket_id")


# -- the service desk, over the sandbox's HTTP API ----------------------------------------------


def new_ticket_id(label: str) -> str:
    return f"INC-T-{label}-{uuid.uuid4().hex[:8]}"


class Itsm:
    """The sandbox's service desk and notifications outbox, as an operator sees them."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._http.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def _get(self, path: str, **params: str) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def create_ci(self, ci_id: str, **fields: Any) -> dict[str, Any]:
        body = {
            "ci_id": ci_id,
            "name": f"service {ci_id}",
            "kind": "service",
            "owner_team": "network-ops",
            "oncall": "henry",
            "criticality": "medium",
        }
        return await self._post("/itsm/cis", body | fields)

    async def create_article(self, article_id: str, **fields: Any) -> dict[str, Any]:
        body = {
            "article_id": article_id,
            "title": "Reset a forgotten password",
            "body": "Use the self-service portal to reset the password, then sign in again.",
            "category": "access",
            "tags": ["password"],
        }
        return await self._post("/itsm/kb", body | fields)

    async def create_ticket(self, ticket_id: str, **fields: Any) -> dict[str, Any]:
        body = {
            "ticket_id": ticket_id,
            "title": "VPN drops every few minutes",
            "description": "Since this morning my VPN connection drops every few minutes.",
            "requester": "erin",
        }
        return await self._post("/itsm/tickets", body | fields)

    async def resolve_by_hand(self, ticket_id: str, resolution: str) -> dict[str, Any]:
        """What a person on the desk does in the service desk itself, past any case."""
        response = await self._http.post(
            f"/itsm/tickets/{ticket_id}/resolve",
            json={"resolution": resolution},
            headers={"Idempotency-Key": f"{ticket_id}:by-hand"},
        )
        assert response.status_code == 200, response.text
        resolved: dict[str, Any] = response.json()
        return resolved

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket: dict[str, Any] = await self._get(f"/itsm/tickets/{ticket_id}")
        return ticket

    async def tickets(self) -> list[dict[str, Any]]:
        tickets: list[dict[str, Any]] = await self._get("/itsm/tickets")
        return tickets

    async def notifications(self, *, to: str, case_id: str) -> list[Notification]:
        rows = await self._get("/notifications", to=to, case_id=case_id)
        return [Notification.model_validate(row) for row in rows]


def history_actions(ticket: dict[str, Any]) -> list[str]:
    return [entry["action"] for entry in ticket["history"]]


@asynccontextmanager
async def itsm_client(sandbox_url: str) -> AsyncIterator[Itsm]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        yield Itsm(http)


# -- the stack: a Temporal server, the sandbox, the scripted model and the real worker ----------


@dataclass
class Stack:
    client: Client
    settings: Settings
    """The worker's settings: its task queue, the sandbox and the scripted model."""
    model: ScriptedTriageModel
    itsm: Itsm

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    def worker_settings(self, **changes: Any) -> Settings:
        """Settings for another worker on this stack (a queue of its own unless told)."""
        return self.settings.model_copy(
            update={"task_queue": f"casework-triage-{uuid.uuid4().hex}"} | changes
        )

    async def start(self, ticket_id: str, *, task_queue: str | None = None) -> TriageHandle:
        return await self.client.start_workflow(
            TicketTriageWorkflow.run,
            TicketTriageInput(ticket_id=ticket_id, submitted_by="erin"),
            id=TicketTriageWorkflow.case_id(ticket_id),
            task_queue=task_queue or self.task_queue,
        )


@contextmanager
def _systems(tmp: Path) -> Iterator[tuple[str, ScriptedTriageModel]]:
    with running_sandbox(tmp / "sandbox.db") as url, scripted_llm_server() as server:
        yield url, ScriptedTriageModel(server)


@asynccontextmanager
async def running_stack(client: Client, tmp: Path) -> AsyncIterator[Stack]:
    """The sandbox, the scripted model and the real worker (real activities, ``llm.chat``
    through litellm) on a queue of their own, against ``client``'s server."""
    async with AsyncExitStack() as stack:
        url, model = stack.enter_context(_systems(tmp))
        settings = scripted_settings(f"casework-triage-{uuid.uuid4().hex}", url, model.server)
        itsm = await stack.enter_async_context(itsm_client(url))
        await stack.enter_async_context(running_worker(client, settings))
        yield Stack(client=client, settings=settings, model=model, itsm=itsm)


# -- looking at cases ---------------------------------------------------------------------------


async def region_of(client: Client, handle: WorkflowHandle) -> RegionHandle:
    """The case's agent region (a child workflow), found the way the CLI finds it."""

    async def started() -> str | None:
        region_id = (await state(handle)).facts.get("agent_region")
        return str(region_id) if region_id else None

    region_id = await eventually(started, what=f"{handle.id} to name its agent region")
    region = client.get_workflow_handle_for(AgentRegionWorkflow.run, region_id)

    async def exists() -> bool | None:
        # The case names the region just before it starts the child workflow.
        try:
            await region.describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return True

    await eventually(exists, what=f"{handle.id} to start its agent region")
    return region


async def audited(
    handle: WorkflowHandle,
    what: str,
    test: Callable[[list[AuditEvent]], bool],
    timeout: float = 15.0,
) -> list[AuditEvent]:
    """Wait until the case's audit trail satisfies ``test``; returns the trail."""

    async def probe() -> list[AuditEvent] | None:
        events = await audit(handle)
        return events if test(events) else None

    return await eventually(probe, what=what, timeout=timeout)


async def scheduled_activities(handle: WorkflowHandle) -> list[str]:
    """The activity types a workflow scheduled, in order (one entry per activity, however
    many attempts it took)."""
    history = await handle.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def timers_started(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED)


async def activity_attempts(handle: WorkflowHandle, activity_type: str) -> list[int]:
    """For each activity of this type, the attempt that was last started."""
    history = await handle.fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


# -- faked systems for recording histories ------------------------------------------------------


def keep_reading_the_ticket(messages: list[ChatMessage]) -> ChatMessage:
    """A model that never stops looking: it reads the ticket again on every turn."""
    ticket_id = (case_data({"messages": [m.model_dump() for m in messages]}) or {})["ticket"][
        "ticket_id"
    ]
    turn = sum(1 for m in messages if m.role == "assistant") + 1
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(
                id=f"call-{turn}", name="get_ticket", arguments=json.dumps({"ticket_id": ticket_id})
            )
        ],
    )


@dataclass
class FakeItsm(FakeOutbox, FakeChat):
    """The service desk, the outbox and the model, in memory, under the real activity names."""

    tickets: dict[str, Ticket]
    items: dict[str, ConfigurationItem] = field(default_factory=dict)
    articles: dict[str, KbArticle] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)

    @fake("itsm.get_ticket")
    async def get_ticket(self, lookup: TicketLookup) -> Ticket:
        if lookup.ticket_id not in self.tickets:
            raise not_found(f"ticket {lookup.ticket_id}")
        return self.tickets[lookup.ticket_id]

    @fake("itsm.get_configuration_item")
    async def get_configuration_item(self, lookup: ConfigurationItemLookup) -> ConfigurationItem:
        if lookup.ci_id not in self.items:
            raise not_found(f"configuration item {lookup.ci_id}")
        return self.items[lookup.ci_id]

    @fake("itsm.search_knowledge_base")
    async def search_knowledge_base(self, search: KnowledgeSearch) -> list[KbHit]:
        words = set(search.query.casefold().split())
        return [
            KbHit(
                article_id=a.article_id,
                title=a.title,
                category=a.category,
                snippet=a.body[:200],
                score=1.0,
            )
            for a in self.articles.values()
            if words & set(f"{a.title} {' '.join(a.tags)}".casefold().split())
        ][: search.limit]

    @fake("itsm.get_kb_article")
    async def get_kb_article(self, lookup: KbArticleLookup) -> KbArticle:
        if lookup.article_id not in self.articles:
            raise not_found(f"knowledge base article {lookup.article_id}")
        return self.articles[lookup.article_id]

    @fake("itsm.find_similar_tickets")
    async def find_similar_tickets(self, search: SimilarTicketSearch) -> list[dict[str, Any]]:
        return []

    @fake("itsm.classify_ticket")
    async def classify_ticket(self, change: TicketClassification) -> Ticket:
        return self._write(
            change.ticket_id, "classified", category=change.category, severity=change.severity
        )

    @fake("itsm.assign_ticket")
    async def assign_ticket(self, change: TicketAssignment) -> Ticket:
        return self._write(change.ticket_id, "assigned", status="assigned", team=change.team)

    @fake("itsm.resolve_ticket")
    async def resolve_ticket(self, change: TicketResolution) -> Ticket:
        return self._write(
            change.ticket_id,
            "resolved",
            status="resolved",
            resolution=change.resolution,
            kb_article_id=change.kb_article_id,
        )

    @fake("itsm.comment_on_ticket")
    async def comment_on_ticket(self, comment: TicketCommentRequest) -> Ticket:
        return self._write(comment.ticket_id, "commented")

    def _write(self, ticket_id: str, action: str, **changes: Any) -> Ticket:
        self.writes.append((ticket_id, action))
        ticket = self.tickets[ticket_id].model_copy(update=changes)
        self.tickets[ticket_id] = ticket
        return ticket
