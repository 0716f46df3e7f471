"""The invoice-exception workflow on the time-skipping test server, with systems faked by name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.agents.invoice_exception import Recommendation
from casework.audit import AuditEvent, AuditKind
from casework.case.tasks import HumanTask
from casework.testing.signing import decide, signed
from tests.fake_systems import FakeSystems, proposal, scenario
from workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
    Outcome,
)


@asynccontextmanager
async def case_worker(env: WorkflowEnvironment, systems: FakeSystems) -> AsyncIterator[str]:
    task_queue = f"test-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[InvoiceExceptionWorkflow],
        activities=systems.activities(),
    ):
        yield task_queue


async def start_case(
    env: WorkflowEnvironment, task_queue: str, invoice_id: str, submitted_by: str = "alice"
) -> WorkflowHandle[InvoiceExceptionWorkflow, InvoiceExceptionResult]:
    return await env.client.start_workflow(
        InvoiceExceptionWorkflow.run,
        InvoiceExceptionInput(invoice_id=invoice_id, submitted_by=submitted_by),
        id=f"{InvoiceExceptionWorkflow.case_id(invoice_id)}-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


async def open_task(handle: WorkflowHandle) -> HumanTask:
    """Wait until the case has opened a task, by asking it; returns that task."""
    for _ in range(200):
        task = await handle.query("open_task", result_type=HumanTask | None)
        if task is not None:
            return task
        await asyncio.sleep(0.05)
    raise AssertionError("the case never opened a task")


async def cancel(handle: WorkflowHandle) -> None:
    """Cancel and wait until the case has closed, while its worker still runs: a case left with
    a pending workflow task would stop the test server from skipping time for later tests."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


def kinds(events: list[AuditEvent]) -> list[AuditKind]:
    return [event.kind for event in events]


async def test_within_tolerance_and_confident_agent_is_auto_approved_and_paid(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-A1"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-A1")
        result = await handle.result()
        events = await audit(handle)

    assert result.outcome is Outcome.AUTO_APPROVED
    assert result.amount_paid == Decimal("3000.00")
    assert [p.amount for p in systems.payments.values()] == [Decimal("3000.00")]
    assert systems.invoice_statuses == ["paid"]
    assert result.policy.id == "invoice_exception" and len(result.policy.sha256) == 64
    assert kinds(events)[:2] == [AuditKind.CASE_STARTED, AuditKind.TOOL_CALL]
    for kind in (
        AuditKind.POLICY_LOADED,
        AuditKind.CONTEXT_RETRIEVED,
        AuditKind.AGENT_PROPOSAL,
        AuditKind.POLICY_DECISION,
        AuditKind.CASE_COMPLETED,
    ):
        assert kind in kinds(events)
    proposal_event = next(e for e in events if e.kind is AuditKind.AGENT_PROPOSAL)
    assert proposal_event.data["usage"]["prompt_tokens"] == 100
    assert proposal_event.data["proposal"]["confidence"] == 0.95
    decision_event = next(e for e in events if e.kind is AuditKind.POLICY_DECISION)
    assert decision_event.data["decision"]["policy"]["version"] == 3


async def test_case_data_reaches_the_agent_as_context_not_instructions(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-A2", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-A2")
        await open_task(handle)
        await cancel(handle)

    (request,) = systems.agent_requests
    assert request.context["invoice"]["invoice_id"] == "INV-A2"
    assert request.context["variance"]["within_tolerance"] is False
    assert "INV-A2" not in request.system_prompt


async def test_variance_goes_to_the_covering_tier_and_is_paid_once_approved(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-B1", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-B1")
        task = await open_task(handle)
        assert task.role == "ap_supervisor"
        assert task.eligible_roles == ["ap_supervisor", "finance_manager", "cfo"]
        assert "price variance" in task.summary
        receipt = await decide(handle, approver="bob", action="approve", comment="agreed surcharge")
        result = await handle.result()

    assert receipt.approver == "bob"
    assert result.outcome is Outcome.APPROVED
    assert result.decided_by == "bob"
    assert result.amount_paid == Decimal("3150.00")
    assert len(systems.payments) == 1
    assert any(n.to == "bob@example.com" for n in systems.notifications)


async def test_rejection_marks_the_invoice_rejected_and_pays_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-C1", quantity=400, invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-C1")
        task = await open_task(handle)
        assert task.role == "finance_manager"
        await decide(handle, approver="carol", action="reject", comment="no surcharge agreed")
        result = await handle.result()

    assert result.outcome is Outcome.REJECTED
    assert "no surcharge agreed" in result.message
    assert systems.payments == {}
    assert systems.invoice_statuses == ["rejected"]


