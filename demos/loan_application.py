"""The loan-application part of ``casework demo``: one application per path worth seeing.

The demo plays the credit bureau (it answers each report request as soon as it sees it, usually
while the case is still busy with KYC, so the report arrives early and is kept), fraud
monitoring (an alert on one disbursed loan) and the inbound adapter that routes both to their
cases (``demos.loan_messages``). It leaves one loan under fraud watch and one waiting for an
underwriter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from activities.fraud import FraudAlert
from casework.case import CaseState, CaseStatus
from casework.cli.cases import CommandError, drive_case
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    Responder,
    create_once,
    sandbox_request,
)
from demos.loan_messages import NoCaseForMessage, bureau_report, deliver, raise_fraud_alert
from workflows.loan_application import LoanApplicationInput, LoanStatus

SANCTIONED = {
    "entry_id": "SAN-DEMO-1",
    "name": "Viktor Brandt",
    "date_of_birth": "1971-09-02",
    "program": "EU consolidated list (demo)",
}
BUREAU_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Applicant:
    """Who applies for how much, and what fraud monitoring says once the loan is paid out."""

    full_name: str
    date_of_birth: str
    amount: str
    term_months: int
    declared_income: str
    documents: list[dict[str, Any]]
    fraud_alert: str | None = None
    """Fraud monitoring's alert once the loan is paid out; None: no alert."""


SCENARIOS = [
    DemoScenario(
        1,
        "salaried, small loan: auto-approved, paid out, under fraud watch",
        LoanStatus.DISBURSED,
        Applicant(
            "Anna Schmidt",
            "1988-03-14",
            "18000.00",
            60,
            "4200.00",
            [{"document_id": "PAYSLIP-1", "kind": "payslip", "monthly_amount": "4200.00"}],
        ),
    ),
    DemoScenario(
        2,
        "freelancer: agent reads the income, paid out, then a fraud alert reverses it",
        CaseStatus.FAILED_COMPENSATED,
        Applicant(
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
            fraud_alert="payout account opened two days ago and linked to a mule network",
        ),
    ),
    DemoScenario(
        3,
        "85,000 home renovation: waits for an underwriter",
        "awaiting underwriter",
        Applicant(
            "Lena Fischer",
            "1979-06-30",
            "85000.00",
            180,
            "7000.00",
            [{"document_id": "PAYSLIP-3", "kind": "payslip", "monthly_amount": "7000.00"}],
        ),
    ),
    DemoScenario(
        4,
        "applicant on the sanctions list: rejected",
        CaseStatus.REJECTED,
        Applicant(
            SANCTIONED["name"],
            SANCTIONED["date_of_birth"],
            "9000.00",
            36,
            "3000.00",
            [{"document_id": "PAYSLIP-4", "kind": "payslip", "monthly_amount": "3000.00"}],
        ),
    ),
]


def application_id_for(batch: int, scenario: DemoScenario[Applicant]) -> str:
    return f"APP-{scenario.number(batch)}"


async def reference(run: DemoRun) -> None:
    await create_once(
        run.sandbox, f"/kyc/sanctions/{SANCTIONED['entry_id']}", "/kyc/sanctions", SANCTIONED
    )


async def seed(run: DemoRun, scenario: DemoScenario[Applicant]) -> LoanApplicationInput:
    """The applicant's identity document, credit file and loan application."""
    sandbox, applicant = run.sandbox, scenario.facts
    application_id = application_id_for(run.batch, scenario)
    national_id = f"ID-{application_id}"
    await sandbox_request(
        sandbox,
        "POST",
        "/kyc/identities",
        {
            "document_number": national_id,
            "full_name": applicant.full_name,
            "date_of_birth": applicant.date_of_birth,
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
                "full_name": applicant.full_name,
                "date_of_birth": applicant.date_of_birth,
                "national_id": national_id,
                "country": "DE",
                "email": f"{application_id.lower()}@customers.example.com",
            },
            "amount": applicant.amount,
            "term_months": applicant.term_months,
            "declared_monthly_income": applicant.declared_income,
            "documents": applicant.documents,
        },
    )
    return LoanApplicationInput(application_id=application_id, submitted_by="paul")


async def play(run: DemoRun, scenario: DemoScenario[Applicant], handle: WorkflowHandle) -> None:
    """Play the bureau as soon as the case asks it, then fraud monitoring."""
    application_id = application_id_for(run.batch, scenario)
    await _play_bureau(run.client, run.sandbox, application_id, handle)
    await drive_case(handle, _people(run.client, run.sandbox, scenario, application_id))


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
    client: Client,
    sandbox: httpx.AsyncClient,
    scenario: DemoScenario[Applicant],
    application_id: str,
) -> Responder:
    """Fraud monitoring raises the scenario's alert once the loan is paid out; everything else
    (the fraud watch, an underwriting task) is left waiting."""
    pending = [scenario.facts.fraud_alert] if scenario.facts.fraud_alert else []

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.status != LoanStatus.DISBURSED or not pending:
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


DEMO = ProcessDemo(
    process="loan-application",
    order=50,
    scenarios=SCENARIOS,
    numbered=Numbered("/lending/applications", "application_id", "APP-"),
    seed=seed,
    reference=reference,
    play=play,
)
