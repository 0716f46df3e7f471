"""The invoice-exception policy: its typed document and the pure rules that decide an invoice.

No I/O, no clock, no randomness: the workflow calls these functions directly, and every result
can be recomputed from the case's history. The three-way match (``compute_variance``) says what
the purchase order and the goods received support; ``decide_invoice`` auto-approves only when
every condition holds and otherwise routes to the approval tier that covers the total.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from activities.agents.invoice_exception import InvoiceProposal, Recommendation
from activities.erp import GoodsReceipt, Invoice, PurchaseOrder, Supplier
from casework.agents.checks import ProposalChecks
from casework.amounts import CENT, money
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    AgentSettings,
    FinalTimeout,
    PolicyModel,
    PolicyRef,
    RegionAgentSettings,
    TieredApprovalPolicy,
)
from casework.governance.rules import foreign_currency, tier_for_amount


class Route(StrEnum):
    AUTO_APPROVE = "auto_approve"
    HUMAN_APPROVAL = "human_approval"


class PolicyDecision(RoutedDecision[Route]):
    """Auto-approve, or which approval tier must decide."""


class Variance(BaseModel):
    """The three-way match: what the PO prices and received quantities support, against the bill."""

    invoice_total: Decimal
    matched_amount: Decimal
    variance: Decimal
    variance_percent: Decimal
    within_tolerance: bool
    findings: list[str]


class LineMatch(BaseModel):
    """One invoice line beside what its purchase order line and goods receipts say, for the
    approver: the three-way match line by line (None where the PO or a receipt has nothing)."""

    sku: str
    description: str
    invoiced_quantity: int
    invoiced_unit_price: Decimal
    ordered_quantity: int | None
    po_unit_price: Decimal | None
    received_quantity: int


def match_lines(
    invoice: Invoice, purchase_order: PurchaseOrder | None, receipts: list[GoodsReceipt]
) -> list[LineMatch]:
    """Each invoice line against its PO line and the quantities received for its SKU."""
    po_lines = {line.sku: line for line in purchase_order.lines} if purchase_order else {}
    received: dict[str, int] = {}
    for receipt in receipts:
        for line in receipt.lines:
            received[line.sku] = received.get(line.sku, 0) + line.quantity_received
    return [
        LineMatch(
            sku=line.sku,
            description=line.description,
            invoiced_quantity=line.quantity,
            invoiced_unit_price=line.unit_price,
            ordered_quantity=po_lines[line.sku].quantity if line.sku in po_lines else None,
            po_unit_price=po_lines[line.sku].unit_price if line.sku in po_lines else None,
            received_quantity=received.get(line.sku, 0),
        )
        for line in invoice.lines
    ]


def compute_variance(
    invoice: Invoice,
    purchase_order: PurchaseOrder | None,
    receipts: list[GoodsReceipt],
    tolerance: Tolerance,
) -> Variance:
    findings: list[str] = []
    matched = Decimal(0)
    if purchase_order is None:
        findings.append("no purchase order referenced")
    else:
        po_lines = {line.sku: line for line in purchase_order.lines}
        received: dict[str, int] = {}
        for receipt in receipts:
            for line in receipt.lines:
                received[line.sku] = received.get(line.sku, 0) + line.quantity_received
        for line in invoice.lines:
            po_line = po_lines.get(line.sku)
            if po_line is None:
                findings.append(f"{line.sku}: not on purchase order {purchase_order.po_number}")
                continue
            got = received.get(line.sku, 0)
            if line.unit_price != po_line.unit_price:
                findings.append(
                    f"{line.sku}: price variance, invoiced {money(line.unit_price)} "
                    f"vs PO {money(po_line.unit_price)}"
                )
            if line.quantity > got:
                findings.append(
                    f"{line.sku}: quantity variance, invoiced {line.quantity}, received {got}"
                )
            if line.quantity > po_line.quantity:
                findings.append(
                    f"{line.sku}: invoiced {line.quantity} exceeds ordered {po_line.quantity}"
                )
            matched += min(line.quantity, got, po_line.quantity) * po_line.unit_price
    variance = invoice.total - matched
    percent = (variance / matched * 100) if matched else Decimal(100)
    percent = percent.quantize(CENT, rounding=ROUND_HALF_UP)
    within = abs(variance) <= tolerance.absolute and abs(percent) <= tolerance.percent
    return Variance(
        invoice_total=invoice.total,
        matched_amount=matched,
        variance=variance,
        variance_percent=percent,
        within_tolerance=within,
        findings=findings,
    )


def decide_invoice(
    policy: InvoiceExceptionPolicy,
    ref: PolicyRef,
    variance: Variance,
    proposal: InvoiceProposal | None,
    supplier: Supplier,
    checks: ProposalChecks | None = None,
    *,
    currency: str,
) -> PolicyDecision:
    """Auto-approve only when every condition holds; otherwise route to the covering tier.

    ``checks`` are the proposal's (``activities.agents.invoice_exception.check_proposal``): a
    value that fails them keeps the invoice from being approved without a person. ``currency``
    is the invoice's: the policy's amounts apply only in its own.
    """
    blockers: list[str] = []
    rules = policy.auto_approval
    foreign = foreign_currency(policy, currency)
    if foreign:
        blockers.append(foreign)
    if not variance.within_tolerance:
        blockers.append(
            f"variance {money(variance.variance)} ({variance.variance_percent}%) is outside "
            f"tolerance ({policy.tolerance.percent}% and {money(policy.tolerance.absolute)})"
        )
    if proposal is None:
        blockers.append("no agent proposal available")
    else:
        if proposal.recommendation is not Recommendation.APPROVE:
            blockers.append(f"agent recommends {proposal.recommendation.value}")
        if proposal.confidence < rules.min_agent_confidence:
            blockers.append(
                f"agent confidence {proposal.confidence:.2f} is below "
                f"{rules.min_agent_confidence:.2f}"
            )
        if checks is not None:
            blockers += checks.reasons()
    if rules.max_amount is not None and variance.invoice_total > rules.max_amount:
        blockers.append(
            f"total {money(variance.invoice_total)} exceeds the auto-approval ceiling "
            f"{money(rules.max_amount)}"
        )
    if supplier.status != "active":
        blockers.append(f"supplier {supplier.supplier_id} is {supplier.status}")

    if not blockers:
        return PolicyDecision(
            route=Route.AUTO_APPROVE,
            reasons=["within tolerance, agent recommends approval with sufficient confidence"],
            policy=ref,
        )
    tier = tier_for_amount(policy.approval_tiers, variance.invoice_total, foreign=bool(foreign))
    return PolicyDecision(
        route=Route.HUMAN_APPROVAL,
        reasons=blockers,
        policy=ref,
        tier=tier,
        role=policy.approval_tiers[tier].role,
        sla=policy.approval_tiers[tier].sla,
    )


class Tolerance(PolicyModel):
    percent: Decimal = Field(ge=0)
    absolute: Decimal = Field(ge=0)


class AutoApproval(PolicyModel):
    min_agent_confidence: float = Field(ge=0, le=1)
    max_amount: Decimal | None = None


class InvoiceFinalTimeout(FinalTimeout):
    invoice_status: str = "on_hold"
    """What the invoice is set to in the ERP when nobody decided in time."""


class InvoiceExceptionPolicy(TieredApprovalPolicy):
    policy_id: ClassVar[str] = "invoice_exception"

    id: str
    version: int
    description: str = ""
    tolerance: Tolerance
    auto_approval: AutoApproval
    final_timeout: InvoiceFinalTimeout = InvoiceFinalTimeout()
    agents: dict[str, AgentSettings | RegionAgentSettings] = Field(default_factory=dict)
    """A tool-calling agent (``allowed_tools``) works in an agent region; documents before
    version 3 consulted the analyst once (``AgentSettings``)."""
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""
