"""The triage agent on labelled tickets, in its agent region: each ticket is created in the
run's sandbox beside the file's CMDB and knowledge base, the agent looks around with the
policy's read-only tools, and its proposal is checked by ``check_proposal`` and routed by
``decide_triage`` as the workflow routes it. An assignment names the policy's team for the
category (``assign:network-ops``); a route that pages on-call ends in ``+page``."""

from __future__ import annotations

from typing import Any

from activities.agents.ticket_triage import TRIAGE_AGENT_SPEC, TriageProposal, check_proposal
from activities.itsm import ConfigurationItem, KbArticle, Ticket
from casework.eval.hooks import AgentEval, RouteQuestion, SandboxRecord
from policies.ticket_triage import TicketTriagePolicy, TriageRoute, decide_triage
from workflows.ticket_triage import agent_context

CIS = "/itsm/cis"
KB = "/itsm/kb"
TICKETS = "/itsm/tickets"


def _ticket(case: dict[str, Any]) -> Ticket:
    return Ticket.model_validate({"status": "new", **case["ticket"]})


def _context(case: dict[str, Any], _policy: TicketTriagePolicy | None) -> dict[str, Any]:
    return agent_context(_ticket(case))


def _seed(case: dict[str, Any]) -> list[SandboxRecord]:
    return [SandboxRecord(path=TICKETS, body=case["ticket"])]


def _route(question: RouteQuestion[TicketTriagePolicy, TriageProposal]) -> str:
    ticket = _ticket(question.input)
    proposal = question.answer
    items = {
        r.body["ci_id"]: ConfigurationItem.model_validate(r.body)
        for r in question.records
        if r.path == CIS
    }
    articles = {
        r.body["article_id"]: KbArticle.model_validate(r.body)
        for r in question.records
        if r.path == KB
    }
    article = articles.get(proposal.kb_article_id or "") if proposal is not None else None
    checks = (
        check_proposal(
            proposal,
            ticket,
            items.get(ticket.ci_id or ""),
            article,
            list(question.policy.categories),
        )
        if proposal is not None
        else None
    )
    decision = decide_triage(
        question.policy,
        question.ref,
        proposal,
        no_proposal_reason="no valid proposal",
        ticket_severity=ticket.severity,
        article_exists=article is not None,
        checks=checks,
    )
    team = f":{decision.team}" if decision.route is TriageRoute.ASSIGN else ""
    return decision.route.value + team + ("+page" if decision.page else "")


TRIAGE_AGENT_EVAL = AgentEval(
    agent=TRIAGE_AGENT_SPEC,
    policy=TicketTriagePolicy,
    context=_context,
    route=_route,
    tools=True,
    seed=_seed,
)
