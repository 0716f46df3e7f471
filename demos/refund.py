"""The refund part of ``casework demo``: one refund request per outcome the demo shows.

Each batch gets its own orders and customers (ORD-1001.., CUS-1001..), so reruns on the same
stack never collide with earlier cases' business keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from temporalio.client import Client, WorkflowHandle

from casework.case import CaseState, CaseStatus
from casework.case.tasks import TaskDecision
from casework.cli.cases import drive_case
from casework.cli.seeding import DemoCase, decide_as_demo_user, sandbox_request
from casework.config import Settings
from workflows.refund import RefundInput, RefundWorkflow


@dataclass(frozen=True)
class RefundScenario:
    suffix: int
    story: str
    amount: Decimal
    reason: str
    expected: str
    decision: TaskDecision | None = None
    """What the demo's approver or investigator does once the task is open."""
    fraud_signal: bool = False
    crm_fails: bool = False
    """Make the CRM refuse the refund note, so the refund must be reversed."""


SCENARIOS = [
    RefundScenario(
        1,
        "refund: 35.00, arrived broken",
        Decimal("35.00"),
        "The mug arrived broken, the handle snapped off in the box.",
        expected=CaseStatus.REFUNDED,
    ),
    RefundScenario(
        2,
        "refund: 180.00, the support lead approves",
        Decimal("180.00"),
        "The jacket's zip is defective.",
        expected=CaseStatus.REFUNDED,
        decision=TaskDecision(approver="judy", action="approve", comment="photos show the fault"),
    ),
    RefundScenario(
        3,
        "refund: fraud signal, the investigator confirms fraud",
        Decimal("45.00"),
        "The parcel never arrived.",
        expected=CaseStatus.REJECTED,
        decision=TaskDecision(
            approver="kate", action="reject", comment="delivery signed; card reported stolen"
        ),
        fraud_signal=True,
    ),
    RefundScenario(
        4,
        "refund: issued, then the CRM refuses the note",
        Decimal("25.00"),
        "Wrong size delivered.",
        expected=CaseStatus.FAILED_COMPENSATED,
        crm_fails=True,
    ),
]


async def run(
    client: Client, settings: Settings, sandbox: httpx.AsyncClient, batch: int
) -> list[DemoCase]:
    """Seed the batch's customers and orders, start one case each and play people's parts."""
    handles: list[tuple[RefundScenario, WorkflowHandle]] = []
    for scenario in SCENARIOS:
        order_id = await _seed(sandbox, batch, scenario)
        handle = await client.start_workflow(
            "Refund",
            RefundInput(order_id=order_id, amount=scenario.amount, reason=scenario.reason),
            id=RefundWorkflow.case_id(order_id),
            task_queue=settings.task_queue,
        )
        handles.append((scenario, handle))
    await asyncio.gather(
        *(drive_case(handle, _decider(scenario, settings)) for scenario, handle in handles)
    )
    return [DemoCase(handle, scenario.story, scenario.expected) for scenario, handle in handles]


async def _seed(sandbox: httpx.AsyncClient, batch: int, scenario: RefundScenario) -> str:
    number = batch * 1000 + scenario.suffix
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
                    "unit_price": str(scenario.amount),
                }
            ],
            "placed_at": (now - timedelta(days=7)).isoformat(),
            "delivered_at": (now - timedelta(days=4)).isoformat(),
        },
    )
    if scenario.fraud_signal:
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
    if scenario.crm_fails:
        # 503 on every attempt the workflow's retry policy allows (4): Temporal retries with
        # backoff, then gives up, and the saga reverses the refund.
        await sandbox_request(
            sandbox,
            "POST",
            "/_faults",
            {
                "method": "POST",
                "path": f"/crm/customers/{customer_id}/refund-notes",
                "count": 4,
                "status": 503,
            },
        )
    return order_id


def _decider(
    scenario: RefundScenario, settings: Settings
) -> Callable[[WorkflowHandle, CaseState], Awaitable[bool]]:
    """Decides once when the task opens, then leaves the case be."""
    pending = [scenario.decision] if scenario.decision else []

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if not pending or state.open_task is None:
            return False
        await decide_as_demo_user(handle, settings, pending.pop())
        return True

    return respond
