"""The lead-routing policy: its typed document and the pure rules that decide a lead's route.

No I/O, no clock, no randomness: the workflow calls these functions directly, and every
decision can be recomputed from the case's history.
"""

from __future__ import annotations

from enum import StrEnum
from fractions import Fraction
from typing import ClassVar, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from activities.agents.lead_routing import LeadIntent, LeadRead
from activities.crm_sales import Account, AccountExecutive, Firmographics, Lead
from casework.agents.checks import ProposalChecks
from casework.eval.minimums import EvalSection
from casework.governance.models import (
    AgentSettings,
    ApprovalPolicy,
    ApprovalTier,
    PolicyModel,
    PolicyRef,
)

FIRST_TOUCH_PLACEHOLDERS = ("first_name", "company", "ae_name", "ae_email")


class EmployeeBand(PolicyModel):
    min_employees: int = Field(ge=0)
    points: int = Field(ge=0, le=100)


class IcpRules(PolicyModel):
    target_industries: list[str]
    industry_points: int = Field(ge=0, le=100)
    employee_bands: list[EmployeeBand]
    served_country_points: int = Field(ge=0, le=100)
    existing_account_is_fit: bool = True


class ConfidenceWeights(PolicyModel):
    icp: float = Field(ge=0, le=1)
    agent: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _add_up_to_one(self) -> Self:
        if abs(self.icp + self.agent - 1) > 1e-9:
            raise ValueError(f"icp and agent must add up to 1, not {self.icp + self.agent}")
        return self


class RoutingRules(PolicyModel):
    territories: dict[str, list[str]]
    fallback_territory: str
    account_owner_over_capacity: bool = True


class TimeoutAction(StrEnum):
    NURTURE = "nurture"
    ROUTE_AS_PROPOSED = "route_as_proposed"


class LeadReview(PolicyModel):
    tiers: list[ApprovalTier] = Field(min_length=1)
    on_timeout: TimeoutAction = TimeoutAction.NURTURE


class FirstTouchTemplate(PolicyModel):
    subject: str = Field(min_length=1)
    body: str = Field(min_length=1)

    @field_validator("subject", "body")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        # A misspelt placeholder must fail when the policy loads, not when a lead is messaged.
        try:
            template.format(**dict.fromkeys(FIRST_TOUCH_PLACEHOLDERS, ""))
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"unknown placeholder {error}; use {', '.join(FIRST_TOUCH_PLACEHOLDERS)}"
            ) from error
        return template


class LeadRoutingPolicy(ApprovalPolicy):
    policy_id: ClassVar[str] = "lead_routing"

    id: str
    version: int
    description: str = ""
    min_confidence: float = Field(ge=0, le=1)
    confidence_weights: ConfidenceWeights
    sales_intents: list[LeadIntent] = Field(min_length=1)
    icp: IcpRules
    routing: RoutingRules
    review: LeadReview
    first_touch: FirstTouchTemplate
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""


# -- ICP ------------------------------------------------------------------------------------------


class IcpScore(BaseModel):
    score: int = Field(ge=0, le=100)
    findings: list[str]


def territory_for(rules: RoutingRules, country: str) -> str | None:
    """The territory covering ``country``; None when no territory does."""
    return next(
        (name for name, countries in rules.territories.items() if country.upper() in countries),
        None,
    )


def score_icp(
    policy: LeadRoutingPolicy,
    lead: Lead,
    firmographics: Firmographics | None,
    account: Account | None,
) -> IcpScore:
    """Points for industry, headcount and a served country, capped at 100."""
    rules = policy.icp
    if account is not None and rules.existing_account_is_fit:
        return IcpScore(
            score=100,
            findings=[f"{lead.domain} is existing account {account.account_id}: a full fit"],
        )
    points = 0
    findings: list[str] = []
    if firmographics is None:
        findings.append(f"no firmographics for {lead.domain}: industry and headcount unknown")
    else:
        targets = {industry.casefold() for industry in rules.target_industries}
        if firmographics.industry.casefold() in targets:
            points += rules.industry_points
            findings.append(
                f"industry {firmographics.industry} is a target (+{rules.industry_points})"
            )
        else:
            findings.append(f"industry {firmographics.industry} is not a target (+0)")
        band = next(
            (b for b in rules.employee_bands if firmographics.employees >= b.min_employees), None
        )
        band_points = band.points if band else 0
        points += band_points
        findings.append(f"{firmographics.employees} employees (+{band_points})")
    if territory_for(policy.routing, lead.country) is not None:
        points += rules.served_country_points
        findings.append(f"{lead.country} is served (+{rules.served_country_points})")
    else:
        findings.append(f"{lead.country} is in no territory (+0)")
    return IcpScore(score=min(points, 100), findings=findings)


