"""The lead-routing process with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP, ``llm.propose`` through
litellm), the FastAPI+SQLite sandbox and a scripted OpenAI-compatible model, all on loopback.
Each test checks what the case did to the CRM, not only what it returned.

The sandbox is shared by the module's tests and routing reads every AE of a territory, so each
test routes in a territory of its own (emea, apac, na) to stay independent of the others.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.crm_sales import Account, Firmographics
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseStatus
from casework.case.tasks import HumanTask
from casework.testing.scripted_llm import (
    SCRIPTED_MODEL,
    ScriptedReply,
    case_data,
    scripted_llm_server,
)
from casework.testing.signing import decide
from casework.testing.temporal import eventually, scripted_worker
from policies.lead_routing import RoutingRule
from tests.lead_routing_support import (
    CrmSales,
    ScriptedLeadAnalyst,
    make_ae,
    make_lead,
    new_lead_id,
    ran_at_once,
    read_json,
)
from workflows.lead_routing import (
    LeadRoutingInput,
    LeadRoutingResult,
    LeadRoutingWorkflow,
    LeadStatus,
    Outcome,
)

LeadHandle = WorkflowHandle[LeadRoutingWorkflow, LeadRoutingResult]

CONFIDENT_PURCHASE = ScriptedReply(
    content=read_json("purchase", 0.9), prompt_tokens=210, completion_tokens=35
)


# -- the stack, once per module -------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyst() -> Iterator[ScriptedLeadAnalyst]:
    with scripted_llm_server() as server:
        yield ScriptedLeadAnalyst(server)


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, analyst: ScriptedLeadAnalyst
) -> AsyncIterator[str]:
    async with scripted_worker(
        temporal.client, sandbox_url, analyst.server, "lead-integration"
    ) as queue:
        yield queue


@pytest.fixture
async def crm(sandbox_url: str) -> AsyncIterator[CrmSales]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        client = CrmSales(http)
        yield client
        # A test that fails before its fault is used up must not fault the next test's case.
        await client.clear_faults()


# -- helpers --------------------------------------------------------------------------------------


async def start_case(temporal: WorkflowEnvironment, task_queue: str, lead_id: str) -> LeadHandle:
    return await temporal.client.start_workflow(
        LeadRoutingWorkflow.run,
        LeadRoutingInput(lead_id=lead_id),
        id=LeadRoutingWorkflow.case_id(lead_id),
        task_queue=task_queue,
    )


async def seed_company(crm: CrmSales, lead_id: str, *, country: str, **lead_fields: str) -> str:
    """A software company of 500 people behind a domain of its own, and its lead."""
    domain = f"{lead_id.lower()}.example"
    await crm.create_firmographics(
        Firmographics(
            domain=domain,
            company_name=f"Company of {lead_id}",
            industry="software",
            employees=500,
            country=country,
        )
    )
    await crm.create_lead(
        make_lead(
            lead_id,
            domain=domain,
            email=f"anna@{domain}",
            company=f"Company of {lead_id}",
            country=country,
            **lead_fields,
        )
    )
    return domain


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


# -- the tests ------------------------------------------------------------------------------------


async def test_confident_lead_completes_straight_through_with_no_human(
    temporal: WorkflowEnvironment,
    task_queue: str,
    crm: CrmSales,
    analyst: ScriptedLeadAnalyst,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await crm.create_ae(make_ae("AE-IT-E1", 6, 10))
    await crm.create_ae(make_ae("AE-IT-E2", 3, 10))
    lead_id = new_lead_id("A")
    domain = await seed_company(crm, lead_id, country="DE")
    analyst.answer(lead_id, CONFIDENT_PURCHASE)

    started = time.monotonic()
    handle = await start_case(temporal, task_queue, lead_id)
    result = await handle.result()
    elapsed = time.monotonic() - started
    described = await handle.describe()
    assert described.close_time is not None
    in_temporal = (described.close_time - described.start_time).total_seconds()
    with capsys.disabled():
        print(
            f"\n  straight-through lead case {handle.id}: {result.status} to {result.ae_id} in "
            f"{elapsed:.2f}s wall-clock from start to result ({in_temporal:.2f}s from start to "
            "close in Temporal; dev server, real worker, sandbox, scripted model, no human)"
        )

    assert (result.status, result.outcome, result.decided_by) == (
        LeadStatus.ROUTED,
        Outcome.STRAIGHT_THROUGH,
        "policy",
    )
    assert (result.ae_id, result.routing_rule, result.confidence) == (
        "AE-IT-E2",
        RoutingRule.TERRITORY,
        0.95,
    )
    # What the CRM now holds: the lead with its AE, the AE one lead busier, one first touch.
    lead = await crm.lead(lead_id)
    assert (lead["status"], lead["owner_ae_id"]) == ("assigned", "AE-IT-E2")
    assert (await crm.ae("AE-IT-E2")).current_load == 4
    (message,) = await crm.messages(lead_id)
    assert (message.ae_id, message.to, message.status) == ("AE-IT-E2", f"anna@{domain}", "queued")
    assert message.message_id == result.first_touch_message_id
    # No human in the loop: no task opened, nobody notified, no durable timer waited on.
    events = await audit(handle)
    assert AuditKind.TASK_OPENED not in [event.kind for event in events]
    assert await crm.notifications(handle.id) == []
    assert described.status is WorkflowExecutionStatus.COMPLETED
    # The three lookups ran at once, and the model read the lead as data through litellm.
    assert await ran_at_once(handle)
    (request,) = analyst.requests_for(lead_id)
    sent = case_data(request)
    assert sent is not None and sent["lead"]["message"].startswith("We need pricing")
    assert "email" not in sent["lead"]
    (proposal,) = [event for event in events if event.kind is AuditKind.AGENT_PROPOSAL]
    assert (proposal.data["usage"]["model"], proposal.data["usage"]["prompt_tokens"]) == (
        SCRIPTED_MODEL,
        210,
    )


async def test_existing_account_is_routed_to_its_owner(
    temporal: WorkflowEnvironment, task_queue: str, crm: CrmSales, analyst: ScriptedLeadAnalyst
) -> None:
    # The owner is at capacity, so no territory routing would ever pick them.
    await crm.create_ae(make_ae("AE-IT-OWNER", 12, 12))
    lead_id = new_lead_id("B")
    domain = await seed_company(crm, lead_id, country="DE")
    await crm.create_account(
        Account(account_id=f"ACC-{lead_id}", name="Owned", domain=domain, owner_ae_id="AE-IT-OWNER")
    )
    analyst.answer(lead_id, CONFIDENT_PURCHASE)

    result = await (await start_case(temporal, task_queue, lead_id)).result()

    assert (result.status, result.ae_id, result.routing_rule) == (
        LeadStatus.ROUTED,
        "AE-IT-OWNER",
        RoutingRule.ACCOUNT_OWNER,
    )
    lead = await crm.lead(lead_id)
    assert (lead["owner_ae_id"], lead["account_id"]) == ("AE-IT-OWNER", f"ACC-{lead_id}")
    assert (await crm.ae("AE-IT-OWNER")).current_load == 13


async def test_unsure_lead_waits_for_sales_ops_with_the_crm_untouched(
    temporal: WorkflowEnvironment, task_queue: str, crm: CrmSales, analyst: ScriptedLeadAnalyst
) -> None:
    await crm.create_ae(make_ae("AE-IT-A1", 2, 10, territory="apac"))
    lead_id = new_lead_id("C")
    await seed_company(crm, lead_id, country="AU", message="Send me a brochure maybe.")
    analyst.answer(lead_id, ScriptedReply(content=read_json("unclear", 0.4)))

    handle = await start_case(temporal, task_queue, lead_id)

    async def task() -> HumanTask | None:
        return await handle.query("open_task", result_type=HumanTask | None)

    opened = await eventually(task, what=f"{handle.id} to open a review task")
    assert opened.role == "sales_ops"
    lead = await crm.lead(lead_id)
    assert (lead["status"], lead["owner_ae_id"]) == ("new", None)
    assert (await crm.ae("AE-IT-A1")).current_load == 2
    assert await crm.messages(lead_id) == []
    (asked,) = await crm.notifications(handle.id)
    assert asked.to == "paul@example.com"

    receipt = await decide(
        handle, approver="paul", action="approve", comment="real team, worth a call"
    )
    result = await handle.result()

    assert receipt.task_id == opened.task_id
    assert (result.status, result.outcome, result.decided_by, result.ae_id) == (
        LeadStatus.ROUTED,
        Outcome.APPROVED,
        "paul",
        "AE-IT-A1",
    )
    assert (await crm.lead(lead_id))["owner_ae_id"] == "AE-IT-A1"
    assert len(await crm.messages(lead_id)) == 1


async def test_first_touch_failing_for_good_unassigns_the_lead_in_the_crm(
    temporal: WorkflowEnvironment, task_queue: str, crm: CrmSales, analyst: ScriptedLeadAnalyst
) -> None:
    await crm.create_ae(make_ae("AE-IT-N1", 4, 10, territory="na"))
    lead_id = new_lead_id("D")
    await seed_company(crm, lead_id, country="US")
    analyst.answer(lead_id, CONFIDENT_PURCHASE)
    # Every attempt the tool retry policy allows (4) is refused: the first touch fails for good.
    await crm.inject_fault(
        method="POST", path=f"/crm/leads/{lead_id}/messages", count=4, status=503
    )

    handle = await start_case(temporal, task_queue, lead_id)
    result = await handle.result()

    assert (result.status, result.outcome, result.ae_id) == (
        CaseStatus.FAILED_COMPENSATED,
        Outcome.FAILED_COMPENSATED,
        None,
    )
    assert result.compensated == [f"lead {lead_id} unassigned from AE-IT-N1"]
    lead = await crm.lead(lead_id)
    assert (lead["status"], lead["owner_ae_id"]) == ("new", None)
    assert [entry["action"] for entry in lead["history"]] == ["created", "assigned", "unassigned"]
    assert (await crm.ae("AE-IT-N1")).current_load == 4
    assert await crm.messages(lead_id) == []
    (told,) = await crm.notifications(handle.id)
    assert told.subject.endswith("could not be routed")


async def test_two_cases_for_one_lead_send_one_first_touch(
    temporal: WorkflowEnvironment, task_queue: str, crm: CrmSales, analyst: ScriptedLeadAnalyst
) -> None:
    """Issue 21, Why 7: two lead cases for one lead sent two first-touch e-mails."""
    await crm.create_ae(make_ae("AE-IT-TWICE", 2, 10))
    lead_id = new_lead_id("TWICE")
    domain = await seed_company(crm, lead_id, country="DE")
    await crm.create_account(
        Account(account_id=f"ACC-{lead_id}", name="Owned", domain=domain, owner_ae_id="AE-IT-TWICE")
    )
    analyst.answer(lead_id, CONFIDENT_PURCHASE)
    # Both cases have read the lead as new before either assigns it.
    await crm.inject_fault(
        method="POST", path=f"/crm/leads/{lead_id}/assign", count=2, status=0, delay_seconds=2
    )
    first = await start_case(temporal, task_queue, lead_id)
    second: LeadHandle = await temporal.client.start_workflow(
        LeadRoutingWorkflow.run,
        LeadRoutingInput(lead_id=lead_id),
        id=f"{LeadRoutingWorkflow.case_id(lead_id)}-2",
        task_queue=task_queue,
    )
    results = [await first.result(), await second.result()]

    (routed,) = [r for r in results if r.outcome is Outcome.STRAIGHT_THROUGH]
    (left,) = [r for r in results if r.outcome is not Outcome.STRAIGHT_THROUGH]
    assert (left.status, left.outcome, left.ae_id) == (
        CaseStatus.SUPERSEDED,
        Outcome.TAKEN_ELSEWHERE,
        "AE-IT-TWICE",
    )
    assert left.first_touch_message_id is None and left.compensated == []
    (message,) = await crm.messages(lead_id)
    assert (message.message_id, message.status) == (routed.first_touch_message_id, "queued")
    lead = await crm.lead(lead_id)
    assert (lead["status"], lead["owner_ae_id"]) == ("assigned", "AE-IT-TWICE")
    assert (await crm.ae("AE-IT-TWICE")).current_load == 3
