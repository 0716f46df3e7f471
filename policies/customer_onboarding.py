"""The customer-onboarding policy: its typed document and the pure rule that rates an applicant.

The rule takes only what was checked: the KYC service's verification and screenings (records),
and the identity reader's values only through their checks.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from activities.agents.customer_onboarding import IDENTITY_FIELDS, IdentityReading
from activities.kyc import IdentityVerification, SanctionsScreening
from activities.pep import PepScreening
from casework.agents.checks import ProposalChecks
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    AgentSettings,
    ApprovalPolicy,
    ApprovalTier,
    FinalTimeout,
    PolicyModel,
    PolicyRef,
)


class RiskPoints(PolicyModel):
    pep_match: int = Field(ge=0)
    high_risk_country: int = Field(ge=0)
    identity_reading_unconfirmed: int = Field(ge=0)


class RiskRules(PolicyModel):
    points: RiskPoints
    high_from: int = Field(gt=0)
    medium_from: int = Field(gt=0)
    high_risk_countries: list[str] = Field(default_factory=list)
    min_reader_confidence: float = Field(ge=0, le=1)


class ScreeningRules(PolicyModel):
    reject_on_sanctions_hit: bool = True


class DueDiligence(PolicyModel):
    tiers: list[ApprovalTier] = Field(min_length=1)
    escalate: bool = True
    final_timeout: FinalTimeout = FinalTimeout()


class Products(PolicyModel):
    account: Literal["current_account", "savings_account"] = "current_account"
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class CustomerOnboardingPolicy(ApprovalPolicy):
    policy_id: ClassVar[str] = "customer_onboarding"

    id: str
    version: int
    description: str = ""
    risk: RiskRules
    screening: ScreeningRules = ScreeningRules()
    due_diligence: DueDiligence
    products: Products = Products()
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""


class OnboardingRoute(StrEnum):
    PROVISION = "provision"
    DUE_DILIGENCE = "enhanced_due_diligence"
    REJECT = "reject"


class RiskRating(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Applicant(BaseModel):
    """What the rule needs to know of the application itself."""

    full_name: str
    date_of_birth: date
    nationality: str


class OnboardingDecision(RoutedDecision[OnboardingRoute]):
    """Provision, send to enhanced due diligence (with the tier that decides), or reject."""

    risk: RiskRating
    score: int
    findings: list[str] = Field(default_factory=list)


def reading_problems(
    policy: CustomerOnboardingPolicy,
    reading: IdentityReading | None,
    checks: ProposalChecks | None,
) -> list[str]:
    """Why the reader's reading of the document does not confirm the identity (empty: it does)."""
    if reading is None:
        return ["the identity reader gave no reading of the document"]
    problems: list[str] = []
    if checks is not None:
        problems += checks.reasons(c for c in checks.unverified if c.field in IDENTITY_FIELDS)
    if reading.document_kind == "other":
        problems.append("the identity reader did not recognise a passport or identity card")
    if reading.issues:
        problems.append("the identity reader reports: " + "; ".join(reading.issues))
    if reading.confidence < policy.risk.min_reader_confidence:
        problems.append(f"the identity reader's confidence {reading.confidence:.2f} is too low")
    return problems


def decide_onboarding(
    policy: CustomerOnboardingPolicy,
    ref: PolicyRef,
    applicant: Applicant,
    reading: IdentityReading | None,
    checks: ProposalChecks | None,
    verification: IdentityVerification,
    sanctions: SanctionsScreening,
    pep: PepScreening,
) -> OnboardingDecision:
    """Reject what the KYC service refuses; rate the rest, and send high risk to a person."""
    if verification.status != "verified":
        return OnboardingDecision(
            route=OnboardingRoute.REJECT,
            reasons=[
                f"the KYC service did not verify the identity ({verification.verification_id}): "
                + "; ".join(verification.reasons)
            ],
            policy=ref,
            risk=RiskRating.HIGH,
            score=0,
        )
    if sanctions.status == "hit" and policy.screening.reject_on_sanctions_hit:
        return OnboardingDecision(
            route=OnboardingRoute.REJECT,
            reasons=[
                f"sanctions screening {sanctions.screening_id} hit: "
                + "; ".join(f"{hit.name} ({hit.program})" for hit in sanctions.hits)
            ],
            policy=ref,
            risk=RiskRating.HIGH,
            score=0,
        )
    points = policy.risk.points
    score = 0
    findings: list[str] = []
    if pep.status == "match":
        score += points.pep_match
        findings.append(
            f"PEP screening {pep.screening_id} matches "
            + "; ".join(f"{m.name} ({m.position}, {m.country})" for m in pep.matches)
        )
    if applicant.nationality in policy.risk.high_risk_countries:
        score += points.high_risk_country
        findings.append(f"nationality {applicant.nationality} is a high-risk country")
    if sanctions.status == "hit":
        findings.append(f"sanctions screening {sanctions.screening_id} hit")
    if unconfirmed := reading_problems(policy, reading, checks):
        score += points.identity_reading_unconfirmed
        findings += unconfirmed
    if score >= policy.risk.high_from:
        tiers = policy.due_diligence.tiers
        return OnboardingDecision(
            route=OnboardingRoute.DUE_DILIGENCE,
            reasons=[f"risk score {score} is high", *findings],
            policy=ref,
            tier=0,
            role=tiers[0].role,
            sla=tiers[0].sla,
            risk=RiskRating.HIGH,
            score=score,
            findings=findings,
        )
    risk = RiskRating.MEDIUM if score >= policy.risk.medium_from else RiskRating.LOW
    return OnboardingDecision(
        route=OnboardingRoute.PROVISION,
        reasons=[
            f"identity verified, screenings clear, risk score {score} ({risk.value})",
            *findings,
        ],
        policy=ref,
        risk=risk,
        score=score,
        findings=findings,
    )