# -- routing --------------------------------------------------------------------------------------


class RoutingRule(StrEnum):
    ACCOUNT_OWNER = "account_owner"
    TERRITORY = "territory"
    FALLBACK = "fallback"
    NOBODY = "nobody"
    """Nobody with capacity, even in the fallback territory."""


class RoutingChoice(BaseModel):
    rule: RoutingRule
    ae: AccountExecutive | None
    territory: str | None
    """The territory the chosen AE works (or the lead's, when nobody was found)."""
    reasons: list[str]


def has_capacity(ae: AccountExecutive) -> bool:
    return ae.active and ae.current_load < ae.capacity


def _load(ae: AccountExecutive) -> str:
    return f"{ae.ae_id} {ae.current_load}/{ae.capacity}" + ("" if ae.active else " inactive")


def least_loaded(candidates: list[AccountExecutive]) -> AccountExecutive | None:
    """The active AE with capacity who is least utilised (load / capacity).

    Ties go to the lower absolute load (more room in practice), then to the lower ae_id, so the
    choice never depends on the order the CRM lists AEs in.
    """
    available = [ae for ae in candidates if has_capacity(ae)]
    if not available:
        return None
    return min(
        available,
        key=lambda ae: (Fraction(ae.current_load, ae.capacity), ae.current_load, ae.ae_id),
    )


def route_lead(
    rules: RoutingRules,
    lead: Lead,
    account: Account | None,
    roster: list[AccountExecutive],
) -> RoutingChoice:
    """Who should get the lead: the account's owner, else the territory's least-loaded AE with
    capacity, else the fallback territory's, else nobody."""
    reasons: list[str] = []
    by_id = {ae.ae_id: ae for ae in roster}
    if account is not None and account.owner_ae_id is not None:
        owner = by_id.get(account.owner_ae_id)
        if owner is None or not owner.active:
            reasons.append(
                f"account {account.account_id}'s owner {account.owner_ae_id} is "
                + ("not in the CRM" if owner is None else "inactive")
            )
        elif has_capacity(owner) or rules.account_owner_over_capacity:
            return RoutingChoice(
                rule=RoutingRule.ACCOUNT_OWNER,
                ae=owner,
                territory=owner.territory,
                reasons=[
                    f"existing account {account.account_id} ({account.name}) is owned by "
                    f"{owner.ae_id} ({owner.name}, {owner.current_load}/{owner.capacity})"
                ],
            )
        else:
            reasons.append(
                f"account {account.account_id}'s owner {owner.ae_id} is at capacity "
                f"({owner.current_load}/{owner.capacity})"
            )
    elif account is not None:
        reasons.append(f"account {account.account_id} has no owner")

    territory = territory_for(rules, lead.country)
    if territory is None:
        reasons.append(f"country {lead.country} is in no territory")
    else:
        team = [ae for ae in roster if ae.territory == territory]
        chosen = least_loaded(team)
        if chosen is not None:
            return RoutingChoice(
                rule=RoutingRule.TERRITORY,
                ae=chosen,
                territory=territory,
                reasons=[
                    *reasons,
                    f"territory {territory} ({lead.country}): {chosen.ae_id} ({chosen.name}) is "
                    f"the least loaded with capacity "
                    f"({', '.join(_load(ae) for ae in team)})",
                ],
            )
        reasons.append(
            f"no AE in territory {territory} has capacity"
            + (f" ({', '.join(_load(ae) for ae in team)})" if team else " (it has no AEs)")
        )

    fallback = rules.fallback_territory
    pool = [ae for ae in roster if ae.territory == fallback]
    chosen = least_loaded(pool)
    if chosen is not None:
        return RoutingChoice(
            rule=RoutingRule.FALLBACK,
            ae=chosen,
            territory=fallback,
            reasons=[
                *reasons,
                f"fallback territory {fallback}: {chosen.ae_id} ({chosen.name}) is the least "
                f"loaded with capacity ({', '.join(_load(ae) for ae in pool)})",
            ],
        )
    reasons.append(
        f"no AE in fallback territory {fallback} has capacity"
        + (f" ({', '.join(_load(ae) for ae in pool)})" if pool else " (it has no AEs)")
    )
    return RoutingChoice(rule=RoutingRule.NOBODY, ae=None, territory=territory, reasons=reasons)


