"""Row 4: model calls and tokens per case, casework against an agent that decides every step.

The model is the scripted OpenAI-compatible server from ``casework.testing.scripted_llm``;
litellm talks to it over HTTP exactly as to a provider. It answers as casework's offline
stand-in would (so the cases take the demo's routes), and it reports token usage computed from
what it was really sent: ``ceil(characters / 4)`` of the JSON messages and tool schemas for the
prompt and of the answer for the completion. That is an approximation of a tokenizer (English
prose runs about 4 characters a token; JSON a little less), applied the same way to both sides
of the ratio.

The case mix is the demo's: five invoice cases, four tickets and five insurance claims, seeded
with the demo's own seeding code; the harness plays every person (the demo's approvers, then
approves what the demo leaves waiting) so each case runs to its end (a paid claim to its recovery
watch) and its whole history can be replayed by the baseline (see ``bench/baseline.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.agents import incident_review
from activities.agents import insurance_claim as claim
from activities.agents import invoice_exception as invoice
from activities.agents import ticket_triage as triage
from bench.baseline import (
    BASELINE_TASK_QUEUE,
    AgentEverywhere,
    BaselineInput,
    BaselineResult,
    Step,
    replay_step,
)
from bench.infra import progress
from casework.agents import registry
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.tools import FINAL_ANSWER
from casework.case import CaseState
from casework.case.tasks import TaskDecision
from casework.cli.demo import demo_approver, next_batch, seed_scenarios, start_cases
from casework.cli.seeding import DemoRun
from casework.config import Settings
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedReply, case_data
from casework.testing.signing import signed, signed_act
from demos import insurance_claim as demo_claim
from demos import invoice_exception as demo_invoice
from demos import ticket_triage as demo_triage
from workflows.ticket_triage import Acknowledgement

CHARS_PER_TOKEN = 4
CASE_DEADLINE_SECONDS = 120


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Responder:
    """The scripted model: answers like casework's stand-in, and tallies what each call cost."""

    plans: dict[str, list[Step]] = field(default_factory=dict)
    """Baseline case id -> the steps its model calls pick, in order."""
    usage: dict[tuple[str, str], Usage] = field(default_factory=lambda: defaultdict(Usage))
    """(side, case id) -> what its model calls cost; side is ``casework`` or ``baseline``."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        data = case_data(body) or {}
        if "baseline_case" in data:
            side, case_id = "baseline", data["baseline_case"]
            content, calls = self._baseline_turn(case_id, body["messages"])
        elif "claim" in data:
            # The coordinator and its specialists share the claim's case data: one case.
            side, case_id = "casework", f"insurance-claim-{data['claim']['claim_id']}"
            turn = claim.team_stand_in_turn([_chat_message(m) for m in body["messages"]])
            content = turn.content
            calls = [call.wire() for call in turn.tool_calls]
        elif "incident" in data:
            # The post-incident review a severity-1 triage case starts is a case of its own,
            # outside the mix: answered as its stand-in would, and not counted.
            turn = incident_review.stand_in_turn([_chat_message(m) for m in body["messages"]])
            return ScriptedReply(
                content=turn.content, tool_calls=[c.wire() for c in turn.tool_calls] or None
            )
        elif "ticket" in data:
            side, case_id = "casework", f"ticket-triage-{data['ticket']['ticket_id']}"
            turn = triage.stand_in_turn([_chat_message(m) for m in body["messages"]])
            content = turn.content
            calls = [call.wire() for call in turn.tool_calls]
        else:
            side, case_id = "casework", f"invoice-exception-{data['invoice']['invoice_id']}"
            proposal = registry.get(invoice.INVOICE_PROPOSAL).stand_in(data)
            content, calls = proposal.model_dump_json(), []
        prompt = tokens(json.dumps(body["messages"]) + json.dumps(body.get("tools", [])))
        completion = tokens((content or "") + json.dumps(calls))
        with self._lock:
            tally = self.usage[(side, case_id)]
            tally.calls += 1
            tally.prompt_tokens += prompt
            tally.completion_tokens += completion
        return ScriptedReply(
            content=content,
            tool_calls=calls or None,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )

    def _baseline_turn(
        self, case_id: str, messages: list[dict[str, Any]]
    ) -> tuple[None, list[dict[str, Any]]]:
        number = sum(1 for m in messages if m["role"] == "assistant")
        step = self.plans[case_id][number]
        call = ToolCall(id=f"call-{number + 1}", name=step.tool, arguments=step.arguments)
        return None, [call.wire()]

    def totals(self, side: str, prefix: str = "") -> tuple[int, Usage]:
        """How many cases of ``side`` (whose id starts with ``prefix``) called the model, and
        what they spent together."""
        total, cases = Usage(), 0
        for (who, case_id), usage in self.usage.items():
            if who == side and case_id.startswith(prefix):
                cases += 1
                total.calls += usage.calls
                total.prompt_tokens += usage.prompt_tokens
                total.completion_tokens += usage.completion_tokens
        return cases, total


def _chat_message(wire: dict[str, Any]) -> ChatMessage:
    return ChatMessage(
        role=wire["role"],
        content=wire.get("content"),
        tool_calls=[
            ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
            for c in wire.get("tool_calls") or []
        ],
        tool_call_id=wire.get("tool_call_id"),
    )


# -- running the demo's case mix --------------------------------------------------------------


async def _run_case_mix(client: Client, sandbox_url: str, task_queue: str) -> list[str]:
    """Seed and run the demo's cases to their end; the ids of the cases."""
    settings = Settings(task_queue=task_queue, sandbox_url=sandbox_url)
    case_mix = [demo_invoice.DEMO, demo_triage.DEMO, demo_claim.DEMO]
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=20.0) as sandbox:
        run = DemoRun(client, settings, sandbox, await next_batch(sandbox, case_mix))
        cases = await start_cases(run, await seed_scenarios(run, case_mix))
    await asyncio.gather(
        *(_play_people(handle, scenario.decisions) for _, scenario, handle in cases)
    )
    return [handle.id for _, _, handle in cases]


