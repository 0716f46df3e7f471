"""The insurance-claim process on the time-skipping server: one test per outcome, and the
coordinator lying with confidence.

The systems are faked by activity name (``tests.insurance_claim_support``); the coordinator's and
the specialists' agent regions run for real as child workflows, their model answering with each
agent's offline stand-in unless a test scripts a lie.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.claim_history import FraudFinding
from activities.claims import PayoutRequest
from casework.agents.region import AgentRegionWorkflow, RegionOutcome
from casework.audit import AuditKind
from casework.case import CaseState, CaseStatus
from casework.testing.cases import audit, events_of, open_task
from casework.testing.fakes import fake_worker
from casework.testing.signing import decide
from casework.testing.temporal import eventually
from policies.insurance_claim import ClaimRoute
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
SPECIALIST_OUTCOMES = {
    "coverage_analyst": "answered",
    "damage_assessor": "answered",
    "fraud_analyst": "answered",
}


def systems(
    peril: str = "collision", lines: list[tuple[str, str, str]] | None = None, **extra: Any
):
    number = f"POL-{uuid.uuid4().hex[:8]}"
    policy = insurance_policy(number)
    claim_id = f"CLM-{uuid.uuid4().hex[:8]}"
    claim, documents = (
        claim_record(claim_id, policy, peril=peril, lines=lines)
        if lines
        else claim_record(claim_id, policy, peril=peril)
    )
    return FakeClaimSystems(claim=claim, documents=documents, policy=policy, **extra)


async def start(env: WorkflowEnvironment, fakes: FakeClaimSystems, queue: str) -> ClaimHandle:
    request = InsuranceClaimInput(claim_id=fakes.claim.claim_id)
    return await env.client.start_workflow(
        InsuranceClaimWorkflow.run,
        request,
        id=InsuranceClaimWorkflow.case_id_for(request),
        task_queue=queue,
    )


async def run_case(env: WorkflowEnvironment, fakes: FakeClaimSystems) -> InsuranceClaimResult:
    async with fake_worker(env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow) as q:
        return await (await start(env, fakes, q)).result()


# -- the outcomes --------------------------------------------------------------------------------


async def test_a_small_clear_claim_is_fast_tracked_paid_once_and_closed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.status, result.route) == (
        Outcome.FAST_TRACKED,
        ClaimStatus.PAID,
        ClaimRoute.FAST_TRACK,
    )
    # The estimate of 1,380.00 held to the benchmarks is 1,350.00; less the 250.00 deductible.
    assert result.amount_paid == Decimal("1100.00")
    assert result.decided_by == "policy"
    # The coordinator delegated to all three specialists, and each answered.
    assert (result.agent_outcome, result.specialists) == (
        RegionOutcome.ANSWERED,
        SPECIALIST_OUTCOMES,
    )
    # The fraud analyst read the similar claims over MCP: listed at its start, then one call.
    (listed,) = fakes.calls("mcp.list_tools")
    (similar,) = fakes.calls("mcp.call_tool")
    assert (listed.server, similar.tool) == ("sandbox", "find_similar_claims")
    (payout,) = fakes.calls("claims.pay")
    assert payout.idempotency_key == f"{result.case_id}:payout"
    assert fakes.statuses() == ["paid"]
    assert [letter.subject for letter in fakes.letters] == [
        f"Your claim {fakes.claim.claim_id} is paid"
    ]
    assert "no fraud finding within 30d" in result.message


async def test_a_larger_claim_is_paid_once_the_adjuster_approves(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(lines=[("PANEL-SIDE", "Side panel, replace", "5200.00")])
    fakes.benchmarks["PANEL-SIDE"] = "6000.00"
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "an adjuster's task")
        assert (task.role, task.amount) == ("claims_adjuster", Decimal("4950.00"))
        await decide(handle, approver="quinn", action="approve", comment="photos agree")
        result = await handle.result()

    assert (result.outcome, result.status, result.decided_by) == (
        Outcome.ADJUSTER_APPROVED,
        ClaimStatus.PAID,
        "quinn",
    )
    assert result.amount_paid == Decimal("4950.00")
    assert len(fakes.calls("claims.pay")) == 1


async def test_a_claim_nobody_decides_escalates_then_goes_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(lines=[("PANEL-SIDE", "Side panel, replace", "5200.00")])
    fakes.benchmarks["PANEL-SIDE"] = "6000.00"
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.status) == (Outcome.TIMED_OUT, CaseStatus.ON_HOLD)
    assert fakes.calls("claims.pay") == []


async def test_a_red_flag_in_the_claim_history_sends_the_claim_to_investigations(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    fakes.prior = [past_claim(fakes.policy, 1, days_before=200, fraud_confirmed=True)]
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "a special investigation")
        assert task.role == "fraud_investigator"
        assert "fraud was confirmed on earlier claims" in task.summary
        await decide(handle, approver="kate", action="reject", comment="staged accident")
        result = await handle.result()

    assert (result.outcome, result.status, result.route) == (
        Outcome.DENIED_AFTER_INVESTIGATION,
        ClaimStatus.DENIED,
        ClaimRoute.INVESTIGATE,
    )
    assert fakes.calls("claims.pay") == []
    assert fakes.statuses() == ["denied"]
    (letter,) = fakes.letters
    assert "kate decided against paying: staged accident" in letter.body


async def test_a_loss_the_policy_does_not_cover_is_denied_and_the_claimant_told_why(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(peril="flood")
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.status, result.decided_by) == (
        Outcome.DENIED_NOT_COVERED,
        ClaimStatus.DENIED,
        "policy",
    )
    (letter,) = fakes.letters
    assert "the policy does not cover flood" in letter.body
    assert fakes.statuses() == ["denied"]
    assert fakes.calls("claims.pay") == []


async def test_a_fraud_finding_after_payout_recovers_it_and_says_so(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    finding = FraudFinding(
        finding_id="FF-1",
        claim_id=fakes.claim.claim_id,
        source="special investigations",
        reason="the garage invoiced repairs it never made",
        recorded_at="2026-12-02T10:00:00Z",
    )
    fakes.findings[finding.finding_id] = finding
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)

        async def watching() -> bool | None:
            state = await handle.query("state", result_type=CaseState)
            return state.status == ClaimStatus.PAID or None

        await eventually(watching, what="the claim to be paid")
        # A finding nobody recorded is ignored; the recorded one recovers the payout.
        await handle.signal(
            FRAUD_FINDING, FraudFindingNotice(claim_id=fakes.claim.claim_id, finding_id="FF-9")
        )
        await handle.signal(
            FRAUD_FINDING, FraudFindingNotice(claim_id=fakes.claim.claim_id, finding_id="FF-1")
        )
        result = await handle.result()
        trail = await audit(handle)

    assert (result.outcome, result.status) == (
        Outcome.RECOVERED_AFTER_FRAUD_FINDING,
        ClaimStatus.RECOVERED,
    )
    assert fakes.reversed == ["CPO-1"]
    assert fakes.statuses() == ["paid", "reopened"]
    assert result.compensated == [
        f"claim {fakes.claim.claim_id} reopened on policy {fakes.policy.policy_number}",
        "payout CPO-1 reversed",
    ]
    assert "recovered after fraud finding FF-1" in result.message
    assert "the garage invoiced repairs it never made" in fakes.letters[-1].body
    ignored = events_of(trail, AuditKind.DECISION_REFUSED)
    assert any("does not confirm FF-9" in event.summary for event in ignored)


async def test_a_claim_that_cannot_be_closed_has_its_payout_reversed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(closing_fails=True)
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.status) == (
        Outcome.FAILED_COMPENSATED,
        CaseStatus.FAILED_COMPENSATED,
    )
    assert fakes.reversed == ["CPO-1"]


# -- an agent's word is not a fact -----------------------------------------------------------------


async def test_an_amount_above_what_the_records_bear_goes_to_an_adjuster_capped(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The coordinator lies with confidence: 5,000.00 on a claim the records put at 1,100.00.
    fakes = systems(
        turns=coordinator_lies(amount="5000.00", assessed_damage="5250.00", confidence=0.99)
    )
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "an adjuster's task")
        trail = await audit(handle)
        # The adjuster may not approve more than the records bear.
        assert (task.role, task.amount) == ("claims_adjuster", Decimal("1100.00"))
        await decide(handle, approver="quinn", action="approve")
        result = await handle.result()

    assert result.amount_paid == Decimal("1100.00")
    (checked,) = events_of(trail, AuditKind.PROPOSAL_CHECKED)
    assert checked.data["unverified"] == 2  # the amount and the assessed damage
    assert "amount '5,000.00' (record): outside the benchmarked estimate" in checked.summary


async def test_a_coordinator_calling_an_uncovered_loss_covered_does_not_get_it_paid(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(peril="flood", turns=coordinator_lies(amount="1100.00", covered=True))
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.route) == (Outcome.DENIED_NOT_COVERED, ClaimRoute.DENY)
    assert fakes.calls("claims.pay") == []


async def test_a_coordinator_hiding_a_red_flag_still_sends_the_claim_to_investigations(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(turns=coordinator_lies(amount="1100.00", assessed_damage="1350.00"))
    fakes.prior = [
        past_claim(fakes.policy, number, days_before=30 * number) for number in (1, 2, 3)
    ]
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "a special investigation")
        assert task.role == "fraud_investigator"
        assert "3 earlier claims within 365 days of the loss" in task.summary
        await decide(handle, approver="kate", action="approve", comment="all genuine")
        result = await handle.result()

    assert (result.outcome, result.decided_by) == (Outcome.CLEARED_BY_INVESTIGATION, "kate")


async def test_a_coordinator_denying_a_covered_loss_goes_to_an_adjuster(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(
        turns=coordinator_lies(
            decision="deny", amount="0", covered=False, assessed_damage="1350.00"
        )
    )
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "an adjuster's task")
        assert "covered 'False' (record)" in task.summary
        await time_skipping_env.sleep(timedelta(hours=1))
        await decide(handle, approver="quinn", action="reject", comment="not our risk")
        result = await handle.result()

    assert (result.outcome, result.status) == (
        Outcome.REJECTED_BY_ADJUSTER,
        ClaimStatus.DENIED,
    )


async def test_an_estimate_with_no_benchmarked_line_pays_nothing_even_when_approved(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The damage assessor takes the unknown item as estimated; the records bear nothing for it.
    fakes = systems(lines=[("MYSTERY-PART", "Special part", "900.00")])
    async with fake_worker(
        time_skipping_env.client, fakes, InsuranceClaimWorkflow, AgentRegionWorkflow
    ) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "an adjuster's task")
        assert task.amount == Decimal("0")
        assert "the records bear no payable amount" in task.summary
        await decide(handle, approver="quinn", action="approve")
        result = await handle.result()

    assert (result.outcome, result.status) == (Outcome.NOTHING_PAYABLE, ClaimStatus.DENIED)
    assert fakes.calls("claims.pay") == []
    assert "the records bear no amount to pay" in fakes.letters[-1].body


async def test_a_payout_the_claims_system_refuses_puts_the_claim_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    # Another case paid this claim meanwhile: the claims system refuses a second payout.
    fakes.script(
        "claims.pay",
        ApplicationError("the claim is already paid", type="RequestConflict", non_retryable=True),
    )
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.status) == (Outcome.PAYOUT_REFUSED, CaseStatus.ON_HOLD)
    assert "the claim is already paid" in result.message
    assert fakes.statuses() == []
    assert fakes.sent_to("rosa@example.com") == [
        f"Insurance claim {fakes.claim.claim_id}: payout refused"
    ]


async def test_a_payout_made_whose_every_answer_was_lost_is_found_and_the_claim_goes_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    case_id = InsuranceClaimWorkflow.case_id(fakes.claim.claim_id)
    # The claims system paid on the first attempt; no answer ever reached the case.
    made = await fakes.pay(
        PayoutRequest(
            claim_id=fakes.claim.claim_id,
            payee_id=fakes.claim.claimant_id,
            amount=Decimal("1100.00"),
            currency="EUR",
            idempotency_key=f"{case_id}:payout",
        )
    )
    fakes.script(
        "claims.pay",
        ApplicationError("the claims system did not answer", type="SystemUnavailable"),
        ApplicationError("the claims system did not answer", type="SystemUnavailable"),
        ApplicationError("the claims system did not answer", type="SystemUnavailable"),
        ApplicationError("the claims system did not answer", type="SystemUnavailable"),
    )
    result = await run_case(time_skipping_env, fakes)

    assert (result.outcome, result.status, result.payout_id) == (
        Outcome.FAST_TRACKED,
        ClaimStatus.PAID,
        made.payout_id,
    )
    assert len(fakes.payouts) == 1
    assert fakes.statuses() == ["paid"]
