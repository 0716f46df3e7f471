"""Reassign, delegate and escalate a task, end to end in a case: signed, checked, audited.

Real invoice cases on the time-skipping server (systems faked by name), acts sent as the
``reassign``/``delegate``/``escalate`` updates the CLI and the review queue send, and by signal
as ``temporal workflow signal`` would. The rules themselves are also checked on their own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.case.refusals import act_refusal_reasons, refusal_reasons
from casework.case.tasks import (
    DecisionReceipt,
    HumanTask,
    TaskAct,
    TaskActKind,
    TaskDecision,
    TaskStatus,
)
from casework.governance.loader import load_policy
from casework.governance.models import Directory
from casework.testing.signing import signed, signed_act
from casework.testing.temporal import eventually
from tests.fake_systems import FakeSystems, scenario
from tests.test_invoice_workflow import audit, case_worker, open_task, start_case
from workflows.invoice_exception import Outcome

DIRECTORY = Directory.model_validate(load_policy("directory").content)


def variance(invoice_id: str) -> FakeSystems:
    """5% over the PO: a task for the ap_supervisor (bob), escalating to finance_manager, cfo."""
    return FakeSystems(scenario(invoice_id, invoice_price="31.50"))


async def send(handle: WorkflowHandle, kind: TaskActKind, act: TaskAct) -> DecisionReceipt:
    return await handle.execute_update(
        kind.value, signed_act(handle.id, kind.value, act, act.actor), result_type=DecisionReceipt
    )


async def refused(handle: WorkflowHandle, kind: TaskActKind, act: TaskAct) -> str:
    """Why the case refused ``act`` (sent as given: sign it first to send it signed)."""
    with pytest.raises(WorkflowUpdateFailedError) as error:
        await handle.execute_update(kind.value, act, result_type=DecisionReceipt)
    return str(error.value.cause)


async def test_a_task_is_reassigned_delegated_and_escalated_each_by_who_may_and_with_why(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = variance("INV-ACT1")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-ACT1")
        task = await open_task(handle)
        assert (task.role, task.escalates_to) == ("ap_supervisor", "finance_manager")
        sign = TaskActKind.REASSIGN.value

        def act(actor: str, **fields: str) -> TaskAct:
            return TaskAct(actor=actor, reason=fields.pop("reason", "on leave"), **fields)

        to_carol = act("bob", to_user="carol")
        unsigned = await refused(handle, TaskActKind.REASSIGN, to_carol)
        forged = await refused(
            handle,
            TaskActKind.REASSIGN,
            signed_act(handle.id, sign, act("carol", to_user="carol"), "carol").model_copy(
                update={"actor": "bob"}
            ),
        )
        # Signed for another step: a signed delegation does not count as a reassignment.
        other_step = await refused(
            handle, TaskActKind.REASSIGN, signed_act(handle.id, "delegate", to_carol, "bob")
        )
        not_eligible = await refused(
            handle,
            TaskActKind.REASSIGN,
            signed_act(handle.id, sign, act("bob", to_user="ivy"), "bob"),
        )
        no_reason = await refused(
            handle,
            TaskActKind.REASSIGN,
            signed_act(handle.id, sign, act("bob", to_user="carol", reason=" "), "bob"),
        )
        outsider = await refused(
            handle,
            TaskActKind.REASSIGN,
            signed_act(handle.id, sign, act("henry", to_user="carol"), "henry"),
        )
        reassigned = await send(handle, TaskActKind.REASSIGN, to_carol)
        after_reassign = await open_task(handle)

        # bob no longer holds it: he may not delegate it; carol, who holds it, may.
        not_held = await refused(
            handle,
            TaskActKind.DELEGATE,
            signed_act(handle.id, "delegate", act("bob", to_user="dave"), "bob"),
        )
        delegated = await send(
            handle, TaskActKind.DELEGATE, act("carol", to_user="dave", reason="away this week")
        )
        # Once the task is dave's, carol (of the tier it is now with, cfo's, below) may not
        # decide it; bob, of a lower tier, neither.
        bobs_decision = signed(handle.id, approver="bob", action="approve")
        with pytest.raises(WorkflowUpdateFailedError) as bob_decides:
            await handle.execute_update("decide", bobs_decision, result_type=DecisionReceipt)

        escalated = await send(
            handle, TaskActKind.ESCALATE, act("dave", reason="the supplier is disputed")
        )
        next_task = await eventually(
            lambda: _open_task_not(handle, {task.task_id}), what="the next tier's task"
        )
        await send(
            handle,
            TaskActKind.ESCALATE,
            act("carol", task_id=next_task.task_id, reason="needs the cfo"),
        )
        last_task = await eventually(
            lambda: _open_task_not(handle, {task.task_id, next_task.task_id}),
            what="the cfo's task",
        )
        at_last_tier = await refused(
            handle,
            TaskActKind.ESCALATE,
            signed_act(handle.id, "escalate", act("dave", task_id=last_task.task_id), "dave"),
        )
        await handle.execute_update(
            "decide",
            signed(handle.id, approver="dave", action="approve", task_id=last_task.task_id),
            result_type=DecisionReceipt,
        )
        result = await handle.result()
        events = await audit(handle)

    assert "the reassign is not signed" in unsigned
    assert "the signature is not bob's on this reassign" in forged
    assert "the signature is not bob's on this reassign" in other_step
    assert "ivy (engineer) is not eligible for task" in not_eligible
    assert "a reassign needs a reason saying why" in no_reason
    assert "henry may act on no open task of this case" in outsider
    assert (
        reassigned.message == f"bob reassigned {task.task_id} from ap_supervisor to carol: on leave"
    )
    assert (after_reassign.assignee, after_reassign.role) == ("carol", "finance_manager")
    assert "bob does not hold task" in not_held
    assert delegated.message.startswith(f"carol delegated {task.task_id} from carol to dave")
    assert f"task {task.task_id} is assigned to dave" in str(bob_decides.value.cause)
    assert escalated.message.endswith(": the supplier is disputed")
    assert (next_task.role, next_task.tier, next_task.escalates_to) == ("finance_manager", 1, "cfo")
    assert (last_task.role, last_task.tier, last_task.escalates_to) == ("cfo", 2, None)
    assert "it is at the last tier its policy escalates to" in at_last_tier
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "dave")
    handed = [e for e in events if e.kind is AuditKind.TASK_REASSIGNED]
    assert [
        (e.data["act_kind"], e.data["by"], e.data["to_assignee"], e.data["reason"]) for e in handed
    ] == [
        ("reassign", "bob", "carol", "on leave"),
        ("delegate", "carol", "dave", "away this week"),
    ]
    escalations = [e for e in events if e.kind is AuditKind.TASK_ESCALATED]
    assert [(e.data["by"], e.data["to_role"], e.data["reason"]) for e in escalations] == [
        ("dave", "finance_manager", "the supplier is disputed"),
        ("carol", "cfo", "needs the cfo"),
    ]
    # Every act carries its signature, so the trail proves who did it.
    assert all(e.data["act"]["signature"] for e in [*handed, *escalations])


async def _open_task_not(handle: WorkflowHandle, seen: set[str]) -> HumanTask | None:
    tasks = await handle.query("open_tasks", result_type=list[HumanTask])
    return next((task for task in tasks if task.task_id not in seen), None)


async def test_an_act_by_signal_that_is_not_allowed_is_recorded_and_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = variance("INV-ACT2")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-ACT2")
        task = await open_task(handle)
        await handle.signal("delegate", TaskAct(actor="bob", reason="away", to_user="carol"))
        await handle.signal("escalate", args=[{"actor": "bob"}, "and a second payload"])
        forged = signed_act(
            handle.id, "reassign", TaskAct(actor="henry", reason="x", to_user="ivy"), "henry"
        ).model_copy(update={"actor": "bob"})
        await handle.signal("reassign", forged)

        async def refusals() -> list[str] | None:
            found = [e.summary for e in await audit(handle) if e.kind is AuditKind.DECISION_REFUSED]
            return found if len(found) >= 3 else None

        recorded = await eventually(refusals, what="three refused acts in the audit trail")
        still = await open_task(handle)
        await handle.execute_update(
            "decide",
            signed(handle.id, approver="bob", action="approve"),
            result_type=DecisionReceipt,
        )
        await handle.result()

    assert "ignored delegate from bob: the delegate is not signed" in recorded[0]
    assert "ignored a malformed escalate signal" in recorded[1]
    assert "the signature is not bob's on this reassign" in recorded[2]
    assert (still.task_id, still.assignee, still.status) == (task.task_id, None, TaskStatus.OPEN)


def _task(**fields: object) -> HumanTask:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    defaults: dict[str, object] = {
        "task_id": "c/approval-1",
        "case_id": "c",
        "title": "t",
        "role": "ap_supervisor",
        "eligible_roles": ["ap_supervisor", "finance_manager", "cfo"],
        "requested_by": "alice",
        "opened_at": now,
        "due_at": now + timedelta(hours=1),
        "tier": 0,
        "summary": "s",
        "escalates_to": "finance_manager",
    }
    return HumanTask.model_validate(defaults | fields)


@pytest.mark.parametrize(
    ("kind", "act", "task", "reason"),
    [
        (
            TaskActKind.REASSIGN,
            TaskAct(actor="bob", reason="r", to_user="alice"),
            _task(),
            "alice (ap_clerk) is not eligible",
        ),
        (
            TaskActKind.REASSIGN,
            TaskAct(actor="bob", reason="r", to_role="ap_clerk"),
            _task(),
            "role 'ap_clerk' may not act on task",
        ),
        (
            TaskActKind.REASSIGN,
            TaskAct(actor="bob", reason="r", to_user="carol", to_role="cfo"),
            _task(),
            "name either the person (to_user) or the role (to_role)",
        ),
        (
            TaskActKind.DELEGATE,
            TaskAct(actor="bob", reason="r", to_role="cfo"),
            _task(),
            "a delegation goes to a person, not a role",
        ),
        (
            TaskActKind.DELEGATE,
            TaskAct(actor="bob", reason="r", to_user="bob"),
            _task(),
            "bob cannot hand task c/approval-1 to themselves",
        ),
        (
            TaskActKind.ESCALATE,
            TaskAct(actor="dave", reason="r"),
            _task(role="cfo", tier=2, eligible_roles=["cfo"], escalates_to=None),
            "it is at the last tier its policy escalates to",
        ),
        (
            TaskActKind.ESCALATE,
            TaskAct(actor="bob", reason="r"),
            _task(status=TaskStatus.DECIDED),
            "is no longer open (it is decided)",
        ),
    ],
)
def test_acts_that_are_not_allowed_are_refused_with_the_reason(
    kind: TaskActKind, act: TaskAct, task: HumanTask, reason: str
) -> None:
    reasons = act_refusal_reasons(DIRECTORY, task, kind, act)
    assert any(reason in found for found in reasons), reasons


def test_a_higher_tier_may_still_decide_a_task_handed_to_a_person() -> None:
    task = _task(role="finance_manager", assignee="carol", tier=1)
    approve = {"action": "approve", "comment": None}
    assert refusal_reasons(DIRECTORY, task, TaskDecision(approver="dave", **approve)) == []
    assert refusal_reasons(DIRECTORY, task, TaskDecision(approver="carol", **approve)) == []
