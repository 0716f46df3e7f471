"""The refund policy: its typed document and the pure rules that route a refund request.

No I/O, no clock, no randomness (the time is passed in): the workflow calls these directly, and
every decision can be recomputed from the case's history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from activities.agents.refund import RefundProposal, RefundRecommendation
from activities.crm import Customer
from activities.fraud import FraudSignal
from activities.orders import Order
from activities.payments import Refund
from casework.amounts import money
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    AgentSettings,
    ApprovalTier,
    PolicyModel,
    PolicyRef,
    TieredApprovalPolicy,
    TierLadder,
)
from casework.governance.rules import foreign_currency, tier_for_amount

Severity = Literal["low", "medium", "high"]
SEVERITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
DEFAULT_TIER = "standard"


class AutoRefund(PolicyModel):
    below_amount: Decimal = Field(gt=0)
    """Only refunds strictly below this may be issued without a person."""
    min_agent_confidence: float = Field(ge=0, le=1)


class FraudInvestigation(PolicyModel):
    min_severity: Severity = "low"
    tiers: list[ApprovalTier] = Field(min_length=1)


class RefundEligibility(PolicyModel):
    refundable_payment_statuses: list[str] = Field(min_length=1)
    window_days: dict[str, int]
    """Days since delivery within which a refund may be automatic, by customer tier."""
    max_recent_refunds: int = Field(ge=0)
    recent_period_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _has_default_window(self) -> RefundEligibility:
        if DEFAULT_TIER not in self.window_days:
            raise ValueError(f"window_days must list {DEFAULT_TIER!r}, used for unlisted tiers")
        return self


class RefundPolicy(TieredApprovalPolicy):
    policy_id: ClassVar[str] = "refund"

    id: str
    version: int
    description: str = ""
    auto_refund: AutoRefund
    fraud_investigation: FraudInvestigation
    eligibility: RefundEligibility
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""

    def amount_ladders(self) -> list[TierLadder]:
        return [
            TierLadder("approval_tiers", self.approval_tiers),
            TierLadder("fraud_investigation.tiers", self.fraud_investigation.tiers),
        ]


class RefundAssessment(BaseModel):
    """The facts the policy decides on, computed from the systems' records."""

    order_id: str
    customer_id: str
    amount: Decimal
    currency: str
    order_total: Decimal
    already_refunded: Decimal
    """Refunds on this order that were issued and not reversed."""
    refundable: Decimal
    payment_status: str
    customer_tier: str
    days_since_delivery: int
    window_days: int
    within_window: bool
    recent_refunds: int
    """The customer's refunds (issued, not reversed) within the policy's recent period."""
    fraud_flags: list[str]
    """Signals at or above the policy's severity, each as ``<id> <severity> <kind>: <detail>``."""
    ineligible: list[str]
    """Why nothing may be refunded at all; empty when the request is eligible."""


def _utc(moment: datetime) -> datetime:
    # A system that sends times without an offset is read as UTC rather than failing the case.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def assess_refund(
    policy: RefundPolicy,
    order: Order,
    customer: Customer,
    customer_refunds: list[Refund],
    signals: list[FraudSignal],
    amount: Decimal,
    now: datetime,
) -> RefundAssessment:
    rules = policy.eligibility
    live = [refund for refund in customer_refunds if refund.status != "reversed"]
    already = sum((r.amount for r in live if r.order_id == order.order_id), Decimal(0))
    refundable = max(order.total - already, Decimal(0))
    days = max((now - _utc(order.delivered_at or order.placed_at)).days, 0)
    window = rules.window_days.get(customer.tier, rules.window_days[DEFAULT_TIER])
    period_start = now - timedelta(days=rules.recent_period_days)
    recent = sum(1 for r in live if r.created_at is None or _utc(r.created_at) >= period_start)
    threshold = SEVERITY_RANK[policy.fraud_investigation.min_severity]
    flags = [
        f"{s.signal_id} {s.severity} {s.kind}: {s.detail}"
        for s in signals
        if SEVERITY_RANK.get(s.severity, max(SEVERITY_RANK.values())) >= threshold
    ]
    ineligible = []
    if order.payment_status not in rules.refundable_payment_statuses:
        ineligible.append(
            f"the payment for order {order.order_id} is {order.payment_status}, not "
            + " or ".join(rules.refundable_payment_statuses)
        )
    if amount > refundable:
        ineligible.append(
            f"{money(amount)} {order.currency} exceeds the {money(refundable)} still refundable "
            f"on order {order.order_id} (total {money(order.total)}, already refunded "
            f"{money(already)})"
        )
    return RefundAssessment(
        order_id=order.order_id,
        customer_id=customer.customer_id,
        amount=amount,
        currency=order.currency,
        order_total=order.total,
        already_refunded=already,
        refundable=refundable,
        payment_status=order.payment_status,
        customer_tier=customer.tier,
        days_since_delivery=days,
        window_days=window,
        within_window=days <= window,
        recent_refunds=recent,
        fraud_flags=flags,
        ineligible=ineligible,
    )


