"""The insurance claim's four agents on labelled claims, each in its agent region against the
run's sandbox, as a case runs them: the claim, its insurance policy and the holder's earlier
claims are created in the sandbox beside the file's repair-cost benchmarks, and the agent is
shown what the workflow shows it (``coordinator_context``). The claims coordinator delegates to
its three specialists (child regions; the fraud analyst reads similar claims over the sandbox's
MCP server); each specialist is also evaluated on its own, with the coordinator's task for it.

Routes are the policy's (``claim_routing``: ``decide_claim`` with the records' coverage, red flags
and payable bound), named ``fast_track``, ``deny``, ``adjuster:<role>`` or
``investigate:<role>``. The coordinator's proposal is checked (``check_claim_proposal``) and
routed as the workflow routes it. A specialist decides no route alone: its route is the policy's
decision on the proposal its finding gives once reconciled (``reconcile``, the coordinator's
rule) with what the records say for the other two specialists' parts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from activities.agents.insurance_claim import (
    COORDINATOR_AGENT,
    COVERAGE_AGENT,
    DAMAGE_AGENT,
    FRAUD_AGENT,
    SPECIALISTS,
    ClaimProposal,
    CoverageFinding,
    DamageAssessment,
    FraudAssessment,
    LineAssessment,
    benchmarked_estimate,
    check_claim_proposal,
    reconcile,
)
from activities.claim_history import PastClaim
from activities.claims import Claim
from activities.policy_admin import InsurancePolicy
from activities.repair_costs import Benchmark
from casework.eval.hooks import AgentEval, RouteQuestion, SandboxRecord
from policies.insurance_claim import (
    ClaimRoute,
    ClaimRouting,
    InsuranceClaimPolicy,
    red_flags,
)
from workflows.insurance_claim import ClaimRecords, claim_routing, coordinator_context

CLAIMS = "/claims"
POLICIES = "/policy-admin/policies"
CLAIM_HISTORY = "/claim-history/claims"
BENCHMARKS = "/repair-costs/benchmarks"
NO_ANSWER = "no valid answer"


def _claim(case: dict[str, Any]) -> Claim:
    """The claim as the claims system returns it once ``_seed`` has created it."""
    body = case["claim"]
    total = sum((Decimal(str(line["amount"])) for line in body["estimate_lines"]), Decimal(0))
    return Claim.model_validate(
        {**body, "estimate_total": total, "reported_at": case["reported_at"], "documents": []}
    )


def _seed(case: dict[str, Any]) -> list[SandboxRecord]:
    return [
        SandboxRecord(path=POLICIES, body=case["policy"]),
        SandboxRecord(path=CLAIMS, body=case["claim"]),
        *(SandboxRecord(path=CLAIM_HISTORY, body=past) for past in case.get("history", [])),
    ]


def _context(case: dict[str, Any], _policy: InsuranceClaimPolicy | None) -> dict[str, Any]:
    return coordinator_context(_claim(case))


def _records(case: dict[str, Any], sandbox: list[SandboxRecord]) -> ClaimRecords:
    """What the workflow reads from the systems before it decides: the claim, its policy, the
    benchmarks of the estimate's items and the holder's earlier claims."""
    claim = _claim(case)
    insurance = InsurancePolicy.model_validate(case["policy"])
    codes = {line.item_code for line in claim.estimate_lines}
    benchmarks = [
        Benchmark.model_validate(r.body)
        for r in sandbox
        if r.path == BENCHMARKS
        and r.body["vehicle_class"] == claim.vehicle_class
        and r.body["item_code"] in codes
    ]
    prior = [
        PastClaim.model_validate(r.body)
        for r in sandbox
        if r.path == CLAIM_HISTORY and r.body["holder_id"] == insurance.holder_id
    ]
    return ClaimRecords(claim=claim, insurance=insurance, benchmarks=benchmarks, prior=prior)


def _route_name(decision: ClaimRouting) -> str:
    if decision.route in (ClaimRoute.FAST_TRACK, ClaimRoute.DENY):
        return decision.route.value
    return f"{decision.route.value}:{decision.role}"


def _routed(
    question: RouteQuestion[InsuranceClaimPolicy, Any],
    records: ClaimRecords,
    proposal: ClaimProposal | None,
) -> str:
    checks = (
        check_claim_proposal(proposal, records.claim, records.insurance, records.benchmarks)
        if proposal is not None
        else None
    )
    decision = claim_routing(
        question.policy,
        question.ref,
        records,
        proposal,
        checks,
        no_proposal_reason=NO_ANSWER,
    )
    return _route_name(decision)


def _coordinator_route(question: RouteQuestion[InsuranceClaimPolicy, ClaimProposal]) -> str:
    return _routed(question, _records(question.input, question.records), question.answer)


# -- what the records say for the parts a specialist under evaluation does not answer -----------


def _recorded_coverage(records: ClaimRecords) -> CoverageFinding:
    claim, insurance = records.claim, records.insurance
    not_covered = insurance.covers(claim.peril, claim.loss_date)
    return CoverageFinding(
        covered=not not_covered,
        exclusions_applied=[e.wording for e in insurance.exclusions if e.peril == claim.peril],
        deductible=insurance.deductible,
        limit=insurance.limit_amount,
        reasons=not_covered or [f"the policy record covers {claim.peril}"],
        confidence=1.0,
    )


def _recorded_damage(records: ClaimRecords) -> DamageAssessment:
    highs = {b.item_code: b.high for b in records.benchmarks}
    total, _ = benchmarked_estimate(records.claim.estimate_lines, records.benchmarks)
    lines = [
        LineAssessment(
            item_code=line.item_code,
            estimated=line.amount,
            benchmark_high=highs.get(line.item_code),
            allowed=min(line.amount, highs[line.item_code]) if line.item_code in highs else 0,
        )
        for line in records.claim.estimate_lines
    ] or [LineAssessment(item_code="NONE", estimated=Decimal(0), allowed=Decimal(0))]
    return DamageAssessment(
        lines=lines,
        assessed_total=total,
        reasons=["the recorded estimate held to the benchmarks"],
        confidence=1.0,
    )


def _recorded_fraud(policy: InsuranceClaimPolicy, records: ClaimRecords) -> FraudAssessment:
    flags = red_flags(policy, records.claim, records.insurance, records.prior)
    return FraudAssessment(
        fraud_flag=bool(flags),
        red_flags=flags,
        reasons=flags or ["the claim history shows no red flag"],
        confidence=1.0,
    )


def _coverage_route(question: RouteQuestion[InsuranceClaimPolicy, CoverageFinding]) -> str:
    records = _records(question.input, question.records)
    proposal = reconcile(
        question.answer,
        _recorded_damage(records),
        _recorded_fraud(question.policy, records),
    )
    return _routed(question, records, proposal)


def _damage_route(question: RouteQuestion[InsuranceClaimPolicy, DamageAssessment]) -> str:
    records = _records(question.input, question.records)
    proposal = reconcile(
        _recorded_coverage(records),
        question.answer,
        _recorded_fraud(question.policy, records),
    )
    return _routed(question, records, proposal)


def _fraud_route(question: RouteQuestion[InsuranceClaimPolicy, FraudAssessment]) -> str:
    records = _records(question.input, question.records)
    proposal = reconcile(_recorded_coverage(records), _recorded_damage(records), question.answer)
    return _routed(question, records, proposal)


CLAIMS_COORDINATOR_EVAL = AgentEval(
    agent=COORDINATOR_AGENT,
    policy=InsuranceClaimPolicy,
    context=_context,
    route=_coordinator_route,
    tools=True,
    seed=_seed,
    agents=SPECIALISTS,
)
COVERAGE_ANALYST_EVAL = AgentEval(
    agent=COVERAGE_AGENT,
    policy=InsuranceClaimPolicy,
    context=_context,
    route=_coverage_route,
    tools=True,
    seed=_seed,
)
DAMAGE_ASSESSOR_EVAL = AgentEval(
    agent=DAMAGE_AGENT,
    policy=InsuranceClaimPolicy,
    context=_context,
    route=_damage_route,
    tools=True,
    seed=_seed,
)
FRAUD_ANALYST_EVAL = AgentEval(
    agent=FRAUD_AGENT,
    policy=InsuranceClaimPolicy,
    context=_context,
    route=_fraud_route,
    tools=True,
    seed=_seed,
)
