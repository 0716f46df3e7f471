"""The invoice analyst: explains an invoice exception and recommends what to do with it."""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from casework.agents.checks import CheckBasis, ProposalChecks, opinion, within
from casework.agents.messages import DATA_BLOCK, ChatMessage, ToolCall
from casework.agents.spec import AgentSpec
from casework.agents.tools import FINAL_ANSWER

INVOICE_ANALYST = "invoice_analyst"
INVOICE_PROPOSAL = "invoice_proposal"

SYSTEM_PROMPT = (
    "You are an accounts-payable analyst. You review one invoice exception at a time: the "
    "invoice, its purchase order, the goods receipts and the supplier record. Explain the "
    "discrepancy in plain words, recommend approve, reject or hold, and say how confident you "
    "are. You only propose; a policy and a human decide."
)
"""Unchanged since the analyst was consulted once: stored cases replay with it. In a region
(``workflows/invoice_exception.py``, patch ``invoice-analyst-region``) the region's rules add
how to use the lookups."""

TASK = (
    "Explain why this invoice was flagged, recommend what accounts payable should do, and cite "
    "the evidence (line, quantity, price) your recommendation rests on."
)


class Recommendation(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    HOLD = "hold"


class InvoiceProposal(BaseModel):
    recommendation: Recommendation
    confidence: float = Field(ge=0, le=1)
    explanation: str = Field(min_length=1, description="What the discrepancy is, in plain words.")
    rationale: str = Field(min_length=1, description="Why the recommendation follows.")
    evidence: list[str] = Field(default_factory=list)
    suggested_amount: Decimal | None = Field(
        default=None, description="Amount the agent thinks should be paid, if not the total."
    )

    def headline(self) -> str:
        return f"recommends {self.recommendation.value} with confidence {self.confidence:.2f}"

    def recommended_action(self) -> str:
        # Hold, like reject, advises against paying now: approving overrides it.
        return "approve" if self.recommendation is Recommendation.APPROVE else "reject"


def stand_in_proposal(context: dict[str, Any]) -> InvoiceProposal:
    """Offline stand-in: a rule of thumb over the variance the workflow already computed.

    It never pretends to be a model: the activity reports it as the stand-in, and its rationale
    says so too.
    """
    variance = context.get("variance", {})
    findings: list[str] = list(variance.get("findings", []))
    within = bool(variance.get("within_tolerance"))
    matched = variance.get("matched_amount")
    if within:
        return InvoiceProposal(
            recommendation=Recommendation.APPROVE,
            confidence=0.92,
            explanation="The invoice matches the PO and goods receipt within tolerance.",
            rationale="Offline stand-in rule: variance within tolerance, so approve.",
            evidence=findings or ["all lines match PO price and received quantity"],
        )
    quantity_issue = any("quantity" in finding for finding in findings)
    return InvoiceProposal(
        recommendation=Recommendation.HOLD if quantity_issue else Recommendation.APPROVE,
        confidence=0.62,
        explanation="; ".join(findings) or "The invoice total differs from the matched amount.",
        rationale=(
            "Offline stand-in rule: variance outside tolerance, so a person must look; "
            + (
                "goods not yet received suggest waiting."
                if quantity_issue
                else "price differences are often agreed surcharges."
            )
        ),
        evidence=findings,
        suggested_amount=Decimal(str(matched)) if quantity_issue and matched is not None else None,
    )


def _data(content: str | None) -> Any:
    match = DATA_BLOCK.search(content or "")
    if match is None:
        return None
    try:
        return json.loads(match.group(2))
    except json.JSONDecodeError:
        return match.group(2)


def stand_in_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Offline stand-in in a region: an invoice within tolerance is answered at once; one
    outside it is first looked up in the payments ledger (has anything been paid on it?), and
    the answer says what the ledger showed. Rules of thumb, named as such."""
    context = _data(messages[1].content) if len(messages) > 1 else None
    context = context if isinstance(context, dict) else {}
    invoice_id = str(context.get("invoice", {}).get("invoice_id", ""))
    asked = [call for m in messages if m.role == "assistant" for call in m.tool_calls]
    within_tolerance = bool(context.get("variance", {}).get("within_tolerance"))
    if not asked and not within_tolerance and invoice_id:
        return ChatMessage(
            role="assistant",
            tool_calls=[
                ToolCall(
                    id="standin-1",
                    name="list_invoice_payments",
                    arguments=json.dumps({"invoice_id": invoice_id}),
                )
            ],
        )
    proposal = stand_in_proposal(context)
    payments = [_data(m.content) for m in messages if m.role == "tool"]
    if payments:
        paid = payments[0] if isinstance(payments[0], list) else []
        proposal.evidence.append(
            f"offline stand-in rule: the payments ledger holds {len(paid)} payment(s) for "
            f"invoice {invoice_id}"
        )
        if paid:
            proposal = proposal.model_copy(
                update={"recommendation": Recommendation.HOLD, "confidence": 0.5}
            )
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(
                id=f"standin-{len(asked) + 1}",
                name=FINAL_ANSWER,
                arguments=proposal.model_dump_json(),
            )
        ],
    )


def check_proposal(proposal: InvoiceProposal, invoice_total: Decimal) -> ProposalChecks:
    """How the analyst's proposal is checked: its recommendation and confidence are judgement,
    which may hold an invoice back for a person but never pays one the policy's rules would not;
    an amount it suggests must lie within the invoice's total, and is only ever shown to the
    approver, never paid by itself."""
    checks = [
        opinion(
            "recommendation",
            proposal.recommendation.value,
            "anything but approve sends the invoice to a person",
        ),
        opinion("confidence", proposal.confidence, "below the policy's minimum a person decides"),
    ]
    if proposal.suggested_amount is not None:
        checks.append(
            within(
                "suggested_amount",
                proposal.suggested_amount,
                at_least=Decimal(0),
                at_most=invoice_total,
                bound="the invoice total",
                basis=CheckBasis.VALIDATOR,
            )
        )
    return ProposalChecks(agent=INVOICE_ANALYST, checks=checks)


INVOICE_ANALYST_AGENT = AgentSpec(
    name=INVOICE_ANALYST,
    output=INVOICE_PROPOSAL,
    model=InvoiceProposal,
    system_prompt=SYSTEM_PROMPT,
    task=TASK,
    stand_in=stand_in_proposal,
    stand_in_turn=stand_in_turn,
)
