"""Agents for the specialist tests: a coordinator and three specialists, declared as a process
declares its agents (``AgentSpec``), with offline stand-ins that delegate for real.

The scripted model tells the agents apart by the tag their system prompt starts with
(``[coordinator]``, ``[coverage]`` ...) and the cases by ``case.case_id`` in the case data, so
each test scripts each agent of each case turn by turn.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle

from casework.agents.messages import DATA_BLOCK, ChatMessage, ToolCall
from casework.agents.region import (
    AgentRegionInput,
    AgentRegionWorkflow,
    SpecialistSpec,
    region_input,
)
from casework.agents.spec import AgentSpec
from casework.agents.tools import FINAL_ANSWER
from casework.governance.loader import load_policy
from casework.governance.models import AgentBudget, Directory, RegionAgentSettings
from casework.sandbox.server import running_sandbox
from casework.testing.scripted_llm import (
    ScriptedModel,
    ScriptedReply,
    case_value,
    scripted_llm_server,
)
from casework.testing.temporal import scripted_settings
from casework.worker import running_worker
from tests.triage_support import Itsm, itsm_client

COORDINATOR = "test_coordinator"
SPECIALISTS = ("coverage_check", "damage_check", "fraud_check")
_TAG = re.compile(r"^\[(\w+)\]")


class Finding(BaseModel):
    finding: str = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)


class Reconciled(BaseModel):
    summary: str = Field(min_length=1)
    parts: list[str]
    confidence: float = Field(ge=0, le=1)


def _data(content: str | None) -> Any:
    match = DATA_BLOCK.search(content or "")
    return json.loads(match.group(2)) if match else None


def _call(number: int, name: str, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(id=f"standin-{number}-{name}", name=name, arguments=json.dumps(arguments))


def coordinator_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Offline: ask every specialist at once, then reconcile what came back."""
    turns = sum(1 for m in messages if m.role == "assistant")
    if turns == 0:
        return ChatMessage(
            role="assistant",
            tool_calls=[
                _call(1, name, {"task": f"Give your {name} finding on this case."})
                for name in SPECIALISTS
            ],
        )
    parts = [_data(m.content) for m in messages if m.role == "tool"]
    reconciled = Reconciled(
        summary="offline stand-in: reconciled "
        + ", ".join(f"{p['specialist']} {p['outcome']}" for p in parts),
        parts=[str((p.get("answer") or {}).get("finding", p.get("reason"))) for p in parts],
        confidence=0.5,
    )
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(id="standin-final", name=FINAL_ANSWER, arguments=reconciled.model_dump_json())
        ],
    )


def specialist_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Offline: look the case's ticket up, then report what the lookup said."""
    context = _data(messages[1].content) or {}
    ticket_id = context.get("case", {}).get("ticket_id", "")
    results = [m for m in messages if m.role == "tool"]
    if not results:
        return ChatMessage(
            role="assistant", tool_calls=[_call(1, "get_ticket", {"ticket_id": ticket_id})]
        )
    ticket = _data(results[0].content)
    title = ticket.get("title") if isinstance(ticket, dict) else ticket
    finding = Finding(finding=f"offline stand-in read ticket: {title}", confidence=0.5)
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(id="standin-final", name=FINAL_ANSWER, arguments=finding.model_dump_json())
        ],
    )


COORDINATOR_SPEC = AgentSpec(
    name=COORDINATOR,
    output="test_reconciled",
    model=Reconciled,
    system_prompt="[coordinator] You coordinate specialists and reconcile their findings.",
    task="Reconcile the specialists' findings on this case.",
    stand_in=lambda context: Reconciled(summary="offline", parts=[], confidence=0.5),
    stand_in_turn=coordinator_turn,
)
SPECIALIST_SPECS = [
    AgentSpec(
        name=name,
        output="test_finding",
        model=Finding,
        system_prompt=f"[{name}] You check one aspect of a case. Report one finding.",
        task="Report your finding.",
        stand_in=lambda context: Finding(finding="offline", confidence=0.5),
        stand_in_turn=specialist_turn,
        description=f"Checks the {name.split('_')[0]} of the case and reports one finding.",
    )
    for name in SPECIALISTS
]


