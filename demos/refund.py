"""The refund part of ``casework demo``: one refund request per outcome the demo shows.

Each batch gets its own orders and customers (ORD-1001.., CUS-1001..), so reruns on the same
stack never collide with earlier cases' business keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from casework.case import CaseStatus
from casework.case.tasks import TaskDecision
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    fail_writes,
    sandbox_request,
)
from workflows.refund import RefundInput, RefundStatus


@dataclass(frozen=True)
class RefundClaim:
    """What the customer asks back and why; what else the systems hold against it."""

    amount: Decimal
    reason: str
    fraud_signal: bool = False
    crm_fails: bool = False
    """Make the CRM refuse the refund note, so the refund must be reversed."""


SCENARIOS = [
    DemoScenario(
        1,
        "refund: 35.00, arrived broken",
        RefundStatus.REFUNDED,
        RefundClaim(Decimal("35.00"), "The mug arrived broken, the handle snapped off in the box."),
    ),
    DemoScenario(
        2,
        "refund: 180.00, the support lead approves",
        RefundStatus.REFUNDED,
        RefundClaim(Decimal("180.00"), "The jacket's zip is defective."),
        decisions={
            "support_lead": TaskDecision(
                approver="judy", action="approve", comment="photos show the fault"
            )
        },
    ),
    DemoScenario(
        3,
        "refund: fraud signal, the investigator confirms fraud",
        CaseStatus.REJECTED,
        RefundClaim(Decimal("45.00"), "The parcel never arrived.", fraud_signal=True),
        decisions={
            "fraud_investigator": TaskDecision(
                approver="kate", action="reject", comment="delivery signed; card reported stolen"
            )
        },
    ),
    DemoScenario(
        4,
        "refund: issued, then the CRM refuses the note",
        CaseStatus.FAILED_COMPENSATED,
        RefundClaim(Decimal("25.00"), "Wrong size delivered.", crm_fails=True),
    ),
]


async def seed(run: DemoRun, scenario: DemoScenario[RefundClaim]) -> RefundInput:
    """A customer of its own and the order they want money back for."""
    sandbox, request, number = run.sandbox, scenario.facts, scenario.number(run.batch)
    order_id, customer_id = f"ORD-{number}", f"CUS-{number}"
    await sandbox_request(
        sandbox,
        "POST",
        "/crm/customers",
        {
            "customer_id": customer_id,
            "name": f"Demo customer {number}",
            "email": f"customer-{number}@example.com",
            "tier": "silver",
        },
    )
    now = datetime.now(UTC)
    await sandbox_request(
        sandbox,
        "POST",
        "/orders",
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "lines": [
                {
                    "sku": "DEMO-1",
                    "description": "Demo article",
                    "quantity": 1,
                    "unit_price": str(request.amount),
                }
            ],
            "placed_at": (now - timedelta(days=7)).isoformat(),
            "delivered_at": (now - timedelta(days=4)).isoformat(),
        },
    )
    if request.fraud_signal:
        await sandbox_request(
            sandbox,
            "POST",
            "/fraud/signals",
            {
                "customer_id": customer_id,
                "order_id": order_id,
                "kind": "card_reported_stolen",
                "severity": "high",
                "detail": "the card used was reported stolen after the order",
            },
        )
    if request.crm_fails:
        await fail_writes(sandbox, f"/crm/customers/{customer_id}/refund-notes")
    return RefundInput(order_id=order_id, amount=request.amount, reason=request.reason)


DEMO = ProcessDemo(
    process="refund",
    order=30,
    scenarios=SCENARIOS,
    numbered=Numbered("/orders", "order_id", "ORD-"),
    seed=seed,
)
