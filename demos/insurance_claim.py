"""The insurance-claim part of ``casework demo``: one motor claim per outcome worth seeing.

Each claim gets its own policy (POL-1001..), claimant and claim (CLM-1001..), with its documents
as text: claim form, policy, repair estimate, police report. The coordinator and its three
specialists run as agent regions (offline: their stand-ins, which look things up and delegate
for real). The demo plays the adjuster, and special investigations, which records a fraud finding
on one claim after its payout and tells the case; it leaves one claim with the investigator and
the paid ones under their recovery watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
from temporalio.client import WorkflowHandle

from casework.case import CaseState
from casework.case.tasks import TaskDecision
from casework.cli.cases import drive_case
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    Responder,
    create_once,
    decide_tasks,
    sandbox_request,
)
from workflows.insurance_claim import (
    FRAUD_FINDING,
    ClaimStatus,
    FraudFindingNotice,
    InsuranceClaimInput,
)

VEHICLE_CLASS = "compact"
BENCHMARKS = [
    ("BUMPER-FRONT", "Front bumper, replace and paint", "320.00", "520.00", "700.00"),
    ("HEADLAMP-L", "Left headlamp unit", "180.00", "260.00", "350.00"),
    ("LABOUR-BODY", "Body shop labour (4 h)", "240.00", "320.00", "400.00"),
    ("PANEL-SIDE", "Side panel, replace and paint", "2800.00", "4200.00", "6000.00"),
    ("DOOR-REAR-R", "Rear right door, replace", "900.00", "1300.00", "1800.00"),
]
SMALL = [
    ("BUMPER-FRONT", "Front bumper, replace and paint", "640.00"),
    ("HEADLAMP-L", "Left headlamp unit", "380.00"),
    ("LABOUR-BODY", "Body shop labour, 4 h", "360.00"),
]
LARGE = [
    ("PANEL-SIDE", "Side panel, replace and paint", "5200.00"),
    ("DOOR-REAR-R", "Rear right door, replace", "1650.00"),
    ("LABOUR-BODY", "Body shop labour, 4 h", "400.00"),
]


@dataclass(frozen=True)
class MotorClaim:
    """What happened, what the garage estimates, and what else the systems hold."""

    peril: str
    description: str
    estimate: list[tuple[str, str, str]]
    repair_shop: str = "Main Street Garage"
    earlier_fraud: bool = False
    """The claim history holds an earlier claim of this claimant found fraudulent."""
    fraud_found_after_payout: str | None = None
    """Special investigations' finding once the claim is paid; None: none."""
    police_report: str = "Collision reported at 08:10; the other driver admitted fault."


SCENARIOS = [
    DemoScenario(
        1,
        "claim: small collision, fast-tracked and paid",
        ClaimStatus.PAID,
        MotorClaim("collision", "Rear-ended at a junction; bumper and headlamp damaged.", SMALL),
    ),
    DemoScenario(
        2,
        "claim: 7,250 side impact, the adjuster approves",
        ClaimStatus.PAID,
        MotorClaim("collision", "Side impact in a car park; panel and door damaged.", LARGE),
        decisions={
            "claims_adjuster": TaskDecision(
                approver="quinn", action="approve", comment="photos match the estimate"
            )
        },
    ),
    DemoScenario(
        3,
        "claim: earlier fraud on record, sent to special investigations",
        "awaiting fraud_investigator",
        MotorClaim(
            "collision",
            "Hit a lamp post at night; bumper and headlamp damaged.",
            SMALL,
            earlier_fraud=True,
        ),
    ),
    DemoScenario(
        4,
        "claim: flood damage, not covered: denied with reasons",
        ClaimStatus.DENIED,
        MotorClaim("flood", "Car parked by the river was flooded overnight.", SMALL),
    ),
    DemoScenario(
        5,
        "claim: paid, then a fraud finding recovers the payout",
        ClaimStatus.RECOVERED,
        MotorClaim(
            "collision",
            "Scraped along a wall; bumper and headlamp damaged.",
            SMALL,
            fraud_found_after_payout="the garage invoiced repairs it never made",
        ),
    ),
]


def estimate_text(lines: list[tuple[str, str, str]], shop: str) -> str:
    return f"Repair estimate, {shop}\nitem | description | amount (EUR)\n" + "\n".join(
        f"{code} | {description} | {amount}" for code, description, amount in lines
    )


async def seed_benchmarks(sandbox: httpx.AsyncClient) -> None:
    """The repair-cost benchmarks every claim is held to, unless an earlier run created them."""
    for code, description, low, typical, high in BENCHMARKS:
        await create_once(
            sandbox,
            f"/repair-costs/benchmarks/{code}/{VEHICLE_CLASS}",
            "/repair-costs/benchmarks",
            {
                "item_code": code,
                "vehicle_class": VEHICLE_CLASS,
                "description": description,
                "low": low,
                "typical": typical,
                "high": high,
            },
        )


async def reference(run: DemoRun) -> None:
    await seed_benchmarks(run.sandbox)


