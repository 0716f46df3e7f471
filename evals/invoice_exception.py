"""The invoice analyst on labelled invoices: shown what the workflow shows it, routed by
``decide_invoice`` as the workflow routes it."""

from __future__ import annotations

from typing import Any

from activities.agents.invoice_exception import (
    INVOICE_ANALYST_AGENT,
    InvoiceProposal,
    check_proposal,
)
from casework.eval.hooks import AgentEval, RouteQuestion
from policies.invoice_exception import (
    InvoiceExceptionPolicy,
    Route,
    Variance,
    compute_variance,
    decide_invoice,
)
from workflows.invoice_exception import InvoiceContext, analyst_context


def _records(
    case: dict[str, Any], policy: InvoiceExceptionPolicy
) -> tuple[InvoiceContext, Variance]:
    records = InvoiceContext.model_validate(case)
    variance = compute_variance(
        records.invoice, records.purchase_order, records.receipts, policy.tolerance
    )
    return records, variance


def _context(case: dict[str, Any], policy: InvoiceExceptionPolicy | None) -> dict[str, Any]:
    assert policy is not None
    return analyst_context(*_records(case, policy))


def _route(question: RouteQuestion[InvoiceExceptionPolicy, InvoiceProposal]) -> str:
    records, variance = _records(question.input, question.policy)
    proposal = question.answer
    decision = decide_invoice(
        question.policy,
        question.ref,
        variance,
        proposal,
        records.supplier,
        check_proposal(proposal, records.invoice.total) if proposal is not None else None,
        currency=records.invoice.currency,
    )
    if decision.route is Route.AUTO_APPROVE:
        return decision.route.value
    return f"{decision.route.value}:{decision.role}"


INVOICE_ANALYST_EVAL = AgentEval(
    agent=INVOICE_ANALYST_AGENT,
    policy=InvoiceExceptionPolicy,
    context=_context,
    route=_route,
)
