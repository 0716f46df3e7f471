"""Signed decisions, end to end in a case: who sent a decision is proven before it counts.

Signing and key files are tested on their own in ``test_signing.py``; these run real invoice
cases on the time-skipping server (systems faked by name) and send decisions by update and by
signal, as ``casework approve`` and ``temporal workflow signal`` do.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditEvent, AuditKind
from casework.case.tasks import DecisionReceipt, TaskDecision
from casework.testing.signing import signed
from casework.testing.temporal import eventually
from tests.fake_systems import FakeSystems, scenario
from tests.test_invoice_workflow import audit, case_worker, open_task, start_case
from workflows.invoice_exception import Outcome

NOT_BOBS = "the signature is not bob's on this decision for case"


def variance(invoice_id: str) -> FakeSystems:
    """5% over the PO: needs the ap_supervisor (bob); carol (finance_manager) may decide too."""
    return FakeSystems(scenario(invoice_id, invoice_price="31.50"))


async def refused_update(handle: WorkflowHandle, decision: TaskDecision) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("decide", decision, result_type=DecisionReceipt)
    return str(refused.value.cause)


async def refusals(handle: WorkflowHandle, count: int) -> list[AuditEvent]:
    async def recorded() -> list[AuditEvent] | None:
        found = [e for e in await audit(handle) if e.kind is AuditKind.DECISION_REFUSED]
        return found if len(found) >= count else None

    return await eventually(recorded, what=f"{count} refused decision(s) in the audit trail")


async def test_a_signed_decision_from_the_right_approver_is_accepted(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = variance("INV-SD1")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-SD1")
        task = await open_task(handle)
        decision = signed(handle.id, approver="bob", action="approve", comment="agreed")
        receipt = await handle.execute_update("decide", decision, result_type=DecisionReceipt)
        result = await handle.result()
        events = await audit(handle)

    assert receipt.task_id == task.task_id
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "bob")
    assert len(systems.payments) == 1
    (recorded,) = [e for e in events if e.kind is AuditKind.HUMAN_DECISION]
    # The trail keeps the proof: anyone with bob's public key can check it later.
    assert recorded.data["decision"]["signature"] == decision.signature
    assert recorded.data["decision"]["nonce"] == decision.nonce


async def test_unsigned_and_forged_decisions_are_refused_with_the_reason(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = variance("INV-SD2")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-SD2")
        await open_task(handle)
        genuine = signed(handle.id, approver="bob", action="approve")
        attempts = {
            "unsigned": TaskDecision(approver="bob", action="approve"),
            "signed with carol's key, claiming to be bob": signed(
                handle.id, approver="carol", action="approve"
            ).model_copy(update={"approver": "bob"}),
            "an amount added after signing": genuine.model_copy(update={"amount": 1}),
            "a comment changed after signing": signed(
                handle.id, approver="bob", action="reject", comment="no"
            ).model_copy(update={"comment": "fine"}),
            "a signature that is not base64": genuine.model_copy(update={"signature": "x!"}),
        }
        reasons = {
            what: await refused_update(handle, attempt) for what, attempt in attempts.items()
        }
        still_open = await handle.query("open_tasks")
        await handle.execute_update("decide", genuine, result_type=DecisionReceipt)
        result = await handle.result()

    assert "the decision is not signed" in reasons.pop("unsigned")
    for what, reason in reasons.items():
        assert NOT_BOBS in reason, what
    assert len(still_open) == 1
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "bob")
    assert len(systems.payments) == 1


async def test_a_decision_signed_for_another_case_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = variance("INV-SD3")
    async with case_worker(time_skipping_env, systems) as queue:
        first = await start_case(time_skipping_env, queue, "INV-SD3")
        second = await start_case(time_skipping_env, queue, "INV-SD3")
        await open_task(first)
        await open_task(second)
        meant_for_first = signed(first.id, approver="bob", action="approve")
        reason = await refused_update(second, meant_for_first)
        await first.execute_update("decide", meant_for_first, result_type=DecisionReceipt)
        # Both decided before awaiting a result: waiting on one skips time, and the other's
        # SLA would escalate its task past bob.
        await second.execute_update(
            "decide", signed(second.id, approver="bob", action="reject", comment="duplicate")
        )
        first_result = await first.result()
        second_result = await second.result()

    assert NOT_BOBS in reason and second.id in reason
    assert first_result.outcome is Outcome.APPROVED
    assert second_result.outcome is Outcome.REJECTED


async def test_unsigned_and_forged_signals_are_recorded_and_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = variance("INV-SD4")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-SD4")
        await open_task(handle)
        # What `temporal workflow signal --input '{"approver": "bob", "action": "approve"}'` sends.
        await handle.signal("decide", {"approver": "bob", "action": "approve"})
        forged = signed(handle.id, approver="carol", action="reject", comment="no")
        await handle.signal("decide", forged.model_copy(update={"approver": "bob"}))
        refused = await refusals(handle, 2)
        await handle.signal("decide", signed(handle.id, approver="bob", action="approve"))
        result = await handle.result()

    assert "the decision is not signed" in refused[0].summary
    assert NOT_BOBS in refused[1].summary
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "bob")
    assert len(systems.payments) == 1
