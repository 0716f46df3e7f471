"""The customer-onboarding part of ``casework demo``: one applicant per outcome, and a schedule.

Each batch gets its own applications (CO-1001..) with their identity documents in the KYC
registry. The applicant who withdraws does so while the card is being ordered (the sandbox delays
that call), so everything provisioned before is undone; the provisioning failure is the card
system refusing that case's order (a fault aimed at its idempotency key); the PEP goes to
enhanced due diligence, where compliance (sven) approves. The demo also creates a paused monthly
schedule re-running the PEP's onboarding checks, which the Web UI's Schedules page shows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date

import httpx
from temporalio.client import ScheduleAlreadyRunningError, WorkflowHandle

from casework.case import CaseStatus
from casework.case.tasks import TaskDecision
from casework.catalogue import discover
from casework.cli.cases import CommandError
from casework.cli.schedule import create_schedule
from casework.cli.seeding import (
    WRITE_ATTEMPTS,
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    play_decisions,
    sandbox_request,
)
from workflows.customer_onboarding import (
    CustomerOnboardingInput,
    CustomerOnboardingWorkflow,
    OnboardingStatus,
    Withdrawal,
)

WITHDRAW_DEADLINE_SECONDS = 120


@dataclass(frozen=True)
class Applicant:
    full_name: str
    date_of_birth: date
    nationality: str = "FR"
    pep: bool = False
    withdraws: bool = False
    card_order_fails: bool = False


SCENARIOS = [
    DemoScenario(
        1,
        "onboarding: verified, low risk, provisioned",
        OnboardingStatus.ONBOARDED,
        Applicant("Anna Louise Martin", date(1985, 3, 14)),
    ),
    DemoScenario(
        2,
        "onboarding: withdrawn while provisioning, all undone",
        OnboardingStatus.WITHDRAWN,
        Applicant("Jonas Berg", date(1990, 7, 2), withdraws=True),
    ),
    DemoScenario(
        3,
        "onboarding: the card order fails, earlier steps undone",
        CaseStatus.FAILED_COMPENSATED,
        Applicant("Lea Novak", date(1978, 11, 23), card_order_fails=True),
    ),
    DemoScenario(
        4,
        "onboarding: a PEP, enhanced due diligence, compliance approves",
        OnboardingStatus.ONBOARDED,
        Applicant("Marek Horvat", date(1969, 5, 9), nationality="HR", pep=True),
        decisions={
            "compliance_officer": TaskDecision(
                approver="sven", action="approve", comment="source of wealth documented"
            )
        },
    ),
]


def application_id_for(number: int) -> str:
    return f"CO-{number}"


def passport(applicant: Applicant, document_number: str) -> str:
    return (
        "PASSPORT\n"
        f"Name: {applicant.full_name}\n"
        f"Date of birth: {applicant.date_of_birth.isoformat()}\n"
        f"Document number: {document_number}\n"
        f"Nationality: {applicant.nationality}\n"
        "Date of expiry: 2032-01-31\n"
    )


def application_for(number: int, applicant: Applicant) -> CustomerOnboardingInput:
    document_number = f"P{number}X"
    return CustomerOnboardingInput(
        application_id=application_id_for(number),
        submitted_by="alice",
        full_name=applicant.full_name,
        date_of_birth=applicant.date_of_birth,
        nationality=applicant.nationality,
        email=f"applicant-{number}@example.com",
        document_number=document_number,
        identity_document=passport(applicant, document_number),
        username=f"demo{number}",
    )


async def seed(run: DemoRun, scenario: DemoScenario[Applicant]) -> CustomerOnboardingInput:
    """The applicant's passport in the KYC registry; a PEP entry; faults for the failures."""
    sandbox, applicant, number = run.sandbox, scenario.facts, scenario.number(run.batch)
    request = application_for(number, applicant)
    await sandbox_request(
        sandbox,
        "POST",
        "/kyc/identities",
        {
            "document_number": request.document_number,
            "full_name": applicant.full_name,
            "date_of_birth": applicant.date_of_birth.isoformat(),
        },
    )
    if applicant.pep:
        await sandbox_request(
            sandbox,
            "POST",
            "/pep/persons",
            {
                "entry_id": f"PEPD-{number}",
                "name": applicant.full_name,
                "date_of_birth": applicant.date_of_birth.isoformat(),
                "position": "Deputy minister of finance",
                "country": applicant.nationality,
            },
        )
    case_id = CustomerOnboardingWorkflow.case_id_for(request)
    if applicant.card_order_fails:
        await _fault_card_order(sandbox, case_id, status=503, count=WRITE_ATTEMPTS)
    if applicant.withdraws:
        # Slow enough that the withdrawal arrives while the card is being ordered.
        await _fault_card_order(sandbox, case_id, status=0, count=1, delay_seconds=5)
    return request


async def _fault_card_order(sandbox: httpx.AsyncClient, case_id: str, **fault: object) -> None:
    await sandbox_request(
        sandbox,
        "POST",
        "/_faults",
        {"method": "POST", "path": "/cards/orders", "idempotency_key": f"{case_id}:card", **fault},
    )


async def play(run: DemoRun, scenario: DemoScenario[Applicant], handle: WorkflowHandle) -> None:
    if scenario.facts.withdraws:
        await _withdraw_once_the_login_exists(run, scenario, handle)
    if scenario.facts.pep:
        await _schedule_monthly_review(run, scenario, handle)
    await play_decisions(run, scenario, handle)


async def _withdraw_once_the_login_exists(
    run: DemoRun, scenario: DemoScenario[Applicant], handle: WorkflowHandle
) -> None:
    application_id = application_id_for(scenario.number(run.batch))
    deadline = time.monotonic() + WITHDRAW_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        logins = await sandbox_request(
            run.sandbox, "GET", f"/online-banking/logins?application_id={application_id}"
        )
        if logins:
            withdrawal = Withdrawal(
                reason="I found an account elsewhere", requested_by=scenario.facts.full_name
            )
            await handle.signal("withdraw", withdrawal)
            print(f"  {handle.id}: the applicant withdrew while the card was being ordered")
            return
        await asyncio.sleep(0.2)
    raise CommandError(
        f"{handle.id} never created the online-banking login; is the worker running? "
        f"see: casework show {handle.id}"
    )


async def _schedule_monthly_review(
    run: DemoRun, scenario: DemoScenario[Applicant], handle: WorkflowHandle
) -> None:
    """A paused monthly schedule that re-runs the high-risk applicant's checks: the Schedules
    page shows it; ``temporal schedule trigger`` runs it once."""
    number = scenario.number(run.batch)
    schedule_id = f"monthly-review-{application_id_for(number)}"
    try:
        await create_schedule(
            run.client,
            schedule_id,
            discover().process(CustomerOnboardingWorkflow.case_type),
            application_for(number, scenario.facts),
            run.settings.task_queue,
            cron=["0 9 1 * *"],
            paused=True,
            note="monthly re-review of a high-risk (PEP) applicant",
        )
    except ScheduleAlreadyRunningError:
        return
    print(f"  created paused schedule {schedule_id} (casework schedule list)")


DEMO = ProcessDemo(
    process="customer-onboarding",
    order=80,
    scenarios=SCENARIOS,
    numbered=Numbered("/pep/persons", "entry_id", "PEPD-"),
    seed=seed,
    play=play,
)
