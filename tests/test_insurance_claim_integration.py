"""The insurance claim with every real part running together.

A Temporal CLI dev server, the real worker (the claim systems over HTTP, ``llm.chat`` through
litellm), the FastAPI+SQLite sandbox and a scripted OpenAI-compatible model, all on loopback.
The coordinator delegates to its three specialists for real: each is a child agent region whose
model calls go through litellm to the scripted server, which answers each agent by its system
prompt, turn by turn. One test runs a worker with no model at all: the offline stand-ins drive
coordinator and specialists through the same delegation. Each test checks what the case did to
the systems of record: the payout ledger, the policy's claims register, the letters.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.agents.insurance_claim import (
    CLAIM_PROPOSAL,
    FRAUD_ASSESSMENT,
    SPECIALIST_TASKS,
    TEAM,
)
from casework.agents.llm import STAND_IN_MODEL
from casework.agents.region import RegionOutcome
from casework.audit import AuditKind
from casework.case import CaseState
from casework.cli.demo import seed_scenarios, start_cases
from casework.cli.seeding import DemoRun
from casework.config import Settings
from casework.testing.cases import audit, events_of, open_task
from casework.testing.scripted_llm import (
    ScriptedModel,
    ScriptedReply,
    case_value,
    scripted_llm_server,
)
from casework.testing.signing import decide
from casework.testing.temporal import eventually, scripted_settings
from casework.worker import running_worker
from demos.insurance_claim import (
    DEMO,
    SMALL,
    MotorClaim,
    report_fraud,
    seed_benchmarks,
    seed_claim,
)
from reliability.drivers.insurance_claim import (
    DRIVER,
    agent_output,
    stand_in_reply,
)
from workflows.insurance_claim import (
    ClaimStatus,
    InsuranceClaimInput,
    InsuranceClaimResult,
    InsuranceClaimWorkflow,
    Outcome,
)

ClaimHandle = WorkflowHandle[InsuranceClaimWorkflow, InsuranceClaimResult]
AGENTS = [agent.output for agent in TEAM]
_numbers = itertools.count(uuid.uuid4().int % 900_000 + 100_000)


class ScriptedClaimAgents(ScriptedModel):
    """The scripted model, one script per claim and agent: ``script(f"{claim}/{output}")``."""

    def key_of(self, chat_request: dict[str, Any]) -> str | None:
        claim = case_value(chat_request, "claim", "claim_id")
        return f"{claim}/{agent_output(chat_request)}" if claim else None


def final(**answer: Any) -> ScriptedReply:
    return ScriptedReply(
        tool_calls=[
            {
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {"name": "final_answer", "arguments": json.dumps(answer)},
            }
        ]
    )


@dataclass
class Stack:
    client: Client
    model: ScriptedClaimAgents
    sandbox: httpx.AsyncClient
    scripted_queue: str
    offline_queue: str

    async def claim(self, facts: MotorClaim) -> str:
        return await seed_claim(self.sandbox, next(_numbers), facts)

    def script(self, claim_id: str, **turns: Any) -> None:
        """Every agent answers like its own stand-in unless ``turns`` (by output) say else."""
        for output in AGENTS:
            script = turns.get(output)
            if isinstance(script, list):
                self.model.script(f"{claim_id}/{output}", *script)
            else:
                self.model.answer(f"{claim_id}/{output}", script or stand_in_reply)

    async def start(self, claim_id: str, *, offline: bool = False) -> ClaimHandle:
        request = InsuranceClaimInput(claim_id=claim_id)
        return await self.client.start_workflow(
            InsuranceClaimWorkflow.run,
            request,
            id=InsuranceClaimWorkflow.case_id_for(request),
            task_queue=self.offline_queue if offline else self.scripted_queue,
        )

    async def get(self, path: str) -> Any:
        response = await self.sandbox.get(path)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
async def stack(temporal: WorkflowEnvironment, sandbox_url: str) -> AsyncIterator[Stack]:
    label = uuid.uuid4().hex
    scripted_queue, offline_queue = f"claims-scripted-{label}", f"claims-offline-{label}"
    with scripted_llm_server() as server:
        async with (
            httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as sandbox,
            running_worker(temporal.client, scripted_settings(scripted_queue, sandbox_url, server)),
            # No model configured: the offline stand-ins answer, as in `make demo`.
            running_worker(
                temporal.client, Settings(task_queue=offline_queue, sandbox_url=sandbox_url)
            ),
        ):
            await seed_benchmarks(sandbox)
            yield Stack(
                temporal.client, ScriptedClaimAgents(server), sandbox, scripted_queue, offline_queue
            )


async def children_started(client: Client, workflow_id: str) -> list[list[str]]:
    """The child workflows a workflow started, grouped by the workflow task that started them."""
    groups: list[list[str]] = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            groups.append([])
        elif event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            groups[-1].append(
                event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            )
    return [group for group in groups if group]


async def wait_for_status(handle: ClaimHandle, status: str) -> None:
    async def reached() -> bool | None:
        state = await handle.query("state", result_type=CaseState)
        return state.status == status or None

    await eventually(reached, what=f"{handle.id} to be {status}", timeout=90)


# -- the tests ----------------------------------------------------------------------------------


async def test_three_specialists_in_parallel_then_paid_once_then_recovered_on_fraud(
    stack: Stack,
) -> None:
    claim_id = await stack.claim(MotorClaim("collision", "Rear-ended at a junction.", SMALL))
    stack.script(claim_id)

    handle = await stack.start(claim_id)
    await wait_for_status(handle, ClaimStatus.PAID)

    # All three specialists were started by one workflow task of the coordinator's region.
    region = f"{handle.id}-agent"
    assert await children_started(stack.client, region) == [
        [f"{region}-{name}-{n}" for n, name in enumerate(SPECIALIST_TASKS, start=1)]
    ]
    # Each agent's model calls went through litellm to the scripted server.
    for output in AGENTS:
        assert len(stack.model.requests_for(f"{claim_id}/{output}")) == 2, output
    # The fraud analyst read similar claims from the sandbox's MCP server, a real round trip.
    fraud = stack.client.get_workflow_handle(f"{region}-fraud_analyst-3")
    mcp_calls = [
        event.summary
        for event in events_of(await audit(fraud), AuditKind.TOOL_CALL)
        if event.data.get("activity") == "mcp.call_tool"
    ]
    assert [summary.split("(")[0] for summary in mcp_calls] == ["sandbox.find_similar_claims"]
    (payout,) = await stack.get(f"/claims/payouts/by-claim/{claim_id}")
    # 1,380.00 estimated, held to the benchmarks: 1,350.00; less the 250.00 deductible.
    assert (payout["amount"], payout["status"]) == ("1100.00", "paid")
    assert payout["idempotency_key"] == f"{handle.id}:payout"
    policy_number = claim_id.replace("CLM-", "POL-")
    registered = await stack.get(f"/policy-admin/policies/{policy_number}/claims/{claim_id}")
    assert (registered["status"], registered["amount_paid"]) == ("paid", "1100.00")

    finding = await report_fraud(stack.sandbox, handle, claim_id, "invoiced repairs never made")
    result = await handle.result()

    assert (result.outcome, result.status, result.decided_by) == (
        Outcome.RECOVERED_AFTER_FRAUD_FINDING,
        ClaimStatus.RECOVERED,
        "policy",
    )
    assert result.specialists == {name: "answered" for name in SPECIALIST_TASKS}
    assert f"recovered after fraud finding {finding}" in result.message
    (payout,) = await stack.get(f"/claims/payouts/by-claim/{claim_id}")
    assert payout["status"] == "reversed"
    registered = await stack.get(f"/policy-admin/policies/{policy_number}/claims/{claim_id}")
    assert registered["status"] == "reopened"
    # The reliability suite's reading of the same ledger: one payout, reversed; closed, reopened.
    ledger = await DRIVER.ledger(stack.sandbox, claim_id.removeprefix("CLM-"))
    assert (ledger.duplicates, ledger.reversals) == ([], {payout["payout_id"]: True})
    assert ledger.writes["register reopened"] == 1
    letters = [letter["subject"] for letter in await stack.get(f"/claims/{claim_id}/letters")]
    assert letters == [
        f"Your claim {claim_id} is paid",
        f"Your claim {claim_id}: we are recovering the payout",
    ]


async def test_a_coordinator_inflating_the_amount_gets_an_adjuster_who_cannot_pay_more(
    stack: Stack,
) -> None:
    claim_id = await stack.claim(MotorClaim("collision", "Scraped along a wall.", SMALL))
    lie = final(
        decision="pay",
        amount="9000.00",
        covered=True,
        fraud_flag=False,
        assessed_damage="9250.00",
        reasons=["the garage says so"],
        confidence=0.99,
    )
    stack.script(claim_id, **{CLAIM_PROPOSAL: [stand_in_reply, lie]})

    handle = await stack.start(claim_id)
    task = await open_task(handle, "an adjuster's task")
    assert (task.role, task.amount) == ("claims_adjuster", Decimal("1100.00"))
    assert "amount '9,000.00' (record): outside the benchmarked estimate" in task.summary
    await decide(handle, approver="quinn", action="approve", comment="paid what the records bear")
    await wait_for_status(handle, ClaimStatus.PAID)

    (payout,) = await stack.get(f"/claims/payouts/by-claim/{claim_id}")
    assert payout["amount"] == "1100.00"
    await handle.cancel()


async def test_a_specialist_out_of_budget_and_refused_a_tool_leaves_the_claim_to_an_adjuster(
    stack: Stack,
) -> None:
    claim_id = await stack.claim(MotorClaim("collision", "Hit a bollard.", SMALL))
    policy_number = claim_id.replace("CLM-", "POL-")
    # The fraud analyst reaches for a tool it is not allowed, then keeps looking things up.
    peek = ScriptedReply(
        tool_calls=[
            {
                "id": "call_peek",
                "type": "function",
                "function": {
                    "name": "get_insurance_policy",
                    "arguments": json.dumps({"policy_number": policy_number}),
                },
            }
        ]
    )
    again = ScriptedReply(
        tool_calls=[
            {
                "id": f"call_{n}",
                "type": "function",
                "function": {
                    "name": "get_prior_claims",
                    "arguments": json.dumps({"holder_id": f"H-{n}"}),
                },
            }
            for n in range(2)
        ]
    )
    stack.script(claim_id, **{FRAUD_ASSESSMENT: [peek, again, again, again]})

    handle = await stack.start(claim_id)
    task = await open_task(handle, "an adjuster's task")
    assert task.role == "claims_adjuster"
    # The coordinator went on without the fraud finding, less sure of itself.
    assert "coordinator confidence 0.40 is below 0.85" in task.summary
    fraud_region = stack.client.get_workflow_handle(f"{handle.id}-agent-fraud_analyst-3")
    refused = events_of(await audit(fraud_region), AuditKind.TOOL_REFUSED)
    assert any("get_insurance_policy" in event.summary for event in refused)
    ended = events_of(
        await audit(stack.client.get_workflow_handle(f"{handle.id}-agent")),
        AuditKind.DELEGATION_ENDED,
    )
    assert any(
        "budget" in event.summary and event.data.get("specialist") == "fraud_analyst"
        for event in ended
    ), [event.summary for event in ended]
    await decide(handle, approver="quinn", action="reject", comment="ask for photos first")
    result = await handle.result()
    assert result.specialists["fraud_analyst"] == RegionOutcome.BUDGET_EXHAUSTED.value
    assert result.outcome is Outcome.REJECTED_BY_ADJUSTER


async def test_offline_the_stand_ins_delegate_for_real_and_a_flood_claim_is_denied(
    stack: Stack,
) -> None:
    claim_id = await stack.claim(MotorClaim("flood", "Flooded overnight by the river.", SMALL))

    handle = await stack.start(claim_id, offline=True)
    result = await handle.result()

    assert (result.outcome, result.status) == (Outcome.DENIED_NOT_COVERED, ClaimStatus.DENIED)
    assert result.specialists == {name: "answered" for name in SPECIALIST_TASKS}
    assert stack.model.requests_for(f"{claim_id}/{CLAIM_PROPOSAL}") == []
    trail = await audit(handle)
    (region,) = events_of(trail, AuditKind.AGENT_REGION_ENDED)
    assert region.data["model_usage"]["models"] == [STAND_IN_MODEL]
    (letter,) = await stack.get(f"/claims/{claim_id}/letters")
    assert "excluded: flood, however caused" in letter["body"]


async def test_the_demo_claims_end_or_wait_as_the_demo_says_with_the_offline_stand_ins(
    stack: Stack,
) -> None:
    """``casework demo``'s claims, seeded, started and played as it does, on the offline worker
    (no model configured, as ``make demo`` runs)."""
    settings = Settings(task_queue=stack.offline_queue, sandbox_url=str(stack.sandbox.base_url))
    run = DemoRun(stack.client, settings, stack.sandbox, next(_numbers))
    seeded = await seed_scenarios(run, [DEMO])
    cases = await start_cases(run, seeded)
    await asyncio.gather(*(DEMO.play(run, scenario, handle) for _, scenario, handle in cases))

    outcomes = []
    for _, _, handle in cases:
        state = await handle.query("state", result_type=CaseState)
        tasks = " + ".join(f"awaiting {task.role}" for task in state.open_tasks)
        outcomes.append(tasks or state.status)
    assert outcomes == [scenario.expected for scenario in DEMO.scenarios]
    for _, _, handle in cases:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.cancel()
