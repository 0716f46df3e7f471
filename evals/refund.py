"""The refund analyst on labelled refund requests: shown what the workflow shows it, routed by
``decide_refund`` as the workflow routes it. A case fixes its own ``now``, so the days since
delivery, and so the window, are the same on every run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.agents.refund import REFUND_ANALYST_AGENT, RefundProposal
from casework.eval.hooks import AgentEval, RouteQuestion
from policies.refund import RefundAssessment, RefundPolicy, assess_refund, decide_refund
from workflows.refund import RefundContext, RefundInput, analyst_context


class RefundCase(RefundContext):
    request: RefundInput
    now: datetime
    """When the request is assessed."""


def _assessed(case: dict[str, Any], policy: RefundPolicy) -> tuple[RefundCase, RefundAssessment]:
    refund = RefundCase.model_validate(case)
    assessment = assess_refund(
        policy,
        refund.order,
        refund.customer,
        refund.refunds,
        refund.signals,
        refund.request.amount,
        refund.now,
    )
    return refund, assessment


def _context(case: dict[str, Any], policy: RefundPolicy | None) -> dict[str, Any]:
    assert policy is not None
    refund, assessment = _assessed(case, policy)
    return analyst_context(refund.request, refund, assessment)


def _route(question: RouteQuestion[RefundPolicy, RefundProposal]) -> str:
    _, assessment = _assessed(question.input, question.policy)
    decision = decide_refund(question.policy, question.ref, assessment, question.answer)
    return decision.route.value + (f":{decision.role}" if decision.role else "")


REFUND_ANALYST_EVAL = AgentEval(
    agent=REFUND_ANALYST_AGENT,
    policy=RefundPolicy,
    context=_context,
    route=_route,
)