def settings(
    *,
    coordinator_budget: AgentBudget | None = None,
    specialist_budget: AgentBudget | None = None,
    specialist_tools: list[str] | None = None,
    handoffs: list[str] | None = None,
) -> dict[str, RegionAgentSettings]:
    """A policy's ``agents`` section for the coordinator and its specialists."""
    specialist = RegionAgentSettings(
        allowed_tools=specialist_tools if specialist_tools is not None else ["get_ticket"],
        budget=specialist_budget or AgentBudget(max_model_calls=4, max_tool_calls=4),
    )
    return {
        COORDINATOR: RegionAgentSettings(
            allowed_tools=[],
            budget=coordinator_budget or AgentBudget(max_model_calls=20, max_tool_calls=20),
            specialists=list(SPECIALISTS) if handoffs is None else [],
            handoffs=handoffs or [],
        ),
    } | {name: specialist for name in SPECIALISTS}


def coordinator_input(case_id: str, ticket_id: str = "", **changes: Any) -> AgentRegionInput:
    """The coordinator's region, built the way a process builds it (``region_input``)."""
    return region_input(
        COORDINATOR_SPEC,
        settings(**changes),
        context={"case": {"case_id": case_id, "ticket_id": ticket_id}},
        requested_by="erin",
        directory=Directory.model_validate(load_policy("directory").content),
        agents=SPECIALIST_SPECS,
    )


def new_case_id(label: str) -> str:
    return f"SPEC-{label}-{uuid.uuid4().hex[:8]}"


# -- the stack: a Temporal dev server, the sandbox, the scripted model and the real worker -------


@dataclass
class Stack:
    client: Client
    model: ScriptedAgents
    itsm: Itsm
    task_queue: str
    sandbox_url: str

    async def start(self, request: AgentRegionInput, case_id: str) -> WorkflowHandle:
        return await self.client.start_workflow(
            AgentRegionWorkflow.run, request, id=f"region-{case_id}", task_queue=self.task_queue
        )


@asynccontextmanager
async def running_stack(client: Client, tmp: Path) -> AsyncIterator[Stack]:
    """The sandbox, the scripted model and the real worker on a queue of their own."""
    with running_sandbox(tmp / "sandbox.db") as url, scripted_llm_server() as server:
        model = ScriptedAgents(server)
        queue = f"casework-specialists-{uuid.uuid4().hex}"
        async with (
            itsm_client(url) as itsm,
            running_worker(client, scripted_settings(queue, url, server)),
        ):
            yield Stack(client, model, itsm, queue, url)


class ScriptedAgents(ScriptedModel):
    """The scripted model, one script per case and agent: ``script(f"{case}/{agent}", ...)``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    def key_of(self, chat_request: dict[str, Any]) -> str | None:
        case = case_value(chat_request, "case", "case_id")
        system = next(
            (m["content"] for m in chat_request.get("messages", []) if m["role"] == "system"), ""
        )
        tag = _TAG.match(system or "")
        return f"{case}/{tag.group(1) if tag else '?'}" if case else None


def calls(*tool_calls: tuple[str, dict[str, Any] | str]) -> ScriptedReply:
    return ScriptedReply(
        tool_calls=[
            {
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for name, args in tool_calls
        ]
    )


def ask(*names: str) -> ScriptedReply:
    """The coordinator asks these specialists, in one turn."""
    return calls(*((name, {"task": f"Check the {name} of this case."}) for name in names))


def finding(text: str, confidence: float = 0.8) -> ScriptedReply:
    return calls((FINAL_ANSWER, {"finding": text, "confidence": confidence}))


def reconciled(summary: str, *parts: str) -> ScriptedReply:
    return calls((FINAL_ANSWER, {"summary": summary, "parts": list(parts), "confidence": 0.7}))


def specialist(spec_name: str) -> SpecialistSpec:
    return next(s for s in coordinator_input("x").specialists if s.name == spec_name)
