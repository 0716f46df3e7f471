"""Specialists under a coordinator: each delegation is a child agent region of its own.

Every test runs a Temporal dev server, the real worker (``llm.chat`` through litellm, the ITSM
lookups over HTTP), the sandbox and a scripted OpenAI-compatible model, all on loopback. The
coordinator's region is built as a process builds it (``region_input`` from agent specs and the
policy's agent settings) and started on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from casework.agents.region import AgentRegionWorkflow, RegionOutcome
from casework.audit import AuditKind
from casework.governance.models import AgentBudget
from casework.testing.cases import audit, events_of
from casework.testing.scripted_llm import SCRIPTED_API_KEY, ScriptedReply
from casework.testing.temporal import eventually, scripted_settings
from casework.worker import running_worker
from tests.specialists_support import (
    SPECIALISTS,
    Stack,
    ask,
    calls,
    coordinator_input,
    finding,
    new_case_id,
    reconciled,
    running_stack,
)
from tests.triage_support import tool_messages


@pytest.fixture(scope="module")
async def stack(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with running_stack(temporal.client, tmp_path_factory.mktemp("specialists")) as running:
        yield running


def tool_result(content: str) -> Any:
    assert content.startswith("<tool_result>\n") and content.endswith("\n</tool_result>"), content
    return json.loads(content.removeprefix("<tool_result>\n").removesuffix("\n</tool_result>"))


def all_three_in_flight(reply: ScriptedReply, arrived: threading.Barrier) -> Any:
    """A specialist's turn that answers only once all three specialists' calls are in flight:
    had they run one after another, the first would wait in vain and fail the test."""

    def turn(body: dict[str, Any]) -> ScriptedReply:
        try:
            arrived.wait(timeout=60)
        except threading.BrokenBarrierError:
            return ScriptedReply(status=400, error_body={"error": {"message": "not parallel"}})
        return reply

    return turn


async def child_starts_by_workflow_task(handle: WorkflowHandle) -> list[list[str]]:
    """The child workflows a workflow started, grouped by the workflow task that started them."""
    groups: list[list[str]] = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            groups.append([])
        elif event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            groups[-1].append(
                event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            )
    return [group for group in groups if group]


# -- delegation ---------------------------------------------------------------------------------


async def test_three_specialists_asked_in_one_turn_run_in_parallel_and_their_spend_rolls_up(
    stack: Stack,
) -> None:
    case_id = new_case_id("parallel")
    arrived = threading.Barrier(3)
    stack.model.script(f"{case_id}/coordinator", ask(*SPECIALISTS), reconciled("all three", "ok"))
    for name in SPECIALISTS:
        stack.model.script(
            f"{case_id}/{name}", all_three_in_flight(finding(f"{name} is fine"), arrived)
        )

    handle = await stack.start(coordinator_input(case_id), case_id)
    result = await handle.result()

    assert result.outcome is RegionOutcome.ANSWERED, result.reason
    assert result.output == {"summary": "all three", "parts": ["ok"], "confidence": 0.7}
    assert [r.name for r in result.specialists] == list(SPECIALISTS)
    assert all(r.result.outcome is RegionOutcome.ANSWERED for r in result.specialists)
    # The coordinator's two model calls and one per specialist, all in the coordinator's total.
    assert result.model_calls == 5
    assert result.prompt_tokens == 5 * 11 and result.completion_tokens == 5 * 7
    # All three children started by the same workflow task, with IDs derived from the parent's.
    assert await child_starts_by_workflow_task(handle) == [
        [f"region-{case_id}-{name}-{n}" for n, name in enumerate(SPECIALISTS, start=1)]
    ]
    # Each answer reached the coordinator as data, answering its own call, in call order.
    _, second = stack.model.requests_for(f"{case_id}/coordinator")
    answers = [tool_result(content) for content in tool_messages(second)]
    assert answers == [
        {
            "specialist": name,
            "outcome": "answered",
            "answer": {"finding": f"{name} is fine", "confidence": 0.8},
        }
        for name in SPECIALISTS
    ]
    # Each specialist was given the coordinator's task text and the coordinator's case data.
    (coverage,) = stack.model.requests_for(f"{case_id}/coverage_check")
    assert coverage["messages"][1]["content"].startswith("Check the coverage_check of this case.")
    events = await audit(handle)
    started = events_of(events, AuditKind.DELEGATION_STARTED)
    ended = events_of(events, AuditKind.DELEGATION_ENDED)
    assert [e.data["specialist"] for e in started] == list(SPECIALISTS)
    assert sorted(e.data["specialist"] for e in ended) == sorted(SPECIALISTS)


async def test_a_specialist_that_exhausts_its_budget_is_reported_and_the_coordinator_answers(
    stack: Stack,
) -> None:
    case_id = new_case_id("budget")
    ticket_id = f"INC-{case_id}"
    await stack.itsm.create_ticket(ticket_id)
    stack.model.script(
        f"{case_id}/coordinator", ask("fraud_check"), reconciled("without the fraud check")
    )
    # One model call allowed: its tool call has no model call left to read the result.
    stack.model.script(f"{case_id}/fraud_check", calls(("get_ticket", {"ticket_id": ticket_id})))

    request = coordinator_input(
        case_id, ticket_id, specialist_budget=AgentBudget(max_model_calls=1, max_tool_calls=4)
    )
    result = await (await stack.start(request, case_id)).result()

    assert result.outcome is RegionOutcome.ANSWERED
    (report,) = result.specialists
    assert report.result.outcome is RegionOutcome.BUDGET_EXHAUSTED
    assert report.result.reason == "model-call budget of 1 reached"
    _, second = stack.model.requests_for(f"{case_id}/coordinator")
    (told,) = [tool_result(content) for content in tool_messages(second)]
    assert told == {
        "specialist": "fraud_check",
        "outcome": "budget_exhausted",
        "answer": None,
        "reason": "model-call budget of 1 reached",
    }
    assert result.model_calls == 3


async def test_a_specialists_disallowed_tool_is_refused_recorded_and_counted(
    stack: Stack,
) -> None:
    case_id = new_case_id("refused")
    ticket_id = f"INC-{case_id}"
    await stack.itsm.create_ticket(ticket_id)
    before = await stack.itsm.ticket(ticket_id)
    stack.model.script(f"{case_id}/coordinator", ask("damage_check"), reconciled("done"))
    stack.model.script(
        f"{case_id}/damage_check",
        calls(("resolve_ticket", {"ticket_id": ticket_id, "resolution": "fixed"})),
        finding("could not write, as it should be"),
    )

    handle = await stack.start(coordinator_input(case_id, ticket_id), case_id)
    result = await handle.result()

    (report,) = result.specialists
    assert report.result.outcome is RegionOutcome.ANSWERED
    assert (report.result.refused_tool_calls, result.refused_tool_calls) == (1, 1)
    child = stack.client.get_workflow_handle(f"region-{case_id}-damage_check-1")
    (refusal,) = events_of(await audit(child), AuditKind.TOOL_REFUSED)
    assert refusal.data["tool"] == "resolve_ticket"
    assert await stack.itsm.ticket(ticket_id) == before
    _, second = stack.model.requests_for(f"{case_id}/damage_check")
    assert tool_messages(second) == [
        "refused: tool 'resolve_ticket' is not available to this agent. The call was not executed."
    ]


async def test_a_handoff_ends_the_coordinators_loop_with_the_other_agents_answer(
    stack: Stack,
) -> None:
    case_id = new_case_id("handoff")
    stack.model.script(
        f"{case_id}/coordinator",
        calls(("handoff_to_fraud_check", {"task": "This one is all about fraud: take it."})),
    )
    stack.model.script(f"{case_id}/fraud_check", finding("a fraud ring"))

    request = coordinator_input(case_id, handoffs=["fraud_check"])
    result = await (await stack.start(request, case_id)).result()

    assert (result.outcome, result.handed_off_to) == (RegionOutcome.ANSWERED, "fraud_check")
    assert result.output == {"finding": "a fraud ring", "confidence": 0.8}
    assert result.model_calls == 2
    assert len(stack.model.requests_for(f"{case_id}/coordinator")) == 1


async def test_the_offline_stand_in_drives_a_coordinator_through_real_delegation(
    stack: Stack, temporal: WorkflowEnvironment
) -> None:
    case_id = new_case_id("offline")
    ticket_id = f"INC-{case_id}"
    await stack.itsm.create_ticket(ticket_id, title=f"Printer on fire {case_id}")
    queue = f"casework-specialists-offline-{uuid.uuid4().hex}"
    settings = scripted_settings(queue, stack.sandbox_url, stack.model.server).model_copy(
        update={"model": None}
    )
    async with running_worker(temporal.client, settings):
        handle = await temporal.client.start_workflow(
            AgentRegionWorkflow.run,
            coordinator_input(case_id, ticket_id),
            id=f"region-{case_id}",
            task_queue=queue,
        )
        result = await handle.result()

    assert result.outcome is RegionOutcome.ANSWERED, result.reason
    assert [r.result.outcome for r in result.specialists] == [RegionOutcome.ANSWERED] * 3
    assert result.output is not None
    assert (
        result.output["parts"] == [f"offline stand-in read ticket: Printer on fire {case_id}"] * 3
    )
    assert (result.model_calls, result.tool_calls) == (2 + 3 * 2, 3 + 3)
    assert stack.model.requests_for(f"{case_id}/coordinator") == []


# -- a worker killed mid-delegation -------------------------------------------------------------


WORKER_WITH_TEST_AGENTS = "import tests.specialists_support, casework.worker as w; w.main()"


def _first_fails_then(reply: ScriptedReply, then_when: threading.Event) -> Any:
    """A turn whose first request fails (503, which Temporal retries after a backoff) and whose
    retries answer once ``then_when`` is set."""
    requests = 0

    def turn(body: dict[str, Any]) -> ScriptedReply:
        nonlocal requests
        requests += 1
        if requests == 1:
            return ScriptedReply(status=503)
        return reply if then_when.wait(60) else ScriptedReply(status=503)

    return turn


async def test_a_worker_killed_mid_delegation_resumes_without_repeating_completed_model_calls(
    stack: Stack, temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    case_id = new_case_id("killed")
    queue = f"casework-specialists-killed-{uuid.uuid4().hex}"
    restarted = threading.Event()
    stack.model.script(
        f"{case_id}/coordinator", ask("coverage_check", "damage_check"), reconciled("both")
    )
    stack.model.script(f"{case_id}/coverage_check", finding("covered"))
    stack.model.script(
        f"{case_id}/damage_check", _first_fails_then(finding("damage as estimated"), restarted)
    )
    settings = scripted_settings(queue, stack.sandbox_url, stack.model.server)
    log = tmp_path / "worker.log"
    env = os.environ | {
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal.client.namespace,
        "CASEWORK_TASK_QUEUE": queue,
        "CASEWORK_SANDBOX_URL": stack.sandbox_url,
        "CASEWORK_MODEL": settings.model or "",
        "CASEWORK_LLM_API_BASE": settings.llm_api_base or "",
        "CASEWORK_LLM_API_KEY": SCRIPTED_API_KEY,
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("ab") as out:
        # The real worker as a process of its own, with the test's agents declared.
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import tests.specialists_support, casework.worker as w; w.main()",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parent.parent,
        )
    try:

        async def polling() -> bool | None:
            assert worker.poll() is None, log.read_text()
            return True if "worker polling task queue" in log.read_text() else None

        await eventually(polling, what="the worker process to poll its queue", timeout=60)
        handle = await temporal.client.start_workflow(
            AgentRegionWorkflow.run,
            coordinator_input(case_id),
            id=f"region-{case_id}",
            task_queue=queue,
        )

        async def mid_delegation() -> bool | None:
            coverage = temporal.client.get_workflow_handle(f"region-{case_id}-coverage_check-1")
            try:
                done = (await coverage.describe()).status is WorkflowExecutionStatus.COMPLETED
            except RPCError as error:
                if error.status is RPCStatusCode.NOT_FOUND:
                    return None
                raise
            damage = stack.model.requests_for(f"{case_id}/damage_check")
            return True if done and damage else None

        await eventually(mid_delegation, what="one specialist done, the other's call failed")
        # Between the failed attempt and its retry: nothing runs, the worker just dies.
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert len(stack.model.requests_for(f"{case_id}/damage_check")) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)

    async with running_worker(temporal.client, settings):
        restarted.set()
        result = await handle.result()

    assert result.outcome is RegionOutcome.ANSWERED, result.reason
    assert [r.result.output for r in result.specialists] == [
        {"finding": "covered", "confidence": 0.8},
        {"finding": "damage as estimated", "confidence": 0.8},
    ]
    assert result.model_calls == 4
    # No completed model call was made again: the coordinator's first turn and the finished
    # specialist's one call are in history; only the call that never completed was retried.
    assert len(stack.model.requests_for(f"{case_id}/coordinator")) == 2
    assert len(stack.model.requests_for(f"{case_id}/coverage_check")) == 1
    assert len(stack.model.requests_for(f"{case_id}/damage_check")) == 2
