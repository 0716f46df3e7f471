"""The ticket-triage policy: its typed document and the pure rule that routes a ticket.

No I/O, no clock, no randomness: the workflow calls ``decide_triage`` directly with the triage
agent's checked proposal, and every result can be recomputed from the case's history.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from activities.agents.ticket_triage import TriageAction, TriageProposal
from casework.agents.checks import ProposalChecks
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    ApprovalTier,
    Duration,
    PolicyModel,
    PolicyRef,
    RegionAgentSettings,
)


class TriageRoute(StrEnum):
    AUTO_RESOLVE = "auto_resolve"
    ASSIGN = "assign"
    ESCALATE = "escalate"
    HUMAN_REVIEW = "human_review"


class TriageDecision(RoutedDecision[TriageRoute]):
    team: str | None = None
    kb_article_id: str | None = None
    page: bool = False
    """Severity 1: page the on-call owner, whatever else is decided."""
    follows_proposal: bool = False
    """The route is the agent's proposal, accepted; its classification may be written."""

    def describe(self) -> str:
        return (
            f"policy {self.policy}: {self.route.value}"
            + (", page on-call" if self.page else "")
            + " because "
            + "; ".join(self.reasons)
        )


def decide_triage(
    policy: TicketTriagePolicy,
    ref: PolicyRef,
    proposal: TriageProposal | None,
    *,
    no_proposal_reason: str = "",
    ticket_severity: int | None = None,
    article_exists: bool = False,
    checks: ProposalChecks | None = None,
) -> TriageDecision:
    """What happens to a ticket, given the agent's proposal (None when the region gave none).

    Severity 1 pages on either the ticket's word or the agent's: missing a real outage costs
    far more than a page that turns out unneeded. ``checks`` are the proposal's checks
    (``activities.agents.ticket_triage.check_proposal``): a value that fails them goes to a
    person, and the team comes from the policy's category map, never from the agent. None only in
    a case that decided before proposals were checked, replaying that decision.
    """
    severities = [s for s in (ticket_severity, proposal and proposal.severity) if s]
    page = 1 in severities

    def review(*reasons: str) -> TriageDecision:
        return TriageDecision(
            route=TriageRoute.HUMAN_REVIEW, reasons=list(reasons), policy=ref, page=page
        )

    if proposal is None:
        return review(f"no usable proposal from the agent: {no_proposal_reason}")
    if checks is not None and checks.unverified:
        return review(*checks.reasons())
    category = policy.categories.get(proposal.category)
    if category is None:
        return review(f"category {proposal.category!r} is not one the policy knows")
    if proposal.confidence < policy.min_confidence:
        return review(
            f"agent confidence {proposal.confidence:.2f} is below {policy.min_confidence:.2f}"
        )
    if proposal.action is TriageAction.AUTO_RESOLVE:
        if not category.low_risk:
            return review(f"auto-resolve is only for low-risk categories, not {proposal.category}")
        if not article_exists:
            return review(f"cited article {proposal.kb_article_id} does not exist")
        return TriageDecision(
            route=TriageRoute.AUTO_RESOLVE,
            reasons=[f"low-risk {proposal.category}, resolved by {proposal.kb_article_id}"],
            policy=ref,
            kb_article_id=proposal.kb_article_id,
            page=page,
            follows_proposal=True,
        )
    if proposal.action is TriageAction.ASSIGN and checks is not None:
        differs = proposal.team != category.team
        return TriageDecision(
            route=TriageRoute.ASSIGN,
            reasons=[
                f"{proposal.category} assigned to {category.team}, the policy's team for it"
                + (f" (the agent suggested {proposal.team})" if differs else "")
            ],
            policy=ref,
            team=category.team,
            page=page,
            follows_proposal=True,
        )
    if proposal.action is TriageAction.ASSIGN:
        if proposal.team not in policy.teams:
            return review(f"team {proposal.team!r} is not one tickets may be assigned to")
        return TriageDecision(
            route=TriageRoute.ASSIGN,
            reasons=[f"{proposal.category} assigned to {proposal.team}"],
            policy=ref,
            team=proposal.team,
            page=page,
            follows_proposal=True,
        )
    return TriageDecision(
        route=TriageRoute.ESCALATE,
        reasons=[f"escalated to {policy.escalation_team}: " + "; ".join(proposal.reasons)],
        policy=ref,
        team=policy.escalation_team,
        page=page,
        follows_proposal=True,
    )


class TriageCategory(PolicyModel):
    low_risk: bool
    """Only low-risk categories may be resolved without a person."""
    team: str


class TriageReview(PolicyModel):
    tiers: list[ApprovalTier] = Field(min_length=1)
    fallback_team: str
    """Where a ticket goes when the review rejects the proposal or nobody reviews in time."""


class SeverityOnePaging(PolicyModel):
    levels: list[str] = Field(min_length=1)
    """Who is paged, in order: ``ci_oncall`` (the affected item's on-call owner) or a role."""
    ack_sla: Duration


class TicketTriagePolicy(PolicyModel):
    policy_id: ClassVar[str] = "ticket_triage"

    id: str
    version: int
    description: str = ""
    min_confidence: float = Field(ge=0, le=1)
    categories: dict[str, TriageCategory]
    teams: list[str]
    escalation_team: str
    review: TriageReview
    severity_1: SeverityOnePaging
    agents: dict[str, RegionAgentSettings]
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""
