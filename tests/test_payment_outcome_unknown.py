"""A payment that went through while every answer to it was lost is found and reversed.

The reliability suite found this: with the payment's response lost on all four attempts, the
case failed in ``executing`` with the money moved and nothing said about it. Now the ledger is
asked (by the case's own idempotency key) and what went through is reversed.
"""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.case import CaseStatus
from tests.fake_systems import FakeSystems, scenario
from tests.test_invoice_workflow import audit, case_worker, start_case
from workflows.invoice_exception import Outcome


async def test_a_payment_whose_answers_were_all_lost_is_reversed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-PU1"), lose_payment_answers=True)
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-PU1")
        result = await handle.result()
        events = await audit(handle)

    assert systems.pay_calls == 4  # every attempt the retry policy allows
    (payment,) = systems.payments.values()
    assert payment.status == "reversed"
    assert result.status is CaseStatus.FAILED_COMPENSATED
    assert result.outcome is Outcome.FAILED_COMPENSATED
    assert result.compensated == [f"payment {payment.payment_id} of 3,000.00 EUR reversed"]
    assert result.message.startswith("paying INV-PU1 failed (SystemUnavailable")
    assert systems.invoice_statuses == []  # never marked paid
    assert any(e.kind is AuditKind.COMPENSATION for e in events)


async def test_a_payment_refused_outright_has_nothing_to_reverse(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-PU2"), refuse_payments=True)
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-PU2")
        result = await handle.result()

    assert systems.payments == {} and systems.pay_calls == 1
    assert result.status is CaseStatus.FAILED_COMPENSATED
    assert result.compensated == []
    assert "compensated: nothing" in result.message