async def test_approval_with_an_edited_amount_pays_that_amount(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-D1", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-D1")
        await open_task(handle)
        await decide(handle, approver="bob", action="approve", amount="3000.00")
        result = await handle.result()

    assert result.amount_paid == Decimal("3000.00")
    assert [p.amount for p in systems.payments.values()] == [Decimal("3000.00")]


@pytest.mark.parametrize(
    ("submitted_by", "decision", "reason"),
    [
        pytest.param(
            "alice",
            {"approver": "bob", "action": "approve"},
            "bob (ap_supervisor) may not decide this task; it needs one of: finance_manager, cfo",
            id="tier-too-low",
        ),
        pytest.param(
            "carol",
            {"approver": "carol", "action": "approve"},
            "carol submitted this case and may not decide it (segregation of duties)",
            id="submitter",
        ),
        pytest.param(
            "alice",
            {"approver": "alice", "action": "approve"},
            "alice (ap_clerk) may not decide this task",
            id="role-not-eligible",
        ),
        pytest.param(
            "alice",
            {"approver": "carol", "action": "aprove"},
            "action must be one of ['approve', 'reject'], got 'aprove'",
            id="unknown-action",
        ),
    ],
)
async def test_validator_refuses_decisions_with_a_reason(
    time_skipping_env: WorkflowEnvironment,
    submitted_by: str,
    decision: dict[str, str],
    reason: str,
) -> None:
    systems = FakeSystems(scenario("INV-E1", quantity=400, invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-E1", submitted_by=submitted_by)
        await open_task(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, **decision)
        events = await audit(handle)
        await cancel(handle)

    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "DecisionRefused"
    assert reason in cause.message
    # Refused before it reached history: nothing about it in the audit trail.
    assert AuditKind.HUMAN_DECISION not in kinds(events)


async def test_duplicate_decision_by_update_is_refused_once_the_task_is_decided(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-F1", invoice_price="31.50"), payment_gate=asyncio.Event())
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-F1")
        task = await open_task(handle)
        await decide(handle, approver="bob", action="approve")
        # The case is now paying (held at the gate), so it is still running but decided.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, approver="carol", action="reject", comment="again")
        with pytest.raises(WorkflowUpdateFailedError) as stale:
            await decide(handle, approver="carol", action="approve", task_id=task.task_id)
        systems.payment_gate.set()
        result = await handle.result()

    assert "there is no task awaiting a decision" in str(refused.value.cause) or (
        f"task {task.task_id} is no longer open (it is decided)" in str(refused.value.cause)
    )
    assert "no longer open" in str(stale.value.cause)
    assert result.decided_by == "bob"
    assert len(systems.payments) == 1


async def test_duplicate_decision_by_signal_is_recorded_and_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The payment waits until the second signal is in: it must find the case still running.
    systems = FakeSystems(scenario("INV-G1", invoice_price="31.50"), payment_gate=asyncio.Event())
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-G1")
        await open_task(handle)
        await handle.signal("decide", signed(handle.id, approver="bob", action="approve"))
        second = signed(handle.id, approver="carol", action="reject", comment="second")
        await handle.signal("decide", second)
        assert systems.payment_gate is not None
        systems.payment_gate.set()
        result = await handle.result()
        events = await audit(handle)

    assert result.outcome is Outcome.APPROVED and result.decided_by == "bob"
    assert len(systems.payments) == 1
    refused = [e for e in events if e.kind is AuditKind.DECISION_REFUSED]
    assert len(refused) == 1
    assert "no longer open" in refused[0].summary
    decided = [e for e in events if e.kind is AuditKind.HUMAN_DECISION]
    assert [e.data["decision"]["approver"] for e in decided] == ["bob"]


async def test_invalid_signal_is_recorded_and_the_task_stays_open(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-G2", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-G2")
        await open_task(handle)
        await handle.signal("decide", signed(handle.id, approver="alice", action="approve"))
        await handle.signal("decide", signed(handle.id, approver="bob", action="approve"))
        result = await handle.result()
        events = await audit(handle)

    assert result.decided_by == "bob"
    (refused,) = [e for e in events if e.kind is AuditKind.DECISION_REFUSED]
    assert "segregation of duties" in refused.summary


async def test_sla_escalates_tier_by_tier_then_puts_the_invoice_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-H1", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-H1")
        await open_task(handle)
        # Nobody answers: the time-skipping server fast-forwards 24h + 48h + 72h of SLAs.
        result = await handle.result()
        events = await audit(handle)

    assert result.outcome is Outcome.TIMED_OUT
    assert systems.invoice_statuses == ["on_hold"]
    assert systems.payments == {}
    escalations = [e for e in events if e.kind is AuditKind.TASK_ESCALATED]
    assert [(e.data["from_role"], e.data["to_role"]) for e in escalations] == [
        ("ap_supervisor", "finance_manager"),
        ("finance_manager", "cfo"),
    ]
    assert AuditKind.TASK_TIMED_OUT in kinds(events)
    opened = [e for e in events if e.kind is AuditKind.TASK_OPENED]
    assert [e.data["role"] for e in opened] == ["ap_supervisor", "finance_manager", "cfo"]
    assert any("on hold" in n.subject for n in systems.notifications)


async def test_escalated_task_is_decided_by_the_next_tier(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-H2", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-H2")
        first = await open_task(handle)
        await time_skipping_env.sleep(timedelta(hours=25))
        second = await open_task(handle)
        assert second.task_id != first.task_id
        assert second.role == "finance_manager"
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, approver="bob", action="approve")
        assert "may not decide this task" in str(refused.value.cause)
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()

    assert result.decided_by == "carol"
    assert result.outcome is Outcome.APPROVED


async def test_erp_failure_after_payment_reverses_the_payment(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-J1"), failing_statuses={"paid"})
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-J1")
        result = await handle.result()
        events = await audit(handle)

    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert result.status == "failed_compensated"
    (payment,) = systems.payments.values()
    assert payment.status == "reversed"
    assert [r.payment_id for r in systems.reversals] == [payment.payment_id]
    assert result.compensated == [f"payment {payment.payment_id} of 3,000.00 EUR reversed"]
    assert "locked by period close" in result.message
    (compensation,) = [e for e in events if e.kind is AuditKind.COMPENSATION]
    assert compensation.data == {"step": result.compensated[0], "ok": True}
    assert AuditKind.TOOL_FAILED in kinds(events)


async def test_agent_failure_routes_the_case_to_a_person(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    rejected = ApplicationError("bad api key", type="LlmRequestRejected", non_retryable=True)
    systems = FakeSystems(scenario("INV-K1"), agent_answer=rejected)
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-K1")
        task = await open_task(handle)
        assert "no agent proposal" in task.summary
        await decide(handle, approver="bob", action="approve")
        result = await handle.result()
        events = await audit(handle)

    assert result.outcome is Outcome.APPROVED
    assert AuditKind.AGENT_FAILED in kinds(events)


async def test_low_confidence_agent_needs_a_person_even_within_tolerance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-K2"), agent_answer=proposal(Recommendation.APPROVE, 0.5))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-K2")
        task = await open_task(handle)
        await cancel(handle)

    assert "confidence 0.50 is below 0.80" in task.summary


async def test_cancelled_case_says_nothing_was_left_half_done(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-L1", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-L1")
        await open_task(handle)
        await cancel(handle)
        events = await audit(handle)

    assert systems.payments == {}
    assert events[-1].kind is AuditKind.CASE_COMPLETED
    assert "nothing to undo" in events[-1].summary


@pytest.mark.parametrize(
    ("raw_input", "field"),
    [
        ({"submitted_by": "alice"}, "invoice_id: Field required"),
        ({"invoice_id": "INV-1", "submitted_by": "alice", "invoiceId": "x"}, "invoiceId"),
        ({"invoice_id": "INV 1; DROP", "submitted_by": "alice"}, "invoice_id: String should match"),
    ],
)
async def test_invalid_input_fails_the_case_at_start_naming_the_field(
    time_skipping_env: WorkflowEnvironment, raw_input: dict[str, str], field: str
) -> None:
    systems = FakeSystems(scenario("INV-M1"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await time_skipping_env.client.start_workflow(
            "InvoiceException", raw_input, id=f"bad-input-{uuid.uuid4()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidInput"
    assert field in cause.message


async def test_unknown_submitter_fails_naming_the_field(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-M2"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-M2", submitted_by="mallory")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    assert "submitted_by: 'mallory' is not in the approval directory" in str(failed.value.cause)
    assert systems.payments == {}
