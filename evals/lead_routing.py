"""The lead analyst on labelled leads: shown what the workflow shows it, routed by
``decide_lead`` with its read checked by ``check_read``, as the workflow routes it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activities.agents.lead_routing import LEAD_ANALYST_AGENT, LeadRead, check_read
from activities.crm_sales import Account, AccountExecutive, Firmographics, Lead
from casework.eval.hooks import AgentEval, RouteQuestion
from policies.lead_routing import LeadRoutingPolicy, decide_lead
from workflows.lead_routing import analyst_context


class LeadCase(BaseModel):
    lead: Lead
    firmographics: Firmographics | None = None
    account: Account | None = None
    roster: list[AccountExecutive]


def _context(case: dict[str, Any], _policy: LeadRoutingPolicy | None) -> dict[str, Any]:
    return analyst_context(LeadCase.model_validate(case).lead)


def _route(question: RouteQuestion[LeadRoutingPolicy, LeadRead]) -> str:
    case = LeadCase.model_validate(question.input)
    read = question.answer
    decision = decide_lead(
        question.policy,
        question.ref,
        case.lead,
        firmographics=case.firmographics,
        read=read,
        account=case.account,
        roster=case.roster,
        no_read_reason="no valid read",
        read_checks=(
            check_read(read, case.lead.message, question.policy.sales_intents)
            if read is not None
            else None
        ),
    )
    return decision.route.value


LEAD_ANALYST_EVAL = AgentEval(
    agent=LEAD_ANALYST_AGENT,
    policy=LeadRoutingPolicy,
    context=_context,
    route=_route,
)
