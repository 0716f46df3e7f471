"""The insurance-claim policy: its typed document and the pure rules that route a claim.

No I/O, no clock, no randomness: the workflow calls ``decide_claim`` with the records it read and
the coordinator's checked proposal, and every decision can be recomputed from the case's history.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from activities.agents.insurance_claim import ClaimDecision, ClaimProposal
from activities.claim_history import PastClaim
from activities.claims import Claim
from activities.policy_admin import InsurancePolicy
from casework.agents.checks import ProposalChecks
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    ApprovalTier,
    Duration,
    PolicyModel,
    PolicyRef,
    RegionAgentSettings,
    TieredApprovalPolicy,
    TierLadder,
)
from casework.governance.rules import foreign_currency, tier_for_amount


class FastTrack(PolicyModel):
    below_amount: Decimal = Field(gt=0)
    """Only payouts strictly below this may be made without a person."""
    min_confidence: float = Field(ge=0, le=1)


class SpecialInvestigations(PolicyModel):
    tiers: list[ApprovalTier] = Field(min_length=1)


class RedFlags(PolicyModel):
    max_recent_claims: int = Field(ge=1)
    recent_days: int = Field(ge=1)
    min_days_since_inception: int = Field(ge=0)


class Recovery(PolicyModel):
    watch: Duration
    """How long after a payout a fraud finding still recovers it."""
    notify_roles: list[str] = Field(default_factory=list)


class InsuranceClaimPolicy(TieredApprovalPolicy):
    policy_id: ClassVar[str] = "insurance_claim"

    id: str
    version: int
    description: str = ""
    fast_track: FastTrack
    special_investigations: SpecialInvestigations
    red_flags: RedFlags
    recovery: Recovery
    agents: dict[str, RegionAgentSettings]
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""

    def amount_ladders(self) -> list[TierLadder]:
        return [
            TierLadder("approval_tiers", self.approval_tiers),
            TierLadder("special_investigations.tiers", self.special_investigations.tiers),
        ]


class ClaimRoute(StrEnum):
    FAST_TRACK = "fast_track"
    ADJUSTER = "adjuster"
    INVESTIGATE = "investigate"
    DENY = "deny"


class ClaimRouting(RoutedDecision[ClaimRoute]):
    amount: Decimal = Decimal(0)
    """What the claim would pay: never above what the records bear (``payable``)."""
    payable: Decimal = Decimal(0)
    """The most the records let the claim pay: benchmarked damage, capped, less deductible."""


def red_flags(
    policy: InsuranceClaimPolicy,
    claim: Claim,
    insurance: InsurancePolicy,
    prior_claims: list[PastClaim],
) -> list[str]:
    """Red flags the records show, whatever the fraud analyst says."""
    rules = policy.red_flags
    flags = []
    confirmed = [past.claim_id for past in prior_claims if past.fraud_confirmed]
    if confirmed:
        flags.append(f"fraud was confirmed on earlier claims {', '.join(confirmed)}")
    since = claim.loss_date - timedelta(days=rules.recent_days)
    recent = [
        past
        for past in prior_claims
        if since <= past.loss_date <= claim.loss_date and past.claim_id != claim.claim_id
    ]
    if len(recent) >= rules.max_recent_claims:
        flags.append(f"{len(recent)} earlier claims within {rules.recent_days} days of the loss")
    days = (claim.loss_date - insurance.inception_date).days
    if 0 <= days < rules.min_days_since_inception:
        flags.append(f"the loss came {days} days after the policy started")
    return flags


def decide_claim(
    policy: InsuranceClaimPolicy,
    ref: PolicyRef,
    claim: Claim,
    *,
    proposal: ClaimProposal | None,
    checks: ProposalChecks | None,
    no_proposal_reason: str = "",
    not_covered: list[str],
    record_flags: list[str],
    payable: Decimal,
) -> ClaimRouting:
    """Where a claim goes.

    ``not_covered`` is why the policy record does not cover the loss (empty: it does): such a
    claim is denied, with those reasons, whatever the coordinator proposed. ``record_flags`` are
    the claim history's red flags: with them, or the coordinator's own flag, the claim goes to
    special investigations. ``payable`` bounds every amount; a proposal whose values do not check
    out, or that is not confident, goes to an adjuster.
    """

    def routed(route: ClaimRoute, reasons: list[str], amount: Decimal, tiers: list[ApprovalTier]):
        foreign = foreign_currency(policy, claim.currency)
        tier = tier_for_amount(tiers, amount, foreign=foreign is not None)
        return ClaimRouting(
            route=route,
            reasons=reasons + ([foreign] if foreign else []),
            policy=ref,
            tier=tier,
            role=tiers[tier].role,
            sla=tiers[tier].sla,
            amount=amount,
            payable=payable,
        )

    if not_covered:
        return ClaimRouting(
            route=ClaimRoute.DENY, reasons=not_covered, policy=ref, payable=Decimal(0)
        )
    proposed = proposal.amount if proposal is not None else payable
    amount = min(proposed, payable)
    flags = list(record_flags)
    if proposal is not None and (
        proposal.fraud_flag or proposal.decision is ClaimDecision.INVESTIGATE
    ):
        flags.append(f"the claims coordinator flags it: {'; '.join(proposal.reasons)}")
    if flags:
        return routed(ClaimRoute.INVESTIGATE, flags, amount, policy.special_investigations.tiers)
    if proposal is None:
        return routed(
            ClaimRoute.ADJUSTER,
            [f"no usable proposal from the claims coordinator: {no_proposal_reason}"],
            amount,
            policy.approval_tiers,
        )
    reasons = checks.reasons() if checks is not None else []
    if proposal.decision is ClaimDecision.DENY:
        reasons.append("the claims coordinator proposes to deny a loss the policy record covers")
    if proposal.confidence < policy.fast_track.min_confidence:
        reasons.append(
            f"coordinator confidence {proposal.confidence:.2f} is below "
            f"{policy.fast_track.min_confidence:.2f}"
        )
    if amount >= policy.fast_track.below_amount:
        reasons.append(f"{amount:,} is not below the fast-track {policy.fast_track.below_amount:,}")
    if foreign_currency(policy, claim.currency) is not None:
        reasons.append("the claim is in another currency than the policy's")
    if amount <= 0:
        reasons.append("the records bear no payable amount")
    if reasons:
        return routed(ClaimRoute.ADJUSTER, reasons, amount, policy.approval_tiers)
    return ClaimRouting(
        route=ClaimRoute.FAST_TRACK,
        reasons=[
            f"covered, {amount:,} below {policy.fast_track.below_amount:,}, confidence "
            f"{proposal.confidence:.2f}, no red flag, every value checked against the records"
        ],
        policy=ref,
        amount=amount,
        payable=payable,
    )