async def seed_claim(
    sandbox: httpx.AsyncClient, number: int | str, facts: MotorClaim, *, today: date | None = None
) -> str:
    """The policy, the claim history and the claim with its documents; the claim's ID."""
    today = today or datetime.now(UTC).date()
    policy_number, holder_id, claim_id = f"POL-{number}", f"H-{number}", f"CLM-{number}"
    wording = (
        "Motor policy. We pay for damage to your car caused by collision, theft, fire, storm "
        "or vandalism, up to the limit, less the deductible. We do not pay for racing or speed "
        "trials, or for flood."
    )
    await sandbox_request(
        sandbox,
        "POST",
        "/policy-admin/policies",
        {
            "policy_number": policy_number,
            "holder_id": holder_id,
            "holder_name": f"Demo claimant {number}",
            "inception_date": (today - timedelta(days=400)).isoformat(),
            "expiry_date": (today + timedelta(days=330)).isoformat(),
            "limit_amount": "25000.00",
            "deductible": "250.00",
            "covered_perils": ["collision", "theft", "fire", "storm", "vandalism"],
            "exclusions": [
                {"peril": "racing", "wording": "racing or speed trials"},
                {"peril": "flood", "wording": "flood, however caused"},
            ],
            "wording": wording,
        },
    )
    if facts.earlier_fraud:
        await sandbox_request(
            sandbox,
            "POST",
            "/claim-history/claims",
            {
                "claim_id": f"OLD-{number}",
                "policy_number": policy_number,
                "holder_id": holder_id,
                "loss_date": (today - timedelta(days=200)).isoformat(),
                "peril": "theft",
                "amount_paid": "0",
                "outcome": "denied",
                "description": "Reported theft of a car later found sold abroad",
                "fraud_confirmed": True,
            },
        )
    loss_date = today - timedelta(days=3)
    await sandbox_request(
        sandbox,
        "POST",
        "/claims",
        {
            "claim_id": claim_id,
            "policy_number": policy_number,
            "claimant_id": holder_id,
            "claimant_name": f"Demo claimant {number}",
            "claimant_email": f"claimant-{number}@example.com",
            "loss_date": loss_date.isoformat(),
            "peril": facts.peril,
            "description": facts.description,
            "vehicle_class": VEHICLE_CLASS,
            "repair_shop": facts.repair_shop,
            "estimate_lines": [
                {"item_code": code, "description": description, "amount": amount}
                for code, description, amount in facts.estimate
            ],
            "documents": [
                {
                    "kind": "claim_form",
                    "title": "Claim form",
                    "text": f"Claim form. Policy {policy_number}. Date of loss {loss_date}. "
                    f"Cause: {facts.peril}. What happened: {facts.description}",
                },
                {"kind": "policy", "title": f"Policy {policy_number}", "text": wording},
                {
                    "kind": "repair_estimate",
                    "title": "Repair estimate",
                    "text": estimate_text(facts.estimate, facts.repair_shop),
                },
                {"kind": "police_report", "title": "Police report", "text": facts.police_report},
            ],
        },
    )
    return claim_id


async def seed(run: DemoRun, scenario: DemoScenario[MotorClaim]) -> InsuranceClaimInput:
    claim_id = await seed_claim(run.sandbox, scenario.number(run.batch), scenario.facts)
    return InsuranceClaimInput(claim_id=claim_id)


async def report_fraud(
    sandbox: httpx.AsyncClient, handle: WorkflowHandle, claim_id: str, reason: str
) -> str:
    """Special investigations records a finding, then tells the case (which reads it back)."""
    finding = await sandbox_request(
        sandbox,
        "POST",
        "/claim-history/fraud-findings",
        {"claim_id": claim_id, "source": "special investigations", "reason": reason},
    )
    await handle.signal(
        FRAUD_FINDING, FraudFindingNotice(claim_id=claim_id, finding_id=finding["finding_id"])
    )
    return str(finding["finding_id"])


async def play(run: DemoRun, scenario: DemoScenario[MotorClaim], handle: WorkflowHandle) -> None:
    await drive_case(handle, _people(run, scenario))


def _people(run: DemoRun, scenario: DemoScenario[MotorClaim]) -> Responder:
    """The adjuster decides as the scenario says; once the claim is paid, special
    investigations reports the scenario's finding; anything else is left waiting."""
    decide = decide_tasks(run, scenario)
    pending = (
        [scenario.facts.fraud_found_after_payout] if scenario.facts.fraud_found_after_payout else []
    )
    claim_id = f"CLM-{scenario.number(run.batch)}"

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.open_tasks:
            return await decide(handle, state)
        if state.status != ClaimStatus.PAID or not pending:
            return False
        finding = await report_fraud(run.sandbox, handle, claim_id, pending.pop())
        print(f"  {handle.id}: special investigations reported fraud finding {finding}")
        return True

    return respond


DEMO = ProcessDemo(
    process="insurance-claim",
    order=70,
    scenarios=SCENARIOS,
    numbered=Numbered("/claims", "claim_id", "CLM-"),
    seed=seed,
    reference=reference,
    play=play,
)
