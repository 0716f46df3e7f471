"""Row 5: the history of a long agent region, in bytes.

One agent region makes 40 model calls: 39 turns that each read another service-desk ticket (a
~2,000-character record, so every turn learns something new and the region never goes off rail)
and a final answer. The scripted OpenAI-compatible server answers through litellm's real HTTP
path. Measured from the region's history as the server keeps it: its total size, the
``llm.chat`` inputs within it, and its largest event, against Temporal's limits (a 2 MiB
payload, a 50 MiB history).

``python -m bench.agent_history`` measures this row alone, on a dev server of its own.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from casework.agents.region import AgentRegionInput, AgentRegionWorkflow, RegionOutcome
from casework.agents.spec import AgentSpec
from casework.agents.tools import FINAL_ANSWER
from casework.governance.loader import load_policy
from casework.governance.models import AgentBudget, Directory
from casework.sandbox.server import running_sandbox
from casework.testing.scripted_llm import (
    ScriptedLlmServer,
    ScriptedReply,
    case_value,
    scripted_llm_server,
    turn_of,
)
from casework.testing.temporal import dev_server, scripted_settings
from casework.worker import running_worker

MODEL_CALLS = 40
MIB = 1024 * 1024


class HistoryAnswer(BaseModel):
    read: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)


READER = AgentSpec(
    name="bench_reader",
    output="bench_history_answer",
    model=HistoryAnswer,
    system_prompt="You read every ticket you are given, one per turn, then say how many.",
    task="Read the tickets.",
    stand_in=lambda context: HistoryAnswer(read=0, confidence=0.5),
)


@dataclass(frozen=True)
class AgentHistory:
    model_calls: int
    history_bytes: int
    chat_input_bytes: int
    """The ``llm.chat`` activities' inputs, summed: the conversation each model call carried."""
    largest_event_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _responder(run_id: str, tickets: list[str]) -> Any:
    def answer(body: dict[str, Any]) -> ScriptedReply:
        if case_value(body, "run") != run_id:
            return ScriptedReply(status=400, error_body={"error": {"message": "another run"}})
        turn = turn_of(body)
        name, arguments = (
            ("get_ticket", {"ticket_id": tickets[turn]})
            if turn < len(tickets)
            else (FINAL_ANSWER, {"read": len(tickets), "confidence": 0.9})
        )
        function = {"name": name, "arguments": json.dumps(arguments)}
        return ScriptedReply(
            tool_calls=[{"id": f"call-{turn}", "type": "function", "function": function}]
        )

    return answer


async def measure_agent_history(
    client: Client, sandbox_url: str, queue: str, llm: ScriptedLlmServer
) -> AgentHistory:
    run_id = uuid.uuid4().hex[:8]
    tickets = [f"INC-HIST-{run_id}-{n}" for n in range(MODEL_CALLS - 1)]
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30.0, trust_env=False) as http:
        for number, ticket_id in enumerate(tickets):
            response = await http.post(
                "/itsm/tickets",
                json={
                    "ticket_id": ticket_id,
                    "title": f"Report {number} will not export",
                    "description": f"Ticket {number}: " + "the export fails again. " * 84,
                    "requester": "erin",
                },
            )
            response.raise_for_status()
    llm.responder = _responder(run_id, tickets)
    handle = await client.start_workflow(
        AgentRegionWorkflow.run,
        AgentRegionInput(
            agent=READER.name,
            output=READER.output,
            system_prompt=READER.system_prompt,
            task=READER.task,
            context={"run": run_id},
            allowed_tools=["get_ticket"],
            budget=AgentBudget(max_model_calls=MODEL_CALLS, max_tool_calls=MODEL_CALLS),
            requested_by="erin",
            directory=Directory.model_validate(load_policy("directory").content),
            max_conversation_chars=2_000_000,
        ),
        id=f"bench-agent-history-{run_id}",
        task_queue=queue,
    )
    result = await handle.result()
    if result.outcome is not RegionOutcome.ANSWERED or result.model_calls != MODEL_CALLS:
        raise RuntimeError(f"the region did not run its {MODEL_CALLS} calls: {result.reason}")
    history = await handle.fetch_history()
    chat_inputs = sum(
        event.activity_task_scheduled_event_attributes.input.ByteSize()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == "llm.chat"
    )
    return AgentHistory(
        model_calls=result.model_calls,
        history_bytes=sum(event.ByteSize() for event in history.events),
        chat_input_bytes=chat_inputs,
        largest_event_bytes=max(event.ByteSize() for event in history.events),
    )


def row(figures: AgentHistory) -> list[str]:
    return [
        f"5 agent region history, {figures.model_calls} model calls",
        f"{figures.history_bytes / MIB:.2f} MiB ({figures.chat_input_bytes / MIB:.2f} MiB "
        f"llm.chat inputs; largest event {figures.largest_event_bytes / 1024:.0f} KiB)",
        "Temporal limits: 50 MiB history, 2 MiB payload",
        f"{figures.history_bytes / (50 * MIB):.3f} of the history limit",
    ]


async def _main() -> None:
    with tempfile.TemporaryDirectory(prefix="casework-bench-history-") as tmp:
        async with dev_server(log_level="error") as env:
            with (
                running_sandbox(Path(tmp) / "sandbox.db") as sandbox_url,
                scripted_llm_server() as llm,
            ):
                queue = f"bench-history-{uuid.uuid4().hex[:6]}"
                settings = scripted_settings(queue, sandbox_url, llm)
                async with running_worker(env.client, settings):
                    figures = await measure_agent_history(env.client, sandbox_url, queue, llm)
    print(json.dumps(figures.as_dict()))
    print(" | ".join(row(figures)))


if __name__ == "__main__":
    asyncio.run(_main())