async def _play_people(handle: WorkflowHandle, decisions: Mapping[str, TaskDecision]) -> None:
    """Decide as the demo does; approve what the demo leaves waiting; acknowledge pages."""
    deadline = time.monotonic() + CASE_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        state = await handle.query("state", result_type=CaseState)
        if state.status == "paid" and "fraud finding" in (state.waiting_on or ""):
            return  # a paid claim rests under its recovery watch: all its steps are done
        task = state.open_task
        if task is not None:
            choice = decisions.get(task.role) or TaskDecision(
                approver=demo_approver(task.role), action="approve", comment="benchmark"
            )
            await handle.execute_update("decide", signed(handle.id, choice))
        elif state.waiting_on and "acknowledge" in state.waiting_on:
            ack = signed_act(handle.id, "acknowledge", Acknowledgement(responder="ivy"), "ivy")
            await handle.execute_update("acknowledge", ack)
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{handle.id} did not finish within {CASE_DEADLINE_SECONDS}s")


# -- the baseline's plan, from casework's histories ---------------------------------------------


async def _executed_steps(client: Client, workflow_id: str) -> list[tuple[Any, Step]]:
    """(time, step) for each activity the workflow ran, with its recorded input and result."""
    try:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError:
        return []  # no agent region for this case
    scheduled: dict[int, tuple[Any, str, str]] = {}
    results: dict[int, str] = {}
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            payload = attrs.input.payloads[0].data.decode() if attrs.input.payloads else "{}"
            scheduled[event.event_id] = (
                event.event_time.ToDatetime(),
                attrs.activity_type.name,
                payload,
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs_c = event.activity_task_completed_event_attributes
            payloads = attrs_c.result.payloads
            results[attrs_c.scheduled_event_id] = payloads[0].data.decode() if payloads else "null"
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            attrs_f = event.activity_task_failed_event_attributes
            results[attrs_f.scheduled_event_id] = f"error: {attrs_f.failure.message}"
    steps = []
    for event_id, (at, name, arguments) in scheduled.items():
        result = results.get(event_id, "error: no result")
        step = _as_baseline_step(name, arguments, result)
        if step is not None:
            steps.append((at, step))
    return steps


def _as_baseline_step(name: str, arguments: str, result: str) -> Step | None:
    """A step of casework's history as the baseline's model must choose it; None if it is a
    model call that only asked for tools (each of those tools is a step of its own)."""
    if name == "llm.propose":
        output = json.loads(result)["output"]
        return Step(tool=FINAL_ANSWER, arguments=json.dumps(output), result="")
    if name == "llm.chat":
        calls = json.loads(result)["message"]["tool_calls"]
        final = [call for call in calls if call["name"] == FINAL_ANSWER]
        if not final:
            return None
        return Step(tool=FINAL_ANSWER, arguments=final[0]["arguments"], result="")
    return Step(tool=name, arguments=arguments, result=result)


async def _baseline_input(client: Client, case_id: str, task_queue: str) -> BaselineInput:
    steps = await _executed_steps(client, case_id) + await _executed_steps(
        client, f"{case_id}-agent"
    )
    # A claim's specialists are regions of their own; the baseline's one agent does their steps.
    for number, specialist in enumerate(claim.SPECIALISTS, start=1):
        steps += await _executed_steps(client, f"{case_id}-agent-{specialist.name}-{number}")
    steps.sort(key=lambda pair: pair[0])
    # The case data each design's agent starts from: the triage agent gets the ticket, the
    # invoice analyst the invoice id (the baseline fetches the rest itself, step by step).
    if case_id.startswith("ticket-triage-"):
        ticket = json.loads(next(s.result for _, s in steps if s.tool == "itsm.get_ticket"))
        agent, output, prompt, task = (
            triage.TRIAGE_AGENT,
            triage.TRIAGE_PROPOSAL,
            triage.SYSTEM_PROMPT,
            triage.TASK,
        )
        context: dict[str, Any] = {"ticket": ticket}
    elif case_id.startswith("insurance-claim-"):
        agent, output, prompt, task = (
            claim.CLAIMS_COORDINATOR,
            claim.CLAIM_PROPOSAL,
            claim.COORDINATOR_PROMPT,
            claim.COORDINATOR_TASK,
        )
        context = {"claim_id": case_id.removeprefix("insurance-claim-")}
    else:
        agent, output, prompt, task = (
            invoice.INVOICE_ANALYST,
            invoice.INVOICE_PROPOSAL,
            invoice.SYSTEM_PROMPT,
            invoice.TASK,
        )
        context = {"invoice_id": case_id.removeprefix("invoice-exception-")}
    return BaselineInput(
        case_id=case_id,
        agent=agent,
        output=output,
        system_prompt=prompt,
        task=task,
        context=context,
        steps=[step for _, step in steps],
        llm_task_queue=task_queue,
    )


@dataclass
class Economy:
    cases: int
    by_type: dict[str, dict[str, float]]
    casework: dict[str, float]
    baseline: dict[str, float]

    @property
    def calls_ratio(self) -> float:
        return self.casework["calls_per_case"] / self.baseline["calls_per_case"]

    @property
    def tokens_ratio(self) -> float:
        return self.casework["tokens_per_case"] / self.baseline["tokens_per_case"]


def _per_case(cases: int, usage: Usage) -> dict[str, float]:
    return {
        "cases": cases,
        "calls_per_case": usage.calls / cases,
        "prompt_tokens_per_case": usage.prompt_tokens / cases,
        "completion_tokens_per_case": usage.completion_tokens / cases,
        "tokens_per_case": usage.tokens / cases,
    }


async def measure_economy(
    client: Client, sandbox_url: str, task_queue: str, server: ScriptedLlmServer
) -> Economy:
    responder = Responder()
    server.responder = responder
    progress("running the demo's case mix (5 invoices, 4 tickets, 5 claims) on the scripted model")
    case_ids = await _run_case_mix(client, sandbox_url, task_queue)
    inputs = [await _baseline_input(client, case_id, task_queue) for case_id in case_ids]
    for request in inputs:
        responder.plans[request.case_id] = request.steps
    progress("running the same cases with an agent deciding every step")
    async with Worker(
        client,
        task_queue=BASELINE_TASK_QUEUE,
        workflows=[AgentEverywhere],
        activities=[replay_step],
    ):
        results = await asyncio.gather(
            *(
                client.execute_workflow(
                    AgentEverywhere.run,
                    request,
                    id=f"bench-baseline-{request.case_id}",
                    task_queue=BASELINE_TASK_QUEUE,
                    result_type=BaselineResult,
                )
                for request in inputs
            )
        )
    # The workflow's own tally (from the usage litellm parsed) must agree with the server's.
    _, baseline_total = responder.totals("baseline")
    if sum(r.model_calls for r in results) != baseline_total.calls:
        raise RuntimeError("baseline model calls: workflow and server disagree")
    by_type: dict[str, dict[str, float]] = {}
    for prefix in ("invoice-exception-", "ticket-triage-", "insurance-claim-"):
        label = prefix.rstrip("-")
        n, casework_usage = responder.totals("casework", prefix)
        m, baseline_usage = responder.totals("baseline", prefix)
        by_type[label] = {
            **{f"casework_{k}": v for k, v in _per_case(n, casework_usage).items()},
            **{f"baseline_{k}": v for k, v in _per_case(m, baseline_usage).items()},
        }
    n, casework_total = responder.totals("casework")
    m, baseline_total = responder.totals("baseline")
    if n != len(case_ids) or m != len(case_ids):
        raise RuntimeError(f"expected {len(case_ids)} cases on each side, got {n} and {m}")
    return Economy(
        cases=len(case_ids),
        by_type=by_type,
        casework=_per_case(n, casework_total),
        baseline=_per_case(m, baseline_total),
    )
