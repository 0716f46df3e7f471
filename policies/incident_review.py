"""The incident-review policy: its typed document and the pure rule that says what a review
needs from the incident manager, and which of the draft's follow-ups may be created.

No I/O, no clock, no randomness: the workflow calls these with the draft's checks, and every
result can be recomputed from the case's history.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from activities.agents.incident_review import INVESTIGATOR, FollowUpAction, IncidentReviewDraft
from casework.agents.checks import ProposalChecks
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    ApprovalTier,
    FinalTimeout,
    PolicyModel,
    PolicyRef,
    RegionAgentSettings,
)


class ReviewTiers(PolicyModel):
    tiers: list[ApprovalTier] = Field(min_length=1)
    final_timeout: FinalTimeout = FinalTimeout()


class Deployments(PolicyModel):
    mcp_server: str | None = None
    """The investigator's MCP server that reads the deployments repository (``git_log``,
    ``git_show``); None: the review goes without deployments."""
    max_commits: int = Field(20, ge=1, le=200)


class IncidentReviewPolicy(PolicyModel):
    policy_id: ClassVar[str] = "incident_review"

    id: str
    version: int
    description: str = ""
    severities: list[int] = Field(default=[1], min_length=1)
    """The severities of incidents reviewed (1 is the most severe)."""
    teams: list[str] = Field(min_length=1)
    review: ReviewTiers
    deployments: Deployments = Deployments()
    agents: dict[str, RegionAgentSettings] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""

    @model_validator(mode="after")
    def _deployments_server_is_the_investigators(self) -> IncidentReviewPolicy:
        server = self.deployments.mcp_server
        agent = self.agents.get(INVESTIGATOR)
        if server is not None and (agent is None or server not in agent.mcp_servers):
            raise ValueError(
                f"deployments.mcp_server {server!r} is not one of the {INVESTIGATOR}'s mcp_servers"
            )
        return self


class ReviewRoute(StrEnum):
    REVIEW = "review"
    """The incident manager approves, edits or rejects the draft."""
    WRITE = "write"
    """No usable draft: the incident manager writes the follow-ups (an edit) or rejects."""


class ReviewDecision(RoutedDecision[ReviewRoute]):
    creatable: list[int] = Field(default_factory=list)
    """The draft's follow-ups (by index) that approving it as it stands creates."""


def not_reviewed(policy: IncidentReviewPolicy, severity: int | None) -> str | None:
    """Why an incident of ``severity`` gets no review under ``policy``; None when it does."""
    if severity in policy.severities:
        return None
    return (
        f"the incident's severity is {severity if severity is not None else 'not set'}; the "
        f"policy reviews severities {', '.join(str(s) for s in policy.severities)} only"
    )


def decide_review(
    policy: IncidentReviewPolicy,
    ref: PolicyRef,
    draft: IncidentReviewDraft | None,
    checks: ProposalChecks | None,
    *,
    no_draft_reason: str = "",
) -> ReviewDecision:
    """A person always decides a review; the rule says what they must know, and which of the
    draft's follow-ups may be created if they approve it as it stands: only those whose owner
    is verified. An unverified citation or an uncited claim is named, never silently kept."""
    tier = policy.review.tiers[0]
    if draft is None:
        return ReviewDecision(
            route=ReviewRoute.WRITE,
            reasons=[f"no usable draft from the investigator: {no_draft_reason}"],
            policy=ref,
            tier=0,
            role=tier.role,
            sla=tier.sla,
        )
    unverified = checks.reasons() if checks is not None else []
    creatable = [
        index
        for index, _ in enumerate(draft.follow_ups)
        if checks is None or checks.field_verified(f"follow_ups[{index}].owner")
    ]
    dropped = len(draft.follow_ups) - len(creatable)
    reasons = unverified or ["every citation and owner in the draft is on record"]
    if dropped:
        reasons.append(f"{dropped} follow-up(s) with an unknown owner are not created as drafted")
    return ReviewDecision(
        route=ReviewRoute.REVIEW,
        reasons=reasons,
        policy=ref,
        tier=0,
        role=tier.role,
        sla=tier.sla,
        creatable=creatable,
    )


def known_owners(policy: IncidentReviewPolicy, people: dict[str, str]) -> dict[str, str]:
    """Everyone a follow-up may be owned by: ``people`` (user -> name) and the policy's teams."""
    return {**{team: "team" for team in policy.teams}, **people}


def owner_problems(actions: list[FollowUpAction], owners: dict[str, str]) -> list[str]:
    return [
        f"follow-up {action.title!r}: owner {action.owner!r} is neither a person in the "
        "directory nor a team the policy knows"
        for action in actions
        if action.owner not in owners
    ]
