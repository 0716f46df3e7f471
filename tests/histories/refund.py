"""Refund scenarios: orders, CRM, fraud signals, payments and the model faked by activity name
(``tests.refund_support.FakeRefundSystems``), dated from the server's clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.payments import Refund
from casework.testing.cases import open_task
from casework.testing.recorder import Drive, Recordings, Scenario, nothing
from casework.testing.signing import decide
from tests.refund_support import FakeRefundSystems, fraud_signal, order
from workflows.refund import Outcome, RefundInput, RefundWorkflow


def _order(total: str, **fields: Any) -> Callable[[str, datetime], FakeRefundSystems]:
    def build(order_id: str, now: datetime) -> FakeRefundSystems:
        return FakeRefundSystems(order(order_id, now, total=total), **fields)

    return build


def _decision(role: str, **decision: str) -> Drive:
    async def drive(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
        task = await open_task(handle, "an approval task")
        if task.role != role:
            raise RuntimeError(f"expected a task for {role}, not {task.role}")
        await decide(handle, **decision)

    return drive


def _refunded_elsewhere_meanwhile(order_id: str, now: datetime) -> FakeRefundSystems:
    return FakeRefundSystems(
        order(order_id, now, total="1000.00"),
        refunds_meanwhile=[
            Refund(
                refund_id="REF-OTHER",
                order_id=order_id,
                customer_id="CUS-1",
                amount=Decimal("600.00"),
                currency="EUR",
                status="issued",
                idempotency_key=f"refund-{order_id}-2:refund",
            )
        ],
    )


RECORDINGS = Recordings(
    workflow=RefundWorkflow,
    key=lambda name: f"ORD-REPLAY-{name}",
    start=lambda order_id, systems: RefundInput(
        order_id=order_id, amount=systems.order.total, reason="The mug arrived broken."
    ),
    scenarios=(
        Scenario("auto_refunded", _order("30.00"), nothing, {"outcome": Outcome.AUTO_REFUNDED}),
        Scenario(
            "support_lead_approved",
            _order("180.00"),
            _decision("support_lead", approver="judy", action="approve", comment="broken"),
            {"outcome": Outcome.APPROVED},
        ),
        Scenario(
            "finance_approved",
            _order("1200.00"),
            _decision("finance_manager", approver="carol", action="approve"),
            {"outcome": Outcome.APPROVED},
        ),
        Scenario(
            "lead_rejected",
            _order("120.00"),
            _decision("support_lead", approver="judy", action="reject", comment="used"),
            {"outcome": Outcome.REJECTED},
        ),
        Scenario(
            "rejected_by_policy",
            lambda order_id, now: FakeRefundSystems(order(order_id, now, payment_status="pending")),
            nothing,
            {"outcome": Outcome.REJECTED_BY_POLICY},
        ),
        Scenario(
            "fraud_cleared",
            _order("30.00", signals=[fraud_signal()]),
            _decision("fraud_investigator", approver="kate", action="approve"),
            {"outcome": Outcome.FRAUD_CLEARED},
        ),
        Scenario(
            "fraud_confirmed",
            _order("30.00", signals=[fraud_signal()]),
            _decision("fraud_investigator", approver="kate", action="reject", comment="fraud"),
            {"outcome": Outcome.FRAUD_CONFIRMED},
        ),
        Scenario("no_decision_on_hold", _order("180.00"), nothing, {"outcome": Outcome.TIMED_OUT}),
        Scenario(
            "crm_failed_reversed",
            _order("30.00", crm_fails=True),
            nothing,
            {"outcome": Outcome.FAILED_COMPENSATED},
        ),
        # The order, not the case, is the unit of money: another case refunded 600.00 of it
        # while this one (the whole 1,000.00) waited for finance; the re-check before paying
        # refuses it.
        Scenario(
            "refunded_elsewhere_meanwhile",
            _refunded_elsewhere_meanwhile,
            _decision("finance_manager", approver="carol", action="approve"),
            {"outcome": Outcome.NOT_REFUNDABLE_ANY_MORE},
        ),
        Scenario(
            "payments_refused",
            _order(
                "180.00",
                refund_error=ApplicationError(
                    "POST /payments/refunds answered 422: amount: too many decimal places",
                    type="RequestRejected",
                    non_retryable=True,
                ),
            ),
            _decision("support_lead", approver="judy", action="approve", comment="broken"),
            {"outcome": Outcome.REFUND_REFUSED},
        ),
    ),
)
