"""Insurance-claim scenarios: the claim systems and the agents' model faked by activity name
(``tests.insurance_claim_support.FakeClaimSystems``). The coordinator's region and each
specialist's are child workflows with histories of their own, stored beside the case's:
``insurance_claim_<name>.agent.json`` and ``.agent-<specialist>-<n>.json``."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.claim_history import FraudFinding
from casework.agents.region import AgentRegionWorkflow
from casework.case import CaseState
from casework.testing.cases import open_task
from casework.testing.recorder import Recordings, Scenario, nothing
from casework.testing.signing import decide
from casework.testing.temporal import eventually
from tests.insurance_claim_support import (
    FakeClaimSystems,
    claim_record,
    coordinator_lies,
    insurance_policy,
    past_claim,
)
from workflows.insurance_claim import (
    FRAUD_FINDING,
    ClaimStatus,
    FraudFindingNotice,
    InsuranceClaimInput,
    InsuranceClaimResult,
    InsuranceClaimWorkflow,
    Outcome,
)

ClaimHandle = WorkflowHandle[InsuranceClaimWorkflow, InsuranceClaimResult]
LARGE_ESTIMATE = [("PANEL-SIDE", "Side panel, replace", "5200.00")]
FINDING = "FF-REPLAY"


def _systems(claim_id: str, peril: str = "collision", large: bool = False) -> FakeClaimSystems:
    policy = insurance_policy(f"POL-{claim_id}")
    claim, documents = (
        claim_record(claim_id, policy, peril=peril, lines=LARGE_ESTIMATE)
        if large
        else claim_record(claim_id, policy, peril=peril)
    )
    fakes = FakeClaimSystems(claim=claim, documents=documents, policy=policy)
    fakes.benchmarks["PANEL-SIDE"] = "6000.00"
    return fakes


def _small(claim_id: str, now: datetime) -> FakeClaimSystems:
    return _systems(claim_id)


def _large(claim_id: str, now: datetime) -> FakeClaimSystems:
    return _systems(claim_id, large=True)


def _flagged(claim_id: str, now: datetime) -> FakeClaimSystems:
    fakes = _systems(claim_id)
    fakes.prior = [past_claim(fakes.policy, 1, days_before=200, fraud_confirmed=True)]
    return fakes


def _flood(claim_id: str, now: datetime) -> FakeClaimSystems:
    return _systems(claim_id, peril="flood")


def _found_fraudulent(claim_id: str, now: datetime) -> FakeClaimSystems:
    fakes = _systems(claim_id)
    fakes.findings[FINDING] = FraudFinding(
        finding_id=FINDING,
        claim_id=claim_id,
        source="special investigations",
        reason="the garage invoiced repairs it never made",
        recorded_at=now,
    )
    return fakes


def _inflated(claim_id: str, now: datetime) -> FakeClaimSystems:
    fakes = _systems(claim_id)
    fakes.turns = coordinator_lies(amount="5000.00", assessed_damage="5250.00", confidence=0.99)
    return fakes


async def _adjuster_approves(env: WorkflowEnvironment, handle: ClaimHandle) -> None:
    task = await open_task(handle, "an adjuster's task")
    if task.role != "claims_adjuster":
        raise RuntimeError(f"expected a task for claims_adjuster, not {task.role}")
    await decide(handle, approver="quinn", action="approve", comment="photos agree")


async def _investigator_rejects(env: WorkflowEnvironment, handle: ClaimHandle) -> None:
    task = await open_task(handle, "a special investigation")
    if task.role != "fraud_investigator":
        raise RuntimeError(f"expected a task for fraud_investigator, not {task.role}")
    await decide(handle, approver="kate", action="reject", comment="staged accident")


async def _fraud_found_after_payout(env: WorkflowEnvironment, handle: ClaimHandle) -> None:
    async def paid() -> bool | None:
        state = await handle.query("state", result_type=CaseState)
        return state.status == ClaimStatus.PAID or None

    await eventually(paid, what="the claim to be paid")
    claim_id = handle.id.removeprefix("insurance-claim-")
    await handle.signal(FRAUD_FINDING, FraudFindingNotice(claim_id=claim_id, finding_id=FINDING))


RECORDINGS = Recordings(
    workflow=InsuranceClaimWorkflow,
    key=lambda name: f"CLM-REPLAY-{name}",
    start=lambda claim_id, systems: InsuranceClaimInput(claim_id=claim_id),
    children={
        "agent": AgentRegionWorkflow,
        "agent-coverage_analyst-1": AgentRegionWorkflow,
        "agent-damage_assessor-2": AgentRegionWorkflow,
        "agent-fraud_analyst-3": AgentRegionWorkflow,
    },
    scenarios=(
        Scenario("fast_tracked", _small, nothing, {"outcome": Outcome.FAST_TRACKED}),
        Scenario(
            "adjuster_approved", _large, _adjuster_approves, {"outcome": Outcome.ADJUSTER_APPROVED}
        ),
        Scenario(
            "investigated_denied",
            _flagged,
            _investigator_rejects,
            {"outcome": Outcome.DENIED_AFTER_INVESTIGATION},
        ),
        Scenario("not_covered_denied", _flood, nothing, {"outcome": Outcome.DENIED_NOT_COVERED}),
        Scenario(
            "recovered_after_payout",
            _found_fraudulent,
            _fraud_found_after_payout,
            {"outcome": Outcome.RECOVERED_AFTER_FRAUD_FINDING, "status": ClaimStatus.RECOVERED},
        ),
        # The coordinator asks for more than the records bear: an adjuster decides, capped.
        Scenario(
            "inflated_amount_capped",
            _inflated,
            _adjuster_approves,
            {"outcome": Outcome.ADJUSTER_APPROVED},
        ),
    ),
)