class RefundRoute(StrEnum):
    AUTO_REFUND = "auto_refund"
    APPROVAL = "approval"
    FRAUD_INVESTIGATION = "fraud_investigation"
    REJECT = "reject"


class RefundDecision(RoutedDecision[RefundRoute]):
    """Refund automatically, reject, or which tier (or investigator) must decide."""


def decide_refund(
    policy: RefundPolicy,
    ref: PolicyRef,
    assessment: RefundAssessment,
    proposal: RefundProposal | None,
) -> RefundDecision:
    """Reject what cannot be refunded; send any fraud flag to an investigator; issue small,
    clear-cut refunds automatically; send the rest to the tier that covers the amount.

    The agent's proposal can only keep a refund from being automatic, never make one so.
    """
    if assessment.ineligible:
        return RefundDecision(route=RefundRoute.REJECT, reasons=assessment.ineligible, policy=ref)
    amount = assessment.amount
    foreign = foreign_currency(policy, assessment.currency)
    if assessment.fraud_flags:
        tiers = policy.fraud_investigation.tiers
        tier = tier_for_amount(tiers, amount, foreign=bool(foreign))
        return RefundDecision(
            route=RefundRoute.FRAUD_INVESTIGATION,
            reasons=[f"fraud signal {flag}" for flag in assessment.fraud_flags],
            policy=ref,
            tier=tier,
            role=tiers[tier].role,
            sla=tiers[tier].sla,
        )
    rules = policy.auto_refund
    blockers = [foreign] if foreign else []
    if not foreign and amount >= rules.below_amount:
        blockers.append(
            f"{money(amount)} {assessment.currency} is not below the automatic limit "
            f"{money(rules.below_amount)}"
        )
    if not assessment.within_window:
        blockers.append(
            f"{assessment.days_since_delivery} days since delivery is beyond the "
            f"{assessment.window_days}-day window for {assessment.customer_tier} customers"
        )
    limit = policy.eligibility.max_recent_refunds
    if assessment.recent_refunds >= limit:
        blockers.append(
            f"the customer already had {assessment.recent_refunds} refund(s) in the last "
            f"{policy.eligibility.recent_period_days} days (limit {limit})"
        )
    if proposal is None:
        blockers.append("no agent proposal available")
    else:
        if proposal.recommendation is not RefundRecommendation.APPROVE:
            blockers.append(f"agent recommends {proposal.recommendation.value}")
        if proposal.confidence < rules.min_agent_confidence:
            blockers.append(
                f"agent confidence {proposal.confidence:.2f} is below "
                f"{rules.min_agent_confidence:.2f}"
            )
    if not blockers:
        return RefundDecision(
            route=RefundRoute.AUTO_REFUND,
            reasons=[
                f"below {money(rules.below_amount)}, within the window, no fraud signal, agent "
                "recommends approval with sufficient confidence"
            ],
            policy=ref,
        )
    tier = tier_for_amount(policy.approval_tiers, amount, foreign=bool(foreign))
    return RefundDecision(
        route=RefundRoute.APPROVAL,
        reasons=blockers,
        policy=ref,
        tier=tier,
        role=policy.approval_tiers[tier].role,
        sla=policy.approval_tiers[tier].sla,
    )