# -- the decision ---------------------------------------------------------------------------------


class LeadRoute(StrEnum):
    STRAIGHT_THROUGH = "straight_through"
    """Confident: assign and message with no person."""
    REVIEW = "review"
    """Unsure: sales_ops approves or rejects the proposed routing before the CRM is written."""
    NURTURE = "nurture"
    """Nobody has capacity: the lead waits in the nurture queue."""


class LeadDecision(BaseModel):
    route: LeadRoute
    confidence: float
    icp: IcpScore
    intent: LeadIntent | None
    routing: RoutingChoice
    reasons: list[str]
    policy: PolicyRef


def lead_confidence(
    policy: LeadRoutingPolicy,
    icp: IcpScore,
    read: LeadRead | None,
    read_checks: ProposalChecks | None = None,
) -> float:
    """Weighted ICP fit and agent read; the read counts only when it is a sales intent that its
    checks bear out (``activities.agents.lead_routing.check_read``; None in a case that decided
    before reads were checked)."""
    weights = policy.confidence_weights
    counts = (
        read is not None
        and read.intent in policy.sales_intents
        and (read_checks is None or read_checks.all_verified)
    )
    agent = read.confidence if counts and read is not None else 0.0
    return round(weights.icp * icp.score / 100 + weights.agent * agent, 4)


def decide_lead(
    policy: LeadRoutingPolicy,
    ref: PolicyRef,
    lead: Lead,
    *,
    firmographics: Firmographics | None,
    read: LeadRead | None,
    account: Account | None,
    roster: list[AccountExecutive],
    no_read_reason: str = "",
    read_checks: ProposalChecks | None = None,
) -> LeadDecision:
    """Route the lead, and say whether that may happen without a person."""
    icp = score_icp(policy, lead, firmographics, account)
    routing = route_lead(policy.routing, lead, account, roster)
    confidence = lead_confidence(policy, icp, read, read_checks)
    weights = policy.confidence_weights
    if read is None:
        read_reason = f"no read from the agent ({no_read_reason or 'unavailable'}): counts 0"
    elif read_checks is not None and not read_checks.all_verified:
        read_reason = (
            f"agent reads {read.intent.value} (confidence {read.confidence:.2f}), not borne out "
            "by the message: counts 0 (" + "; ".join(read_checks.reasons()) + ")"
        )
    elif read.intent in policy.sales_intents:
        read_reason = f"agent reads {read.intent.value} with confidence {read.confidence:.2f}"
    else:
        read_reason = (
            f"agent reads {read.intent.value} (confidence {read.confidence:.2f}), not a sales "
            "intent: counts 0"
        )
    reasons = [
        f"ICP {icp.score}/100: " + "; ".join(icp.findings),
        read_reason,
        f"confidence {confidence:.2f} = {weights.icp} x ICP + {weights.agent} x agent "
        f"(straight through from {policy.min_confidence:.2f})",
        *routing.reasons,
    ]
    if routing.ae is None:
        route = LeadRoute.NURTURE
    elif confidence >= policy.min_confidence:
        route = LeadRoute.STRAIGHT_THROUGH
    else:
        route = LeadRoute.REVIEW
    return LeadDecision(
        route=route,
        confidence=confidence,
        icp=icp,
        intent=read.intent if read is not None else None,
        routing=routing,
        reasons=reasons,
        policy=ref,
    )


# -- the first touch ------------------------------------------------------------------------------


class FirstTouchText(BaseModel):
    subject: str
    body: str


def first_touch_text(
    template: FirstTouchTemplate, lead: Lead, ae: AccountExecutive
) -> FirstTouchText:
    """The policy's template filled in; lead fields are values, never parsed as templates."""
    values = {
        "first_name": lead.contact_name.split()[0] if lead.contact_name.split() else "there",
        "company": lead.company,
        "ae_name": ae.name,
        "ae_email": ae.email,
    }
    return FirstTouchText(
        subject=template.subject.format(**values), body=template.body.format(**values)
    )
