"""Off-rail endings: a region that repeats a call, or keeps calling tools that tell it nothing
new, ends ``off_rail`` with the evidence, before its budget is spent. Through the real stack:
dev server, worker, sandbox and the scripted model behind litellm."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from casework.agents.region import AgentRegionInput, RegionOutcome
from casework.audit import AuditKind
from casework.governance.loader import load_policy
from casework.governance.models import AgentBudget, Directory
from casework.testing.cases import audit, events_of
from tests.specialists_support import (
    SPECIALIST_SPECS,
    Stack,
    ask,
    calls,
    coordinator_input,
    new_case_id,
    reconciled,
    running_stack,
)
from tests.triage_support import scheduled_activities, tool_messages


@pytest.fixture(scope="module")
async def stack(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with running_stack(temporal.client, tmp_path_factory.mktemp("off-rail")) as running:
        yield running


async def test_a_specialist_repeating_a_call_ends_off_rail_and_the_coordinator_goes_on(
    stack: Stack,
) -> None:
    case_id = new_case_id("repeat")
    ticket_id = f"INC-{case_id}"
    await stack.itsm.create_ticket(ticket_id)
    read = ("get_ticket", {"ticket_id": ticket_id})
    stack.model.script(f"{case_id}/coordinator", ask("fraud_check"), reconciled("without it"))
    # The same call again, spaced differently: still the same call.
    stack.model.script(
        f"{case_id}/fraud_check",
        calls(read),
        calls(("get_ticket", f'{{ "ticket_id" : "{ticket_id}" }}')),
    )
    budget = AgentBudget(max_model_calls=8, max_tool_calls=8)

    handle = await stack.start(
        coordinator_input(case_id, ticket_id, specialist_budget=budget), case_id
    )
    result = await handle.result()

    assert result.outcome is RegionOutcome.ANSWERED
    (report,) = result.specialists
    evidence = f'get_ticket({{"ticket_id":"{ticket_id}"}}) asked for 2 times'
    assert (report.result.outcome, report.result.evidence) == (RegionOutcome.OFF_RAIL, [evidence])
    # Ended well within its budget, and the repeat never ran.
    assert (report.result.model_calls, report.result.tool_calls) == (2, 1)
    child = stack.client.get_workflow_handle(f"region-{case_id}-fraud_check-1")
    assert await scheduled_activities(child) == ["llm.chat", "itsm.get_ticket", "llm.chat"]
    (ended,) = events_of(await audit(child), AuditKind.AGENT_REGION_ENDED)
    assert ended.data["outcome"] == "off_rail" and ended.data["evidence"] == [evidence]
    # The coordinator was told, as data, and answered without it.
    _, second = stack.model.requests_for(f"{case_id}/coordinator")
    (told,) = tool_messages(second)
    assert '"outcome": "off_rail"' in told and evidence.replace('"', '\\"') in told


async def test_tool_calls_that_learn_nothing_new_end_the_region_off_rail(stack: Stack) -> None:
    case_id = new_case_id("nonews")
    spec = SPECIALIST_SPECS[1]
    agent = f"{case_id}/{spec.name}"
    # Four searches, each different, each finding nothing: the last three learnt nothing new.
    queries = ["zebra firmware", "quokka driver", "narwhal patch", "axolotl update"]
    stack.model.script(
        agent, *(calls(("search_knowledge_base", {"query": query})) for query in queries)
    )

    handle = await stack.start(
        AgentRegionInput(
            agent=spec.name,
            output=spec.output,
            system_prompt=spec.system_prompt,
            task=spec.task,
            context={"case": {"case_id": case_id}},
            allowed_tools=["search_knowledge_base"],
            budget=AgentBudget(max_model_calls=10, max_tool_calls=10),
            requested_by="erin",
            directory=Directory.model_validate(load_policy("directory").content),
        ),
        case_id,
    )
    result = await handle.result()

    assert result.outcome is RegionOutcome.OFF_RAIL
    assert result.reason == "3 tool calls in a row learnt nothing new"
    assert result.evidence == [
        f'search_knowledge_base({{"query": "{query}"}}): nothing new' for query in queries[1:]
    ]
    assert (result.model_calls, result.tool_calls) == (4, 4)
    assert len(stack.model.requests_for(agent)) == 4
