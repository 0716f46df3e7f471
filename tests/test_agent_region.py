"""The agent region: a bounded, durable tool-calling loop, run as a child workflow of a case.

Every test runs a Temporal dev server, the real worker (``llm.chat`` through litellm, the ITSM
activities over HTTP), the sandbox and a scripted OpenAI-compatible model, all on loopback. The
model is scripted turn by turn per ticket; each test checks what the region did (its history,
its audit trail, what reached the model) and what it did not do to the systems of record.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.agents.ticket_triage import SYSTEM_PROMPT, TASK, TRIAGE_AGENT, TRIAGE_PROPOSAL
from casework.agents.region import (
    AgentRegionInput,
    AgentRegionWorkflow,
    RegionOutcome,
)
from casework.audit import AuditKind
from casework.case.tasks import DecisionReceipt, TaskAnswer, TaskKind
from casework.governance.loader import load_policy
from casework.governance.models import AgentBudget, Directory
from casework.testing.cases import audit, events_of, open_task
from casework.testing.scripted_llm import SCRIPTED_MODEL, ScriptedReply, gated, turn_of
from casework.testing.signing import decide, signed_act
from casework.testing.temporal import eventually
from casework.worker import running_worker
from policies.ticket_triage import TicketTriagePolicy, TriageRoute
from tests.triage_support import (
    Stack,
    TriageHandle,
    activity_attempts,
    audited,
    calls,
    final,
    new_ticket_id,
    offered_tools,
    proposal,
    region_of,
    running_stack,
    scheduled_activities,
    tool_call,
    tool_messages,
)
from workflows.ticket_triage import TicketTriageResult, TriageStatus

POLICY = TicketTriagePolicy.model_validate(load_policy("ticket_triage").content)
MAX_MODEL_CALLS = POLICY.agents[TRIAGE_AGENT].budget.max_model_calls
READ_ONLY_TOOLS = {
    "get_ticket",
    "get_configuration_item",
    "search_knowledge_base",
    "get_kb_article",
    "find_similar_tickets",
}
_TOOL_RESULT = re.compile(r"^<tool_result>\n(.*)\n</tool_result>$", re.DOTALL)


@pytest.fixture(scope="module")
async def stack(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with running_stack(temporal.client, tmp_path_factory.mktemp("region")) as running:
        yield running


def tool_result(content: str) -> object:
    """What a tool returned, from the delimited block the model received it in."""
    match = _TOOL_RESULT.match(content)
    assert match, f"not a <tool_result> block: {content!r}"
    return json.loads(match.group(1))


async def reject(handle: TriageHandle, comment: str = "needs a closer look") -> TicketTriageResult:
    """frank (service_desk_lead) rejects the review task: the ticket goes to the fallback team."""
    await open_task(handle, "a review task")
    await decide(handle, approver="frank", action="reject", comment=comment)
    return await handle.result()


# -- 1. the loop --------------------------------------------------------------------------------


async def test_each_model_call_and_tool_call_is_its_own_activity_and_results_reach_the_model(
    stack: Stack,
) -> None:
    ticket_id = new_ticket_id("loop")
    ci_id = f"CI-{ticket_id}"
    article_id = f"KB-{ticket_id}"
    similar_id = f"{ticket_id}-older"
    await stack.itsm.create_ci(ci_id, name="Corporate VPN gateway", oncall="henry")
    await stack.itsm.create_article(
        article_id,
        title=f"VPN drops every few minutes {ticket_id}",
        body="Renew the VPN client certificate, then reconnect.",
        category="network",
        tags=["vpn"],
    )
    await stack.itsm.create_ticket(similar_id, title="VPN keeps dropping on wifi")
    await stack.itsm.create_ticket(ticket_id, ci_id=ci_id)
    stack.model.script(
        ticket_id,
        calls(tool_call("search_knowledge_base", {"query": f"vpn drops {ticket_id}"})),
        calls(
            tool_call("find_similar_tickets", {"ticket_id": ticket_id}),
            tool_call("get_configuration_item", {"ci_id": ci_id}),
        ),
        final(affected_ci=ci_id, team="network-ops", confidence=0.9),
    )

    handle = await stack.start(ticket_id)
    result = await handle.result()
    region = await region_of(stack.client, handle)
    outcome = await region.result()

    assert (result.route, result.team, result.status) == (
        TriageRoute.ASSIGN,
        "network-ops",
        TriageStatus.ASSIGNED,
    )
    assert result.agent_outcome is RegionOutcome.ANSWERED
    assert (outcome.outcome, outcome.model_calls, outcome.tool_calls) == ("answered", 3, 3)
    assert (outcome.refused_tool_calls, outcome.models) == (0, [SCRIPTED_MODEL])
    assert outcome.output is not None and outcome.output["affected_ci"] == ci_id
    # Each model call and each tool call is an activity of its own in the region's history.
    assert await scheduled_activities(region) == [
        "llm.chat",
        "itsm.search_knowledge_base",
        "llm.chat",
        "itsm.find_similar_tickets",
        "itsm.get_configuration_item",
        "llm.chat",
    ]
    # The model was offered the read-only tools, ask_human and final_answer; never a write.
    first, second, third = stack.model.requests_for(ticket_id)
    assert set(offered_tools(first)) == READ_ONLY_TOOLS | {"ask_human", "final_answer"}
    assert [turn_of(r) for r in (first, second, third)] == [0, 1, 2]
    # Each tool result reached the model, inside a <tool_result> block, answering its call.
    (hits,) = [tool_result(content) for content in tool_messages(second)]
    assert isinstance(hits, list) and hits[0]["article_id"] == article_id
    kb, similar, item = [tool_result(content) for content in tool_messages(third)]
    assert kb == hits
    assert isinstance(similar, list) and similar_id in [t["ticket_id"] for t in similar]
    assert isinstance(item, dict) and (item["ci_id"], item["oncall"]) == (ci_id, "henry")
    asked = third["messages"][-3]["tool_calls"]
    assert [m["tool_call_id"] for m in third["messages"][-2:]] == [c["id"] for c in asked]
    events = await audit(region)
    assert len(events_of(events, AuditKind.MODEL_CALL)) == 3
    assert len(events_of(events, AuditKind.TOOL_CALL)) == 3
    assert events_of(events, AuditKind.TOOL_REFUSED) == []
    ticket = await stack.itsm.ticket(ticket_id)
    assert (ticket["status"], ticket["team"]) == ("assigned", "network-ops")


# -- 2. tools outside the allowlist -------------------------------------------------------------


async def test_tool_outside_the_allowlist_is_refused_reported_and_never_executed(
    stack: Stack,
) -> None:
    ticket_id = new_ticket_id("write")
    await stack.itsm.create_ticket(ticket_id)
    before = await stack.itsm.ticket(ticket_id)
    stack.model.script(
        ticket_id,
        calls(
            tool_call("resolve_ticket", {"ticket_id": ticket_id, "resolution": "fixed it"}),
            tool_call("assign_ticket", {"ticket_id": ticket_id, "team": "network-ops"}),
        ),
        # Not confident: a person reviews before anything is written to the ticket.
        final(confidence=0.5),
    )

    handle = await stack.start(ticket_id)
    task = await open_task(handle, "a review task")
    # The case is waiting for a person: nothing has been written to the ticket yet.
    assert await stack.itsm.ticket(ticket_id) == before
    region = await region_of(stack.client, handle)
    outcome = await region.result()
    result = await reject(handle)

    assert task.role == "service_desk_lead"
    assert outcome.outcome is RegionOutcome.ANSWERED
    # Refused calls count against the tool budget.
    assert (outcome.tool_calls, outcome.refused_tool_calls) == (2, 2)
    assert await scheduled_activities(region) == ["llm.chat", "llm.chat"]
    assert "itsm.resolve_ticket" not in await scheduled_activities(handle)
    _, second = stack.model.requests_for(ticket_id)
    assert tool_messages(second) == [
        f"refused: tool {name!r} is not available to this agent. The call was not executed."
        for name in ("resolve_ticket", "assign_ticket")
    ]
    refused = events_of(await audit(region), AuditKind.TOOL_REFUSED)
    assert [e.data["tool"] for e in refused] == ["resolve_ticket", "assign_ticket"]
    assert json.loads(refused[0].data["arguments"])["resolution"] == "fixed it"
    # Only the workflow wrote, and only what the policy (and frank) decided.
    assert (result.team, result.decided_by) == ("service-desk", "frank")
    ticket = await stack.itsm.ticket(ticket_id)
    assert (ticket["status"], ticket["team"], ticket["resolution"]) == (
        "assigned",
        "service-desk",
        None,
    )


async def test_refused_tool_calls_use_up_the_tool_budget(stack: Stack) -> None:
    """The region run on its own, with a tool budget of two: two refused calls end it."""
    ticket_id = new_ticket_id("budget")
    stack.model.script(
        ticket_id,
        calls(tool_call("resolve_ticket", {"ticket_id": ticket_id})),
        calls(tool_call("delete_everything", "{}")),
        calls(tool_call("search_knowledge_base", {"query": "vpn"})),
    )
    directory = Directory.model_validate(load_policy("directory").content)

    outcome = await stack.client.execute_workflow(
        AgentRegionWorkflow.run,
        AgentRegionInput(
            agent=TRIAGE_AGENT,
            output=TRIAGE_PROPOSAL,
            system_prompt=SYSTEM_PROMPT,
            task=TASK,
            context={"ticket": {"ticket_id": ticket_id, "title": "VPN drops"}},
            allowed_tools=sorted(READ_ONLY_TOOLS),
            budget=AgentBudget(max_model_calls=5, max_tool_calls=2),
            requested_by="erin",
            directory=directory,
        ),
        id=f"agent-region-{ticket_id}",
        task_queue=stack.task_queue,
    )

    assert outcome.outcome is RegionOutcome.BUDGET_EXHAUSTED
    assert outcome.reason == "tool-call budget of 2 reached"
    assert (outcome.model_calls, outcome.tool_calls, outcome.refused_tool_calls) == (3, 2, 2)
    region = stack.client.get_workflow_handle(f"agent-region-{ticket_id}")
    # Nothing was executed: the third turn's (allowed) call found the budget spent.
    assert await scheduled_activities(region) == ["llm.chat"] * 3
    # No human roles: ask_human is not offered.
    first = stack.model.requests_for(ticket_id)[0]
    assert set(offered_tools(first)) == READ_ONLY_TOOLS | {"final_answer"}


# -- 3. malformed tool arguments ----------------------------------------------------------------


async def test_malformed_tool_arguments_are_refused_reported_and_recorded(stack: Stack) -> None:
    ticket_id = new_ticket_id("args")
    await stack.itsm.create_ticket(ticket_id)
    stack.model.script(
        ticket_id,
        calls(
            tool_call("search_knowledge_base", '{"query": "vpn'),
            tool_call("search_knowledge_base", {"limit": 3}),
            tool_call("find_similar_tickets", {"ticket_id": ticket_id, "sql": "DROP TABLE"}),
        ),
        final(),
    )

    handle = await stack.start(ticket_id)
    result = await handle.result()
    region = await region_of(stack.client, handle)
    outcome = await region.result()

    assert (result.route, result.team) == (TriageRoute.ASSIGN, "network-ops")
    assert (outcome.tool_calls, outcome.refused_tool_calls) == (3, 3)
    assert await scheduled_activities(region) == ["llm.chat", "llm.chat"]
    _, second = stack.model.requests_for(ticket_id)
    invalid_json, missing, extra = tool_messages(second)
    prefix = "refused: invalid arguments for"
    assert invalid_json.startswith(f"{prefix} search_knowledge_base: ")
    assert "Invalid JSON" in invalid_json
    assert missing.startswith(f"{prefix} search_knowledge_base: query: Field required")
    assert extra.startswith(f"{prefix} find_similar_tickets: sql: Extra inputs are not permitted")
    assert all(m.endswith("The call was not executed.") for m in (invalid_json, missing, extra))
    refused = events_of(await audit(region), AuditKind.TOOL_REFUSED)
    assert [e.data["arguments"] for e in refused] == [
        '{"query": "vpn',
        '{"limit": 3}',
        json.dumps({"ticket_id": ticket_id, "sql": "DROP TABLE"}),
    ]


# -- 4. malformed final answers -----------------------------------------------------------------


async def test_malformed_final_answers_are_reasked_until_the_budget_ends_then_a_person_reviews(
    stack: Stack,
) -> None:
    ticket_id = new_ticket_id("final")
    await stack.itsm.create_ticket(ticket_id)
    invalid = proposal(severity=7, action="auto_resolve", reasons=[], confidence=1.5)
    stack.model.script(
        ticket_id,
        ScriptedReply(content="Looks like the VPN concentrator to me."),
        then=calls(tool_call("final_answer", invalid)),
    )

    handle = await stack.start(ticket_id)
    task = await open_task(handle, "a review task")
    region = await region_of(stack.client, handle)
    outcome = await region.result()
    result = await reject(handle)

    assert outcome.outcome is RegionOutcome.BUDGET_EXHAUSTED
    assert outcome.reason == f"model-call budget of {MAX_MODEL_CALLS} reached"
    assert (outcome.model_calls, outcome.output) == (MAX_MODEL_CALLS, None)
    requests = stack.model.requests_for(ticket_id)
    assert [turn_of(r) for r in requests] == list(range(MAX_MODEL_CALLS))
    # A text answer is re-asked with what was wrong with it...
    reask = requests[1]["messages"][-1]
    assert reask["role"] == "user"
    assert reask["content"].startswith("That was not a tool call (does not match TriageProposal")
    # ...and an invalid final answer is refused with the validation errors, every time.
    for request in requests[2:]:
        refusal = request["messages"][-1]
        assert refusal["role"] == "tool"
        assert refusal["content"].startswith("refused: does not match TriageProposal: ")
        for field in ("severity", "reasons", "confidence"):
            assert field in refusal["content"]
    refused = events_of(await audit(region), AuditKind.TOOL_REFUSED)
    assert len(refused) == MAX_MODEL_CALLS - 1
    assert all(e.summary.startswith("final answer refused: ") for e in refused)
    # No proposal: the triage case puts the ticket in front of a person.
    assert (task.role, task.kind) == ("service_desk_lead", TaskKind.APPROVAL)
    assert "no usable proposal from the agent: budget_exhausted: model-call budget" in task.summary
    assert result.agent_outcome is RegionOutcome.BUDGET_EXHAUSTED
    assert (result.route, result.team, result.decided_by) == (
        TriageRoute.ASSIGN,
        "service-desk",
        "frank",
    )


# -- 5. the model-call budget -------------------------------------------------------------------


async def test_model_that_keeps_calling_tools_ends_at_the_model_call_budget(stack: Stack) -> None:
    ticket_id = new_ticket_id("greedy")
    await stack.itsm.create_ticket(ticket_id)
    # Another ticket each turn, each new to it: it never goes off rail, it just never stops.
    others = [f"{ticket_id}-{n}" for n in range(MAX_MODEL_CALLS)]
    for other in others:
        await stack.itsm.create_ticket(other)
    stack.model.script(
        ticket_id,
        then=lambda body: calls(tool_call("get_ticket", {"ticket_id": others[turn_of(body)]})),
    )

    handle = await stack.start(ticket_id)
    task = await open_task(handle, "a review task")
    region = await region_of(stack.client, handle)
    outcome = await region.result()
    await reject(handle)

    # The policy's tool budget is the larger: the model-call budget is what ends the region.
    assert POLICY.agents[TRIAGE_AGENT].budget.max_tool_calls > MAX_MODEL_CALLS
    assert outcome.outcome is RegionOutcome.BUDGET_EXHAUSTED
    assert outcome.reason == f"model-call budget of {MAX_MODEL_CALLS} reached"
    # The last turn's tool call is not run: no model call is left to read its result.
    assert (outcome.model_calls, outcome.tool_calls) == (MAX_MODEL_CALLS, MAX_MODEL_CALLS - 1)
    activities = await scheduled_activities(region)
    assert activities.count("llm.chat") == MAX_MODEL_CALLS
    assert activities == ["llm.chat", "itsm.get_ticket"] * (MAX_MODEL_CALLS - 1) + ["llm.chat"]
    assert len(stack.model.requests_for(ticket_id)) == MAX_MODEL_CALLS
    (ended,) = events_of(await audit(region), AuditKind.AGENT_REGION_ENDED)
    assert ended.summary.startswith(f"budget_exhausted: model-call budget of {MAX_MODEL_CALLS}")
    assert task.role == "service_desk_lead"


async def test_model_refusing_the_request_fails_the_region_and_a_person_reviews(
    stack: Stack,
) -> None:
    ticket_id = new_ticket_id("refuse")
    await stack.itsm.create_ticket(ticket_id)
    stack.model.script(ticket_id, ScriptedReply(status=401))

    handle = await stack.start(ticket_id)
    task = await open_task(handle, "a review task")
    region = await region_of(stack.client, handle)
    outcome = await region.result()
    await reject(handle)

    assert outcome.outcome is RegionOutcome.FAILED
    assert outcome.reason.startswith("model call failed: LlmRequestRejected")
    # A rejected request is not retried: it would fail the same way every time.
    assert len(stack.model.requests_for(ticket_id)) == 1
    assert "no usable proposal from the agent: failed: model call failed" in task.summary


# -- 6. ask_human -------------------------------------------------------------------------------


async def test_ask_human_is_answered_by_a_service_desk_lead_and_the_answer_reaches_the_model(
    stack: Stack,
) -> None:
    ticket_id = new_ticket_id("ask")
    await stack.itsm.create_ticket(ticket_id)
    question = "Is there planned VPN maintenance tonight?"
    stack.model.script(
        ticket_id,
        calls(tool_call("ask_human", {"question": question})),
        final(),
    )

    handle = await stack.start(ticket_id)
    region = await region_of(stack.client, handle)
    task = await open_task(region, "a question")
    assert (task.kind, task.question, task.eligible_roles) == (
        TaskKind.QUESTION,
        question,
        ["service_desk_lead"],
    )
    # A signal from someone without the role is recorded and ignored...
    await region.signal(
        "answer",
        signed_act(region.id, "answer", TaskAnswer(responder="erin", text="no idea"), "erin"),
    )
    await audited(
        region,
        "erin's answer to be refused",
        lambda events: bool(events_of(events, AuditKind.DECISION_REFUSED)),
    )
    # ...and an update is refused to the sender, with the reason.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await region.execute_update(
            "answer",
            signed_act(region.id, "answer", TaskAnswer(responder="grace", text="yes"), "grace"),
            result_type=DecisionReceipt,
        )
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert "grace (incident_manager) may not answer; it needs one of: service_desk_lead" in str(
        cause
    )
    receipt = await region.execute_update(
        "answer",
        signed_act(
            region.id,
            "answer",
            TaskAnswer(responder="frank", text="Yes, from 22:00 to 23:00."),
            "frank",
        ),
        result_type=DecisionReceipt,
    )
    result = await handle.result()

    assert (receipt.task_id, receipt.approver) == (task.task_id, "frank")
    assert result.route is TriageRoute.ASSIGN
    _, second = stack.model.requests_for(ticket_id)
    assert tool_messages(second) == [
        "<tool_result>\nfrank answered: Yes, from 22:00 to 23:00.\n</tool_result>"
    ]
    events = await audit(region)
    (answered,) = events_of(events, AuditKind.HUMAN_ANSWER)
    assert answered.summary == "frank answered: Yes, from 22:00 to 23:00."
    (ignored,) = events_of(events, AuditKind.DECISION_REFUSED)
    assert "erin (service_desk_agent) may not answer" in ignored.summary
    asked = await stack.itsm.notifications(to="frank@example.com", case_id=region.id)
    assert [n.subject for n in asked] == [f"Question: {TRIAGE_AGENT}"]


# -- 9. a worker restarted mid-region -----------------------------------------------------------


async def test_restarted_worker_resumes_the_loop_without_repeating_completed_model_calls(
    stack: Stack,
) -> None:
    ticket_id = new_ticket_id("restart")
    await stack.itsm.create_ticket(ticket_id)
    release = threading.Event()
    stack.model.script(
        ticket_id,
        calls(tool_call("search_knowledge_base", {"query": "vpn drops"})),
        calls(tool_call("get_ticket", {"ticket_id": ticket_id})),
        gated(final(), release),
    )
    # A worker of its own, on a queue of its own, so it can be stopped and started again.
    settings = stack.worker_settings()

    async def third_call_in_flight() -> bool | None:
        return any(turn_of(r) == 2 for r in stack.model.requests_for(ticket_id)) or None

    try:
        async with running_worker(stack.client, settings):
            handle = await stack.start(ticket_id, task_queue=settings.task_queue)
            await eventually(third_call_in_flight, what="the third model call to arrive")
        # The worker is gone, with the third model call unanswered.
        async with running_worker(stack.client, settings):
            release.set()
            result = await handle.result()
            region = await region_of(stack.client, handle)
            outcome = await region.result()
    finally:
        release.set()

    assert result.route is TriageRoute.ASSIGN
    turns = Counter(turn_of(r) for r in stack.model.requests_for(ticket_id))
    # Model calls 1 and 2 completed before the restart and were not made again; the third was
    # in flight, so it was retried on the new worker.
    assert (turns[0], turns[1]) == (1, 1)
    assert turns[2] >= 2
    assert await scheduled_activities(region) == [
        "llm.chat",
        "itsm.search_knowledge_base",
        "llm.chat",
        "itsm.get_ticket",
        "llm.chat",
    ]
    assert (await activity_attempts(region, "llm.chat"))[:2] == [1, 1]
    assert (await activity_attempts(region, "llm.chat"))[2] >= 2
    assert (outcome.outcome, outcome.model_calls) == (RegionOutcome.ANSWERED, 3)


async def test_a_conversation_growing_past_its_size_cap_ends_the_region(stack: Stack) -> None:
    """Every model call carries the whole conversation: its size is capped like a budget."""
    ticket_id = new_ticket_id("size")
    others = [f"{ticket_id}-{n}" for n in range(5)]
    for other in others:
        await stack.itsm.create_ticket(other, title="VPN drops", description="x" * 3000)
    stack.model.script(
        ticket_id, *(calls(tool_call("get_ticket", {"ticket_id": other})) for other in others)
    )
    directory = Directory.model_validate(load_policy("directory").content)

    outcome = await stack.client.execute_workflow(
        AgentRegionWorkflow.run,
        AgentRegionInput(
            agent=TRIAGE_AGENT,
            output=TRIAGE_PROPOSAL,
            system_prompt=SYSTEM_PROMPT,
            task=TASK,
            context={"ticket": {"ticket_id": ticket_id, "title": "VPN drops"}},
            allowed_tools=sorted(READ_ONLY_TOOLS),
            budget=AgentBudget(max_model_calls=5, max_tool_calls=5),
            requested_by="erin",
            directory=directory,
            max_conversation_chars=8000,
        ),
        id=f"agent-region-{ticket_id}",
        task_queue=stack.task_queue,
    )

    assert outcome.outcome is RegionOutcome.BUDGET_EXHAUSTED
    assert outcome.reason.startswith("conversation of ")
    assert outcome.reason.endswith("characters exceeds 8000")
    # Each ticket read adds ~3,000 characters: the cap ends the loop before the call budget.
    assert 1 <= outcome.model_calls < 5
