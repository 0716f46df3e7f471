"""The triage agent: reads a ticket, looks around (CMDB, knowledge base, similar tickets) and
proposes how to handle it. It only proposes; the ticket-triage policy decides."""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, Field, model_validator

from activities.itsm import ConfigurationItem, KbArticle, Ticket
from casework.agents.checks import (
    CheckBasis,
    ProposalChecks,
    ValueCheck,
    allowed,
    matches_record,
    on_record,
    one_of,
    opinion,
    within,
)
from casework.agents.messages import DATA_BLOCK, ChatMessage, ToolCall
from casework.agents.spec import AgentSpec
from casework.agents.tools import FINAL_ANSWER

TRIAGE_AGENT = "triage_agent"
TRIAGE_PROPOSAL = "triage_proposal"

SYSTEM_PROMPT = (
    "You are a service desk triage analyst. For one ticket, decide its category and severity "
    "(1 = critical outage, 4 = minor), check the affected configuration item, search the "
    "knowledge base and similar tickets, and propose one action: auto_resolve with a cited "
    "knowledge base article, assign to a team with a suggested resolution, or escalate to a "
    "specialist with your reasons. Say how confident you are."
)
TASK = "Triage this ticket."


class TriageAction(StrEnum):
    AUTO_RESOLVE = "auto_resolve"
    ASSIGN = "assign"
    ESCALATE = "escalate"


class TriageProposal(BaseModel):
    category: str = Field(
        description="One of: access, software, hardware, network, database, security."
    )
    severity: int = Field(ge=1, le=4, description="1 critical outage ... 4 minor.")
    affected_ci: str | None = Field(default=None, description="ci_id of the affected item.")
    action: TriageAction
    kb_article_id: str | None = Field(
        default=None, description="Article that resolves the ticket (required for auto_resolve)."
    )
    team: str | None = Field(default=None, description="Team to assign (required for assign).")
    suggested_resolution: str | None = None
    reasons: list[str] = Field(min_length=1, description="Evidence the proposal rests on.")
    confidence: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _action_has_what_it_needs(self) -> Self:
        if self.action is TriageAction.AUTO_RESOLVE and not self.kb_article_id:
            raise ValueError("auto_resolve needs kb_article_id: the article it cites")
        if self.action is TriageAction.ASSIGN and not self.team:
            raise ValueError("assign needs team")
        return self


def check_proposal(
    proposal: TriageProposal,
    ticket: Ticket,
    item: ConfigurationItem | None,
    article: KbArticle | None,
    categories: list[str],
) -> ProposalChecks:
    """How a triage proposal is checked against the ticket and the service desk's records.

    ``item`` is the configuration item the ticket itself records, ``article`` the knowledge base
    article the proposal cites (None when it cites none, or none by that ID exists),
    ``categories`` those the policy knows. The ticket's own category, severity and item win over
    the agent's: it may raise a severity, never lower it, and never contradict the rest. An
    auto-resolve must cite an article of the category, and is never for a severity-1 ticket or
    an item the CMDB calls critical. The team and the suggested resolution are its judgement:
    the policy's category map names the team, and the resolution is written only as its
    suggestion.
    """
    source = f"ticket {ticket.ticket_id}"
    checks: list[ValueCheck] = [
        matches_record("category", proposal.category, ticket.category, source)
        if ticket.category
        else one_of("category", proposal.category, categories, "the policy's categories")
    ]
    if ticket.severity is not None:
        checks.append(
            within(
                "severity",
                Decimal(proposal.severity),
                at_most=Decimal(ticket.severity),
                bound=f"the severity {source} records (it may be raised, never lowered)",
                basis=CheckBasis.RECORD,
            )
        )
    else:
        checks.append(
            opinion("severity", proposal.severity, "may raise the ticket's severity, and page")
        )
    if proposal.affected_ci:
        checks.append(
            matches_record("affected_ci", proposal.affected_ci, ticket.ci_id, source)
            if ticket.ci_id
            else opinion(
                "affected_ci",
                proposal.affected_ci,
                "not used: only the item the ticket records decides whom to page",
            )
        )
    if proposal.action is TriageAction.AUTO_RESOLVE:
        severity = min(s for s in (ticket.severity, proposal.severity) if s is not None)
        refusal = (
            "a severity-1 ticket is never resolved without a person"
            if severity == 1
            else f"{item.ci_id} is a critical item: never resolved without a person"
            if item is not None and item.criticality == "critical"
            else None
        )
        checks.append(allowed("action", proposal.action.value, refusal))
        checks.append(
            on_record("kb_article_id", proposal.kb_article_id, False, "the knowledge base")
            if article is None
            else matches_record(
                "category",
                proposal.category,
                article.category,
                f"knowledge base article {article.article_id}",
            )
        )
    else:
        checks.append(
            opinion("action", proposal.action.value, "assign or escalate to the policy's team")
        )
    if proposal.team:
        checks.append(
            opinion("team", proposal.team, "not used: the policy's category map names the team")
        )
    if proposal.suggested_resolution:
        checks.append(
            opinion(
                "suggested_resolution",
                proposal.suggested_resolution,
                "written to the ticket only as the agent's suggestion",
            )
        )
    checks.append(
        opinion("confidence", proposal.confidence, "below the policy's minimum a person reviews")
    )
    return ProposalChecks(agent=TRIAGE_AGENT, checks=checks)


