"""Invoice-exception scenarios: the ERP, payments, the outbox and the invoice analyst faked by
activity name (``tests.fake_systems``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.case.tasks import HumanTask, TaskDecision
from casework.testing.cases import audit, events_of, open_task
from casework.testing.recorder import Recordings, Scenario, nothing
from casework.testing.signing import decide, signed, signed_as_sent
from casework.testing.temporal import eventually
from tests.fake_systems import FakeSystems, scenario
from workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
    Outcome,
)

CaseHandle = WorkflowHandle[InvoiceExceptionWorkflow, InvoiceExceptionResult]


async def _escalate_then_approve(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    first = await open_task(handle, "an approval task")
    # Past the ap_supervisor's 24h SLA: the task moves to finance_manager, where bob is no
    # longer eligible, so carol decides.
    await env.sleep(timedelta(hours=25))

    async def escalated() -> HumanTask | None:
        task = await handle.query("open_task", result_type=HumanTask | None)
        return task if task is not None and task.task_id != first.task_id else None

    task = await eventually(escalated, what="the task to escalate")
    if task.role != "finance_manager":
        raise RuntimeError(f"expected the task to escalate to finance_manager, not {task.role}")
    await decide(handle, approver="carol", action="approve")


async def _reject(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await open_task(handle, "an approval task")
    await decide(handle, approver="bob", action="reject", comment="no surcharge was agreed")


async def _invalid_signal_then_update(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await open_task(handle, "an approval task")
    # alice submitted the case: her signal is recorded as refused and the task stays open.
    await handle.signal("decide", signed(handle.id, approver="alice", action="approve"))
    await _refusals_recorded(handle, 1)
    await decide(handle, approver="bob", action="approve")


async def _refusals_recorded(handle: CaseHandle, count: int) -> None:
    """Wait for signals to land first, so the history always holds them before what follows."""

    async def refused() -> bool | None:
        found = events_of(await audit(handle), AuditKind.DECISION_REFUSED)
        return True if len(found) >= count else None

    await eventually(refused, what=f"{count} refused signal(s) to be recorded")


async def _unsigned_and_forged_then_signed(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await open_task(handle, "an approval task")
    await handle.signal("decide", TaskDecision(approver="bob", action="approve"))
    # Signed by carol's key but claiming to be bob: the signature is not bob's.
    forged = signed(handle.id, approver="carol", action="approve").model_copy(
        update={"approver": "bob"}
    )
    await handle.signal("decide", forged)
    await _refusals_recorded(handle, 2)
    await handle.signal("decide", signed(handle.id, approver="bob", action="approve"))


async def _edited_amounts_refused_then_approved(
    env: WorkflowEnvironment, handle: CaseHandle
) -> None:
    await open_task(handle, "an approval task")
    # No task could allow this amount: recorded as malformed, where it once failed the task.
    await handle.signal("decide", signed_as_sent(handle.id, "bob", "1E+400"))
    # Finer than the euro's cent: refused by the rules, recorded, ignored.
    await handle.signal("decide", signed_as_sent(handle.id, "bob", "0.001"))
    await _refusals_recorded(handle, 2)
    await decide(handle, approver="bob", action="approve", amount="3000.00")


def _matching(invoice_id: str, now: datetime) -> FakeSystems:
    return FakeSystems(scenario(invoice_id))


def _price_variance(invoice_id: str, now: datetime) -> FakeSystems:
    # 5% over the PO on 3,000.00: outside tolerance, within the ap_supervisor's limit.
    return FakeSystems(scenario(invoice_id, invoice_price="31.50"))


RECORDINGS = Recordings(
    workflow=InvoiceExceptionWorkflow,
    key=lambda name: f"INV-REPLAY-{name}",
    start=lambda invoice_id, systems: InvoiceExceptionInput(
        invoice_id=invoice_id, submitted_by="alice"
    ),
    scenarios=(
        Scenario("auto_approved", _matching, nothing, {"outcome": Outcome.AUTO_APPROVED}),
        Scenario(
            "escalated_approved",
            _price_variance,
            _escalate_then_approve,
            {"outcome": Outcome.APPROVED},
        ),
        Scenario("rejected", _price_variance, _reject, {"outcome": Outcome.REJECTED}),
        Scenario(
            "failed_compensated",
            lambda invoice_id, now: FakeSystems(scenario(invoice_id), failing_statuses={"paid"}),
            nothing,
            {"outcome": Outcome.FAILED_COMPENSATED},
        ),
        Scenario("timed_out", _price_variance, nothing, {"outcome": Outcome.TIMED_OUT}),
        Scenario(
            "invalid_signal_then_update",
            _price_variance,
            _invalid_signal_then_update,
            {"outcome": Outcome.APPROVED},
        ),
        # Behind workflow.patched("signed-decisions"): every history above that holds a decision
        # was first recorded before decisions were signed, and replays on the unpatched path.
        Scenario(
            "unsigned_and_forged_then_signed",
            _price_variance,
            _unsigned_and_forged_then_signed,
            {"outcome": Outcome.APPROVED},
        ),
        # Behind workflow.patched("edited-amount-rules"): signals are judged by the currency's
        # minor unit (histories above replay the unpatched path, where only 0 < amount <= total
        # counted).
        Scenario(
            "edited_amounts_refused_then_approved",
            _price_variance,
            _edited_amounts_refused_then_approved,
            {"outcome": Outcome.APPROVED},
        ),
        # Behind workflow.patched("reconcile-failed-payment"): the payment went through but
        # every answer was lost; the case finds it in the ledger and reverses it.
        Scenario(
            "payment_outcome_unknown",
            lambda invoice_id, now: FakeSystems(scenario(invoice_id), lose_payment_answers=True),
            nothing,
            {"outcome": Outcome.FAILED_COMPENSATED},
        ),
        # Behind workflow.patched("governance-loaded-together") and ("erp-reads-together"): the
        # policy and the directory are loaded at once, then the supplier, the purchase order and
        # its goods receipts are read at once (every history above reads one after the other).
        Scenario(
            "reads_together_auto_approved", _matching, nothing, {"outcome": Outcome.AUTO_APPROVED}
        ),
        # Behind the patch baseline (casework.case.patches): the case records the baseline
        # once, not the framework patches it holds (every history above records each one).
        Scenario(
            "patch_baseline_escalated_approved",
            _price_variance,
            _escalate_then_approve,
            {"outcome": Outcome.APPROVED},
        ),
    ),
)
