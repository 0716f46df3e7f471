"""The refund process in the reliability suite: refunds exactly once, or reverses the refund.

Its writes are the refund in the payments ledger and the note on the customer's CRM record; when
the note fails for good after the refund went out, the refund must be reversed.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from casework.case import TOOL_RETRY, CaseStatus
from casework.testing.scripted_llm import ScriptedReply, case_value
from reliability.drivers.base import (
    SLOW_DELAY_SECONDS,
    TIMEOUT_DELAY_SECONDS,
    CaseDriver,
    Ledger,
    Outcome,
    People,
    PlannedCase,
    SandboxFault,
    Scenario,
    agent_fault_problems,
    delayed,
)
from workflows.refund import RefundInput, RefundStatus, RefundWorkflow

ORDER_TOTAL = Decimal("200.00")
# Below the policy's 50.00: refunded without a person when the analyst recommends it
# confidently, else a support lead decides (within their 500.00). The analyst's confidence, scripted
# per scenario, says which.
AMOUNT = Decimal("35.00")

AUTO = Scenario("refunded by policy", People.APPROVE)
APPROVE = Scenario("approved", People.APPROVE)
REJECT = Scenario("rejected", People.REJECT)
LEAVE = Scenario("left waiting", People.LEAVE)
REFUNDS = frozenset({AUTO.name, APPROVE.name})


class RefundDriver(CaseDriver):
    process = "refund"
    scenarios = (AUTO, APPROVE, AUTO, REJECT, APPROVE, LEAVE)
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault)
    submitter = "erin"
    waiting_scenario = LEAVE
    finished_scenario = AUTO

    def new_key(self, tag: str, number: int) -> str:
        return f"ORD-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return RefundInput(
            order_id=key,
            amount=AMOUNT,
            reason="The mug arrived broken, the handle snapped off in the box.",
            submitted_by=self.submitter,
        )

    def case_id(self, key: str) -> str:
        return RefundWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "an order the order system does not have",
                {
                    "order_id": f"ORD-NONE-{tag}",
                    "amount": "10.00",
                    "reason": "never arrived",
                    "submitted_by": self.submitter,
                },
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """A customer of its own and a captured, delivered order named after the key."""
        customer_id = _customer(key)
        now = datetime.now().astimezone()
        for path, body in (
            (
                "/crm/customers",
                {
                    "customer_id": customer_id,
                    "name": f"Customer of {key}",
                    "email": f"{customer_id.lower()}@example.com",
                    "tier": "standard",
                },
            ),
            (
                "/orders",
                {
                    "order_id": key,
                    "customer_id": customer_id,
                    "lines": [
                        {
                            "sku": "MUG-1",
                            "description": "Mug",
                            "quantity": 1,
                            "unit_price": str(ORDER_TOTAL),
                        }
                    ],
                    "payment_status": "captured",
                    "placed_at": (now - timedelta(days=6)).isoformat(),
                    "delivered_at": (now - timedelta(days=3)).isoformat(),
                },
            ),
        ):
            (await http.post(path, json=body)).raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        order_id = case_value(request, "request", "order_id")
        return RefundWorkflow.case_id(order_id) if order_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        auto = case.scenario is AUTO
        return ScriptedReply(
            content=json.dumps(
                {
                    "recommendation": "approve",
                    "confidence": 0.95 if auto else 0.6,
                    "reason": "Delivery confirms the order; the customer reports it broken.",
                    "evidence": ["fulfilment: delivered 3 days ago"],
                }
            )
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        order = f"/orders/{key}"
        customer = f"/crm/customers/{_customer(key)}"
        refund = {
            "method": "POST",
            "path": "/payments/refunds",
            "idempotency_key": f"{case_id}:refund",
        }
        note = {"method": "POST", "path": f"{customer}/refund-notes"}
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": order, "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", customer, TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("GET", order, SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                # The refund and the CRM note are made, then their answers lost: the retries
                # must find them by idempotency key, not make new ones.
                return [
                    refund | {"status": 503, "when": "after"},
                    note | {"status": 503, "when": "after"},
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # The CRM refuses the note for good after the refund went out: the refund must
                # be reversed, and the reversal has to ride out a 503 first.
                return [
                    note | {"status": 422},
                    {
                        "method": "POST",
                        "path": "/payments/refunds/*/reverse",
                        "idempotency_key": f"{case_id}:refund-reversal",
                        "status": 503,
                    },
                ]
            case SandboxFault.OUTCOME_UNKNOWN:
                # Refunded on the first attempt, every answer lost: the case must find its refund
                # in the ledger by its idempotency key and carry on with it, not refund again.
                return [
                    refund | {"status": 503, "when": "after", "count": TOOL_RETRY.maximum_attempts}
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [
            {
                "method": "POST",
                "path": "/payments/refunds",
                "idempotency_key": f"{self.case_id(key)}:*",
            }
        ]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (
            SandboxFault.RESPONSE_LOST,
            SandboxFault.REJECTED_AFTER_PAYMENT,
            SandboxFault.OUTCOME_UNKNOWN,
        ):
            return scenario.name in REFUNDS
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        refunds = (await http.get("/payments/refunds", params={"order_id": key})).raise_for_status()
        rows = refunds.json()
        writes: Counter[str] = Counter()
        writes["refund"] = len(rows)
        notes = await http.get(f"/crm/customers/{_customer(key)}/refund-notes")
        if notes.status_code != 404:  # an unknown order (the bad-input matrix) has no customer
            for note in notes.raise_for_status().json():
                writes[f"CRM note on {note['refund_id']}"] += 1
        return Ledger(
            writes=writes,
            reversals={row["refund_id"]: row["status"] == "reversed" for row in rows},
        )

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault is SandboxFault.REJECTED_AFTER_PAYMENT:
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                AUTO.name: {RefundStatus.REFUNDED},
                APPROVE.name: {RefundStatus.REFUNDED},
                REJECT.name: {CaseStatus.REJECTED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        refunds = ledger.writes["refund"]
        reversed_ = sum(ledger.reversals.values())
        notes = sum(n for write, n in ledger.writes.items() if write.startswith("CRM note"))
        match outcome.status:
            case RefundStatus.REFUNDED:
                if refunds != 1 or reversed_ or notes != 1:
                    found.append(
                        f"refunded, but {refunds} refund(s), {reversed_} reversed, {notes} note(s)"
                    )
            case CaseStatus.FAILED_COMPENSATED:
                if refunds != 1 or reversed_ != 1:
                    found.append(
                        f"compensated, but {refunds} refund(s), {reversed_} reversed "
                        "(every compensated case must have its reversal)"
                    )
            case _:
                if refunds or notes:
                    found.append(f"{outcome.status}, yet {refunds} refund(s), {notes} note(s)")
        return found + agent_fault_problems(case, outcome)


def _customer(key: str) -> str:
    return f"CUS-{key}"


DRIVER = RefundDriver()
