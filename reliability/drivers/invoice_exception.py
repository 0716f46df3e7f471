"""The invoice-exception process in the reliability suite: pays exactly once, or reverses."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from casework.audit import AuditKind
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
    delayed,
    fallback_problems,
)
from reliability.model import ModelFault
from workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionWorkflow,
    InvoiceStatus,
)

PO_PRICE = Decimal("30.00")
QUANTITY = 100
# Outside the 2% tolerance, within ap_supervisor's 5,000.00: bob decides.
NEEDS_APPROVAL_PERCENT = Decimal(4)

AUTO = Scenario("auto-approved", People.APPROVE)
APPROVE = Scenario("approved", People.APPROVE)
REJECT = Scenario("rejected", People.REJECT)
LEAVE = Scenario("left waiting", People.LEAVE)
PAYS = frozenset({AUTO.name, APPROVE.name})


class InvoiceExceptionDriver(CaseDriver):
    process = "invoice-exception"
    scenarios = (AUTO, APPROVE, AUTO, REJECT, APPROVE, LEAVE)
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault)
    submitter = "alice"
    waiting_scenario = LEAVE
    finished_scenario = AUTO

    def new_key(self, tag: str, number: int) -> str:
        return f"INV-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return InvoiceExceptionInput(invoice_id=key, submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return InvoiceExceptionWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "an invoice the ERP does not have",
                {"invoice_id": f"INV-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """A supplier, PO and full goods receipt named after the invoice; the invoice matches
        the PO (auto-approvable) or is priced 4% above it (needs bob)."""
        variance = Decimal(0) if scenario is AUTO else NEEDS_APPROVAL_PERCENT
        line = {"sku": "W-1", "description": "Widget", "quantity": QUANTITY}
        for path, body in (
            (
                "/erp/suppliers",
                {
                    "supplier_id": f"SUP-{key}",
                    "name": f"Supplier of {key}",
                    "country": "DE",
                    "bank_account": "DE89370400440532013000",
                },
            ),
            (
                "/erp/purchase-orders",
                {
                    "po_number": f"PO-{key}",
                    "supplier_id": f"SUP-{key}",
                    "lines": [line | {"unit_price": str(PO_PRICE)}],
                },
            ),
            (
                "/erp/goods-receipts",
                {
                    "receipt_id": f"GR-{key}",
                    "po_number": f"PO-{key}",
                    "lines": [{"sku": "W-1", "quantity_received": QUANTITY}],
                },
            ),
            (
                "/erp/invoices",
                {
                    "invoice_id": key,
                    "supplier_id": f"SUP-{key}",
                    "po_number": f"PO-{key}",
                    "lines": [line | {"unit_price": str(PO_PRICE * (1 + variance / 100))}],
                    "exception_reason": "three-way match failed",
                },
            ),
        ):
            response = await http.post(path, json=body)
            response.raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        invoice_id = case_value(request, "invoice", "invoice_id")
        return InvoiceExceptionWorkflow.case_id(invoice_id) if invoice_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        auto = case.scenario is AUTO
        return ScriptedReply(
            content=json.dumps(
                {
                    "recommendation": "approve" if auto else "hold",
                    "confidence": 0.95 if auto else 0.6,
                    "explanation": "The invoice matches the PO."
                    if auto
                    else "The invoiced unit price is above the PO price.",
                    "rationale": "Scripted by the reliability suite.",
                    "evidence": ["line W-1"],
                }
            )
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        payment = {"method": "POST", "path": "/payments", "idempotency_key": f"{case_id}:payment"}
        status = {"method": "POST", "path": f"/erp/invoices/{key}/status"}
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": f"/erp/invoices/{key}", "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", f"/erp/purchase-orders/PO-{key}", TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("GET", f"/erp/suppliers/SUP-{key}", SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                # The payment and the ERP update are made, then their answers are lost: the
                # retries must find the first ones (idempotency keys), not make new ones.
                return [
                    payment | {"status": 503, "when": "after"},
                    status | {"status": 503, "when": "after"},
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # The ERP refuses "paid" for good after the payment went out: the payment must
                # be reversed, and the reversal itself has to ride out a 503 first.
                return [
                    status | {"status": 422},
                    {
                        "method": "POST",
                        "path": "/payments/*/reverse",
                        "idempotency_key": f"{case_id}:payment-reversal",
                        "status": 503,
                    },
                ]
            case SandboxFault.OUTCOME_UNKNOWN:
                # Paid on the first attempt, and every answer lost for as long as the case
                # retries: only the ledger knows. The case must find the payment and reverse it.
                return [
                    payment | {"status": 503, "when": "after", "count": TOOL_RETRY.maximum_attempts}
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [
            {"method": "POST", "path": "/payments", "idempotency_key": f"{self.case_id(key)}:*"}
        ]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (SandboxFault.REJECTED_AFTER_PAYMENT, SandboxFault.OUTCOME_UNKNOWN):
            return scenario.name in PAYS
        if fault is SandboxFault.RESPONSE_LOST:
            return scenario is not LEAVE
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        payments = (await http.get("/payments", params={"invoice_id": key})).raise_for_status()
        invoice = await http.get(f"/erp/invoices/{key}")
        rows = payments.json()
        writes: Counter[str] = Counter()
        writes["payment"] = len(rows)
        if invoice.status_code != 404:  # an unknown invoice (the bad-input matrix) has none
            for change in invoice.raise_for_status().json()["status_history"]:
                writes[f"ERP status {change['status']}"] += 1
        return Ledger(
            writes=writes,
            reversals={row["payment_id"]: row["status"] == "reversed" for row in rows},
        )

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault in (
            SandboxFault.REJECTED_AFTER_PAYMENT,
            SandboxFault.OUTCOME_UNKNOWN,
        ):
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                AUTO.name: {InvoiceStatus.PAID},
                APPROVE.name: {InvoiceStatus.PAID},
                REJECT.name: {CaseStatus.REJECTED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        payments = ledger.writes["payment"]
        reversed_ = sum(ledger.reversals.values())
        match outcome.status:
            case InvoiceStatus.PAID:
                if payments != 1 or reversed_:
                    found.append(f"paid, but {payments} payment(s), {reversed_} reversed")
            case CaseStatus.FAILED_COMPENSATED:
                if payments != 1 or reversed_ != 1:
                    found.append(
                        f"compensated, but {payments} payment(s), {reversed_} reversed "
                        "(every compensated case must have its reversal)"
                    )
            case _:
                if payments:
                    found.append(f"{outcome.status}, yet {payments} payment(s) in the ledger")
        kinds = [event.kind for event in outcome.audit]
        if case.model_fault is ModelFault.PRIMARY_DOWN:
            found += fallback_problems(outcome)
        if case.model_fault is ModelFault.PROVIDER_DOWN:
            decisions = [e.summary for e in outcome.audit if e.kind is AuditKind.POLICY_DECISION]
            if AuditKind.AGENT_FAILED not in kinds or not any(
                "no agent proposal" in summary for summary in decisions
            ):
                found.append("the model was down, but the case did not go to a person saying so")
        return found


DRIVER = InvoiceExceptionDriver()
