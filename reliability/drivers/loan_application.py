"""The loan-application process in the reliability suite: disburses exactly once, or reverses.

Its writes are the credit-report request, the application's status in the lending system (the
approval), and the disbursement; when the disbursement is refused for good after the approval was
recorded, the approval must be reversed. The credit bureau answers later, as a message: the
driver plays the bureau (``answer_outside``). A disbursed loan stays under fraud watch for days,
so a running case that has disbursed rests there (``resting_statuses``).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel
from temporalio.client import Client

from casework.case import TOOL_RETRY, CaseStatus
from casework.testing.scripted_llm import ScriptedReply, case_value
from demos.loan_messages import bureau_report, deliver
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
from workflows.loan_application import (
    LoanApplicationInput,
    LoanApplicationWorkflow,
    LoanStatus,
)

DECLARED_INCOME = "4000.00"
STATEMENT = "Average monthly income: 4,000.00 EUR"
# Within the policy's 25,000.00 auto-approval ceiling, and affordable: approved by the rules
# when the income reader is confident.
SMALL_LOAN = "20000.00"
# Above the ceiling, within the underwriter's 100,000.00: an underwriter decides.
LARGE_LOAN = "60000.00"
GOOD_SCORE = 760
# Below the policy's 520: rejected by the rules, with no person.
BAD_SCORE = 480

AUTO = Scenario("approved by the rules, disbursed", People.APPROVE)
APPROVE = Scenario("underwriter approves, disbursed", People.APPROVE)
REJECT = Scenario("underwriter rejects", People.REJECT)
LEAVE = Scenario("left waiting for an underwriter", People.LEAVE)
RULES_REJECT = Scenario("rejected by the rules", People.APPROVE)
"""Finishes with no person (the bad-input matrix's finished case)."""
DISBURSES = frozenset({AUTO.name, APPROVE.name})


class LoanApplicationDriver(CaseDriver):
    process = "loan-application"
    scenarios = (AUTO, APPROVE, AUTO, REJECT, APPROVE, LEAVE)
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault)
    submitter = "paul"
    waiting_scenario = LEAVE
    finished_scenario = RULES_REJECT
    resting_statuses: ClassVar[frozenset[str]] = frozenset({LoanStatus.DISBURSED})
    outside_statuses: ClassVar[frozenset[str]] = frozenset({CaseStatus.AWAITING_EXTERNAL})

    def new_key(self, tag: str, number: int) -> str:
        return f"LAP-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return LoanApplicationInput(application_id=key, submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return LoanApplicationWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "an application the lending system does not have",
                {"application_id": f"LAP-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """The applicant's identity document and credit file, and the application with an
        accountant's statement of freelance income (which the income reader reads)."""
        national_id = f"ID-{key}"
        name = f"Applicant {key}"
        born = "1985-04-12"
        small = scenario in (AUTO, RULES_REJECT)
        for path, body in (
            (
                "/kyc/identities",
                {
                    "document_number": national_id,
                    "full_name": name,
                    "date_of_birth": born,
                    "status": "valid",
                },
            ),
            (
                "/credit-bureau/files",
                {
                    "subject_id": national_id,
                    "score": BAD_SCORE if scenario is RULES_REJECT else GOOD_SCORE,
                    "monthly_debt_payments": "300.00",
                    "defaults": 0,
                },
            ),
            (
                "/lending/applications",
                {
                    "application_id": key,
                    "applicant": {
                        "customer_id": f"CUST-{key}",
                        "full_name": name,
                        "date_of_birth": born,
                        "national_id": national_id,
                        "country": "DE",
                        "email": f"{key.lower()}@customers.example.com",
                    },
                    "amount": SMALL_LOAN if small else LARGE_LOAN,
                    "currency": "EUR",
                    "term_months": 60,
                    "purpose": "car",
                    "declared_monthly_income": DECLARED_INCOME,
                    "documents": [
                        {
                            "document_id": "DOC-FREELANCE",
                            "kind": "freelance_statement",
                            "description": "Accountant's statement of freelance income",
                            "text": STATEMENT,
                        }
                    ],
                },
            ),
        ):
            (await http.post(path, json=body)).raise_for_status()

    # -- the outside world: the credit bureau ------------------------------------------------

    async def answer_outside(
        self, client: Client, http: httpx.AsyncClient, case: PlannedCase
    ) -> bool:
        """The bureau answers the case's report request, and its answer is delivered to the
        case as ``casework deliver credit-report`` does."""
        requests = (
            await http.get("/credit-bureau/requests", params={"application_id": case.key})
        ).raise_for_status()
        if not requests.json():
            return False
        request_id = requests.json()[0]["request_id"]
        (await http.post(f"/credit-bureau/requests/{request_id}/answer")).raise_for_status()
        await deliver(client, await bureau_report(http, request_id))
        return True

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        application_id = case_value(request, "application", "application_id")
        return LoanApplicationWorkflow.case_id(application_id) if application_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        """The statement supports the declared income, read confidently: the figure is the one
        the statement states."""
        return ScriptedReply(
            content=json.dumps(
                {
                    "assessment": "supported",
                    "verified_monthly_income": DECLARED_INCOME,
                    "confidence": 0.9,
                    "findings": ["DOC-FREELANCE: accountant confirms the average monthly income"],
                    "missing": [],
                    "explanation": "The accountant's statement gives the monthly average.",
                }
            )
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        application = f"/lending/applications/{key}"
        disbursement = {
            "method": "POST",
            "path": "/payments/disbursements",
            "idempotency_key": f"{case_id}:disbursement",
        }
        approval = {
            "method": "POST",
            "path": f"{application}/status",
            "idempotency_key": f"{case_id}:status-approved",
        }
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": application, "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", application, TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("GET", application, SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                # The approval and the disbursement are made, then their answers lost: the
                # retries must find them by idempotency key.
                return [
                    approval | {"status": 503, "when": "after"},
                    disbursement | {"status": 503, "when": "after"},
                ]
            case SandboxFault.OUTCOME_UNKNOWN:
                # Paid out on the first attempt, every answer lost: the case must find its
                # disbursement in the ledger by its idempotency key and carry on with it.
                return [
                    disbursement
                    | {"status": 503, "when": "after", "count": TOOL_RETRY.maximum_attempts}
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # The payments system refuses the disbursement for good after the approval was
                # recorded: the approval must be reversed, riding out a 503 first.
                return [
                    disbursement | {"status": 422},
                    {
                        "method": "POST",
                        "path": f"{application}/status",
                        "idempotency_key": f"{case_id}:status-approval_reversed",
                        "status": 503,
                    },
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [
            {
                "method": "POST",
                "path": "/payments/disbursements",
                "idempotency_key": f"{self.case_id(key)}:*",
            }
        ]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (
            SandboxFault.RESPONSE_LOST,
            SandboxFault.REJECTED_AFTER_PAYMENT,
            SandboxFault.OUTCOME_UNKNOWN,
        ):
            return scenario.name in DISBURSES
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        response = await http.get(f"/lending/applications/{key}")
        if response.status_code == 404:  # an unknown application (the bad-input matrix)
            return Ledger()
        application = response.raise_for_status().json()
        # The first entry is the application's submission (the seeding), not the case.
        statuses = [entry["status"] for entry in application["status_history"][1:]]
        writes: Counter[str] = Counter(f"lending status {status}" for status in statuses)
        requests = (
            await http.get("/credit-bureau/requests", params={"application_id": key})
        ).raise_for_status()
        writes["credit report request"] = len(requests.json())
        payments = (await http.get("/payments", params={"invoice_id": key})).raise_for_status()
        rows = payments.json()
        writes["disbursement"] = len(rows)
        reversals = {row["payment_id"]: row["status"] == "reversed" for row in rows}
        if "approved" in statuses:
            reversals["approval"] = "approval_reversed" in statuses
        return Ledger(writes=+writes, reversals=reversals)

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault is SandboxFault.REJECTED_AFTER_PAYMENT:
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                AUTO.name: {LoanStatus.DISBURSED},
                APPROVE.name: {LoanStatus.DISBURSED},
                REJECT.name: {CaseStatus.REJECTED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
                RULES_REJECT.name: {CaseStatus.REJECTED},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        writes = ledger.writes
        disbursed = writes["disbursement"]
        reversed_ = sum(ledger.reversals.values())
        if writes["credit report request"] != 1:
            found.append(f"{writes['credit report request']} credit report request(s), not 1")
        match outcome.status:
            case LoanStatus.DISBURSED:
                if disbursed != 1 or reversed_ or writes["lending status approved"] != 1:
                    found.append(f"disbursed, but the systems record {dict(writes)}")
            case CaseStatus.FAILED_COMPENSATED:
                if disbursed or writes["lending status approval_reversed"] != 1:
                    found.append(
                        f"compensated, but the systems record {dict(writes)} (every compensated "
                        "case must have its approval reversed)"
                    )
            case _:
                if disbursed or writes["lending status approved"]:
                    found.append(f"{outcome.status}, yet the systems record {dict(writes)}")
        return found + agent_fault_problems(case, outcome)


DRIVER = LoanApplicationDriver()