# -- offline stand-in ---------------------------------------------------------------------------

_CATEGORY_WORDS = [
    ("security", ("phishing", "malware", "virus", "breach", "suspicious")),
    ("database", ("database", "postgres", "sql", "replica")),
    ("access", ("password", "locked out", "login", "mfa", "account")),
    ("network", ("vpn", "wifi", "network", "dns", "firewall")),
    ("hardware", ("printer", "laptop", "monitor", "keyboard", "dock")),
    ("software", ("install", "license", "update", "excel", "outlook")),
]
_TEAMS = {
    "access": "service-desk",
    "software": "service-desk",
    "hardware": "service-desk",
    "network": "network-ops",
    "database": "database-ops",
    "security": "security-ops",
}
_OUTAGE_WORDS = ("down", "outage", "unavailable", "not responding", "all users")


def _data(content: str | None) -> Any:
    match = DATA_BLOCK.search(content or "")
    if match is None:
        return None
    try:
        return json.loads(match.group(2))
    except json.JSONDecodeError:
        return match.group(2)


def stand_in_turn(messages: list[ChatMessage]) -> ChatMessage:
    """A deterministic analyst: look things up first, then answer from what the tools said.

    Keyword rules, not judgement: the demo and offline runs show the loop, the policy and the
    people around it, and the output says plainly that the stand-in answered.
    """
    context = _data(messages[1].content) if len(messages) > 1 else None
    ticket: dict[str, Any] = (context or {}).get("ticket", {}) if isinstance(context, dict) else {}
    asked = [call for m in messages if m.role == "assistant" for call in m.tool_calls]
    if not asked:
        calls = [
            ("search_knowledge_base", {"query": str(ticket.get("title", "problem"))[:200]}),
            ("find_similar_tickets", {"ticket_id": ticket.get("ticket_id", "")}),
        ]
        if ticket.get("ci_id"):
            calls.append(("get_configuration_item", {"ci_id": ticket["ci_id"]}))
        return ChatMessage(
            role="assistant",
            tool_calls=[
                ToolCall(id=f"standin-{i}", name=name, arguments=json.dumps(args))
                for i, (name, args) in enumerate(calls, start=1)
            ],
        )
    results = {m.tool_call_id: _data(m.content) for m in messages if m.role == "tool"}
    by_tool = {call.name: results.get(call.id) for call in asked}
    proposal = _propose(ticket, by_tool)
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(id=f"standin-{len(asked) + 1}", name=FINAL_ANSWER, arguments=proposal)
        ],
    )


def _propose(ticket: dict[str, Any], by_tool: dict[str, Any]) -> str:
    text = f"{ticket.get('title', '')} {ticket.get('description', '')}".lower()
    recorded = ticket.get("category")
    category = recorded or next(
        (name for name, words in _CATEGORY_WORDS if any(word in text for word in words)), "other"
    )
    ci = by_tool.get("get_configuration_item")
    ci = ci if isinstance(ci, dict) else {}
    hits = by_tool.get("search_knowledge_base")
    hits = [hit for hit in hits if isinstance(hit, dict)] if isinstance(hits, list) else []
    outage = any(word in text for word in _OUTAGE_WORDS)
    severity = ticket.get("severity") or (
        1 if outage and ci.get("criticality") == "critical" else 3
    )
    reasons = [
        f"category {category} "
        + ("as the ticket records it" if recorded else "from the ticket's wording")
    ]
    if ci:
        reasons.append(
            f"affects {ci.get('ci_id')} ({ci.get('criticality')}, {ci.get('owner_team')})"
        )
    proposal: dict[str, Any] = {
        "category": category,
        "severity": severity,
        "affected_ci": ci.get("ci_id") or ticket.get("ci_id"),
        "reasons": reasons,
    }
    matching = [hit for hit in hits if hit.get("category") == category]
    if severity == 1:
        proposal |= {
            "action": TriageAction.ESCALATE,
            "team": ci.get("owner_team"),
            "confidence": 0.9,
        }
        reasons.append("outage of a critical item: a specialist must take it now")
    elif matching:
        article = matching[0]
        proposal |= {
            "action": TriageAction.AUTO_RESOLVE,
            "kb_article_id": article.get("article_id"),
            "suggested_resolution": f"Follow {article.get('article_id')}: {article.get('title')}",
            "confidence": 0.86,
        }
        reasons.append(f"knowledge base article {article.get('article_id')} covers it")
    else:
        proposal |= {
            "action": TriageAction.ASSIGN,
            "team": _TEAMS.get(category, "service-desk"),
            "confidence": 0.8 if category in _TEAMS else 0.4,
        }
        if category not in _TEAMS:
            reasons.append("no rule matched the wording: a person should look")
    proposal["reasons"] = [f"offline stand-in rule: {reason}" for reason in reasons]
    return json.dumps(proposal)


TRIAGE_AGENT_SPEC = AgentSpec(
    name=TRIAGE_AGENT,
    output=TRIAGE_PROPOSAL,
    model=TriageProposal,
    system_prompt=SYSTEM_PROMPT,
    task=TASK,
    stand_in=lambda context: TriageProposal.model_validate_json(
        _propose(context.get("ticket", {}), {})
    ),
    stand_in_turn=stand_in_turn,
)
