"""The loan-application part of ``casework demo``: one application per path worth seeing.

The demo plays the credit bureau (it answers each report request as soon as it sees it, usually
while the case is still busy with KYC, so the report arrives early and is kept), fraud
monitoring (an alert on one disbursed loan) and the inbound adapter that routes both to their
cases (``casework.correlation``). It leaves one loan under fraud watch and one waiting for an
underwriter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from activities.fraud import FraudAlert
from casework.case import CaseState, CaseStatus
from casework.cli.cases import CommandError, drive_case
from casework.cli.seeding import DemoCase, create_once, sandbox_request
from casework.config import Settings
from casework.correlation import NoCaseForMessage, bureau_report, deliver, raise_fraud_alert
from workflows.loan_application import LoanApplicationInput, LoanApplicationWorkflow

SANCTIONED = {
    "entry_id": "SAN-DEMO-1",
    "name": "Viktor Brandt",
    "date_of_birth": "1971-09-02",
    "program": "EU consolidated list (demo)",
}
BUREAU_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class LoanScenario:
    suffix: int
    story: str
    full_name: str
    date_of_birth: str
    amount: str
    term_months: int
    declared_income: str
    documents: list[dict[str, Any]]
    expected: str
    fraud_alert: str | None = None
    """Fraud monitoring's alert once the loan is paid out; None: no alert."""


SCENARIOS = [
    LoanScenario(
        1,
        "salaried, small loan: auto-approved, paid out, under fraud watch",
        "Anna Schmidt",
        "1988-03-14",
        "18000.00",
        60,
        "4200.00",
        [{"document_id": "PAYSLIP-1", "kind": "payslip", "monthly_amount": "4200.00"}],
        expected=CaseStatus.DISBURSED,
    ),
    LoanScenario(
        2,
        "freelancer: agent reads the income, paid out, then a fraud alert reverses it",
        "Jonas Weber",
        "1990-11-02",
        "15000.00",
        48,
        "4000.00",
        [
            {
                "document_id": "FREELANCE-1",
                "kind": "freelance_statement",
                "description": "Tax adviser's statement, design studio",
                "text": "Average monthly income over the last 24 months: 3,950.00 EUR.",
            }
        ],
        expected=CaseStatus.FAILED_COMPENSATED,
        fraud_alert="payout account opened two days ago and linked to a mule network",
    ),
    LoanScenario(
        3,
        "85,000 home renovation: waits for an underwriter",
        "Lena Fischer",
        "1979-06-30",
        "85000.00",
        180,
        "7000.00",
        [{"document_id": "PAYSLIP-3", "kind": "payslip", "monthly_amount": "7000.00"}],
        expected="awaiting underwriter",
    ),
    LoanScenario(
        4,
        "applicant on the sanctions list: rejected",
        SANCTIONED["name"],
        SANCTIONED["date_of_birth"],
        "9000.00",
        36,
        "3000.00",
        [{"document_id": "PAYSLIP-4", "kind": "payslip", "monthly_amount": "3000.00"}],
        expected=CaseStatus.REJECTED,
    ),
]


def application_id_for(batch: int, scenario: LoanScenario) -> str:
    return f"APP-{batch * 1000 + scenario.suffix}"


async def seed(sandbox: httpx.AsyncClient, batch: int) -> dict[int, str]:
    await create_once(
        sandbox, f"/kyc/sanctions/{SANCTIONED['entry_id']}", "/kyc/sanctions", SANCTIONED
    )
    application_ids = {}
    for scenario in SCENARIOS:
        application_id = application_id_for(batch, scenario)
        national_id = f"ID-{application_id}"
        await sandbox_request(
            sandbox,
            "POST",
            "/kyc/identities",
            {
                "document_number": national_id,
                "full_name": scenario.full_name,
                "date_of_birth": scenario.date_of_birth,
            },
        )
        await sandbox_request(
            sandbox,
            "POST",
            "/credit-bureau/files",
            {"subject_id": national_id, "score": 745, "monthly_debt_payments": "250.00"},
        )
        await sandbox_request(
            sandbox,
            "POST",
            "/lending/applications",
            {
                "application_id": application_id,
                "applicant": {
                    "customer_id": f"CUST-{application_id}",
                    "full_name": scenario.full_name,
                    "date_of_birth": scenario.date_of_birth,
                    "national_id": national_id,
                    "country": "DE",
                    "email": f"{application_id.lower()}@customers.example.com",
                },
                "amount": scenario.amount,
                "term_months": scenario.term_months,
                "declared_monthly_income": scenario.declared_income,
                "documents": scenario.documents,
            },
        )
        application_ids[scenario.suffix] = application_id
    return application_ids


async def run(
    client: Client, settings: Settings, sandbox: httpx.AsyncClient, batch: int
) -> list[DemoCase]:
    """Seed batch ``batch``'s applications, start and drive their cases."""
    application_ids = await seed(sandbox, batch)
    handles = {
        suffix: await client.start_workflow(
            "LoanApplication",
            LoanApplicationInput(application_id=application_id, submitted_by="paul"),
            id=LoanApplicationWorkflow.case_id(application_id),
            task_queue=settings.task_queue,
        )
        for suffix, application_id in application_ids.items()
    }
    await asyncio.gather(
        *(
            _play_bureau(client, sandbox, application_ids[s.suffix], handles[s.suffix])
            for s in SCENARIOS
        )
    )
    await asyncio.gather(
        *(
            drive_case(handles[s.suffix], _people(client, sandbox, s, application_ids[s.suffix]))
            for s in SCENARIOS
        )
    )
    return [DemoCase(handles[s.suffix], s.story, s.expected) for s in SCENARIOS]


async def _play_bureau(
    client: Client, sandbox: httpx.AsyncClient, application_id: str, handle: WorkflowHandle
) -> None:
    """Answer the case's report request as soon as the bureau has it, and deliver the answer."""
    deadline = time.monotonic() + BUREAU_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        requests = await sandbox_request(
            sandbox, "GET", f"/credit-bureau/requests?application_id={application_id}"
        )
        if requests:
            request_id = requests[0]["request_id"]
            await sandbox_request(sandbox, "POST", f"/credit-bureau/requests/{request_id}/answer")
            try:
                delivery = await deliver(client, await bureau_report(sandbox, request_id))
            except NoCaseForMessage:
                print(f"  {handle.id}: decided before the bureau answered; report not needed")
                return
            print(f"  {delivery.summary}")
            return
        await asyncio.sleep(0.1)
    raise CommandError(
        f"{handle.id} never asked the bureau for a report; is the worker running? "
        f"see: casework show {handle.id}"
    )


def _people(
    client: Client, sandbox: httpx.AsyncClient, scenario: LoanScenario, application_id: str
) -> Callable[[WorkflowHandle, CaseState], Awaitable[bool]]:
    """Fraud monitoring raises the scenario's alert once the loan is paid out; everything else
    (the fraud watch, an underwriting task) is left waiting."""
    pending = [scenario.fraud_alert] if scenario.fraud_alert else []

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.status != CaseStatus.DISBURSED or not pending:
            return False
        # Fraud monitoring keeps the alert; the case reads it back from there.
        alert = await raise_fraud_alert(
            sandbox,
            FraudAlert(
                application_id=application_id,
                alert_id=f"FA-{application_id}",
                reason=pending.pop(),
            ),
        )
        delivery = await deliver(client, alert)
        print(f"  {delivery.summary}")
        return True

    return respond
