"""MCP tools: an agent's tools from MCP servers its policy names, through the real stack.

The sandbox's MCP endpoint (streamable HTTP) and a third-party reference server from PyPI
(``mcp-server-time``, over stdio) serve the tools; the dev server, the real worker and the
scripted model behind litellm do the rest. Each call is checked as a native tool's is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from casework.agents.region import AgentRegionInput, RegionOutcome
from casework.audit import AuditKind
from casework.governance.loader import load_policy
from casework.governance.models import Directory, McpServerSettings
from casework.testing.cases import audit, events_of
from tests.specialists_support import (
    SPECIALIST_SPECS,
    Stack,
    calls,
    finding,
    new_case_id,
    running_stack,
)
from tests.triage_support import scheduled_activities, tool_messages

SANDBOX_MCP = McpServerSettings(url="${CASEWORK_SANDBOX_URL}/mcp", allowed_tools=["get_ticket"])
# The reference server as PyPI installs it, beside this interpreter.
TIME_SERVER = McpServerSettings(
    command=str(Path(sys.executable).parent / "mcp-server-time"),
    args=["--local-timezone", "UTC"],
    allowed_tools=["get_current_time"],
)


@pytest.fixture(scope="module")
async def stack(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with running_stack(temporal.client, tmp_path_factory.mktemp("mcp")) as running:
        yield running


def agent_input(case_id: str, **servers: McpServerSettings) -> AgentRegionInput:
    spec = SPECIALIST_SPECS[0]
    return AgentRegionInput(
        agent=spec.name,
        output=spec.output,
        system_prompt=spec.system_prompt,
        task=spec.task,
        context={"case": {"case_id": case_id}},
        allowed_tools=[],
        requested_by="erin",
        directory=Directory.model_validate(load_policy("directory").content),
        mcp_servers=servers,
    )


def tool_result(content: str) -> Any:
    assert content.startswith("<tool_result>\n"), content
    return json.loads(content.removeprefix("<tool_result>\n").removesuffix("\n</tool_result>"))


async def test_an_agent_reads_the_sandbox_over_mcp_with_the_checks_native_tools_get(
    stack: Stack,
) -> None:
    case_id = new_case_id("mcp")
    ticket_id = f"INC-{case_id}"
    await stack.itsm.create_ticket(ticket_id, title=f"Laptop will not boot {case_id}")
    agent = f"{case_id}/{SPECIALIST_SPECS[0].name}"
    stack.model.script(
        agent,
        calls(
            ("sandbox__get_ticket", {"ticket_id": ticket_id}),
            # Not allowed by the policy, though the server has it.
            ("sandbox__get_invoice", {"invoice_id": "INV-1"}),
            # Fails the tool's argument schema: never sent.
            ("sandbox__get_ticket", {"ticket": ticket_id}),
        ),
        finding("the laptop ticket is real"),
    )

    handle = await stack.start(agent_input(case_id, sandbox=SANDBOX_MCP), case_id)
    result = await handle.result()

    assert result.outcome is RegionOutcome.ANSWERED, result.reason
    assert (result.tool_calls, result.refused_tool_calls) == (3, 2)
    assert await scheduled_activities(handle) == [
        "mcp.list_tools",
        "llm.chat",
        "mcp.call_tool",
        "llm.chat",
    ]
    first, second = stack.model.requests_for(agent)
    offered = [tool["function"]["name"] for tool in first["tools"]]
    assert offered == ["sandbox__get_ticket", "final_answer"]
    read, not_allowed, bad_arguments = tool_messages(second)
    ticket = tool_result(read)
    assert (ticket["ticket_id"], ticket["title"]) == (ticket_id, f"Laptop will not boot {case_id}")
    assert not_allowed == (
        "refused: tool 'sandbox__get_invoice' is not available to this agent. "
        "The call was not executed."
    )
    assert bad_arguments.startswith("refused: invalid arguments for sandbox__get_ticket: ")
    assert "'ticket_id' is a required property" in bad_arguments
    events = await audit(handle)
    (call,) = events_of(events, AuditKind.TOOL_CALL)
    assert (call.data["activity"], call.data["server"]) == ("mcp.call_tool", "sandbox")
    assert len(events_of(events, AuditKind.TOOL_REFUSED)) == 2


async def test_a_third_party_mcp_server_over_stdio_is_a_tool_source(stack: Stack) -> None:
    case_id = new_case_id("stdio")
    agent = f"{case_id}/{SPECIALIST_SPECS[0].name}"
    stack.model.script(
        agent,
        calls(("time__get_current_time", {"timezone": "Asia/Tokyo"})),
        finding("it is some time in Tokyo"),
    )

    handle = await stack.start(agent_input(case_id, time=TIME_SERVER), case_id)
    result = await handle.result()

    assert result.outcome is RegionOutcome.ANSWERED, result.reason
    _, second = stack.model.requests_for(agent)
    (answer,) = [tool_result(content) for content in tool_messages(second)]
    assert answer["timezone"] == "Asia/Tokyo"
    assert answer["datetime"].endswith("+09:00")
    assert await scheduled_activities(handle) == [
        "mcp.list_tools",
        "llm.chat",
        "mcp.call_tool",
        "llm.chat",
    ]


async def test_a_policy_allowing_a_tool_the_server_lacks_fails_the_region_loudly(
    stack: Stack,
) -> None:
    case_id = new_case_id("nosuch")
    server = TIME_SERVER.model_copy(update={"allowed_tools": ["set_system_clock"]})

    handle = await stack.start(agent_input(case_id, time=server), case_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "PolicyInvalid"
    assert "time.set_system_clock: the server has no such tool" in cause.message
    assert stack.model.requests_for(f"{case_id}/{SPECIALIST_SPECS[0].name}") == []
