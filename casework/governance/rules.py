"""The pure policy evaluator: the agent proposes, the policy decides.

No I/O, no clock, no randomness: workflows call these functions directly, and every result can
be recomputed from the case's history.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

from pydantic import BaseModel

from activities.agents.invoice_exception import InvoiceProposal, Recommendation
from activities.agents.ticket_triage import TriageAction, TriageProposal
from activities.erp import GoodsReceipt, Invoice, PurchaseOrder, Supplier
from casework.agents.checks import ProposalChecks
from casework.amounts import decimal_places, exact, minor_unit, size_problem
from casework.case.tasks import (
    DecisionAction,
    HumanTask,
    TaskAnswer,
    TaskDecision,
    TaskKind,
    TaskStatus,
)
from casework.governance.models import (
    ApprovalPolicy,
    ApprovalTier,
    Directory,
    Duration,
    InvoiceExceptionPolicy,
    PolicyRef,
    TicketTriagePolicy,
    Tolerance,
)

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """``value`` rounded to cents, thousands grouped. Never raises, whatever it is given: a
    decision can carry any amount, and a message about it must not fail the case. What cannot
    be rounded (``1E+400``, Infinity) is shown as it is."""
    try:
        return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    except InvalidOperation:
        return str(value)


class Variance(BaseModel):
    """The three-way match: what the PO prices and received quantities support, against the bill."""

    invoice_total: Decimal
    matched_amount: Decimal
    variance: Decimal
    variance_percent: Decimal
    within_tolerance: bool
    findings: list[str]


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


class Route(StrEnum):
    AUTO_APPROVE = "auto_approve"
    HUMAN_APPROVAL = "human_approval"


class PolicyDecision(BaseModel):
    route: Route
    reasons: list[str]
    policy: PolicyRef
    tier: int | None = None
    role: str | None = None
    sla: Duration | None = None


def foreign_currency(policy: ApprovalPolicy, currency: str) -> str | None:
    """Why the policy's amounts (thresholds, ceilings, tiers) say nothing about an amount in
    ``currency``; None when they do.

    The rule: a policy states its amounts in one currency and converts none. A case in another
    currency is never decided by an amount rule: it goes to the policy's top tier, where only a
    role without an approval limit may approve it (see :func:`refusal_reasons`).
    """
    if policy.currency is None or currency == policy.currency:
        return None
    return (
        f"the amount is in {currency}, the policy's amounts are in {policy.currency}: "
        "a person decides"
    )


def tier_for_amount(tiers: list[ApprovalTier], amount: Decimal, *, foreign: bool = False) -> int:
    """The tier whose ceiling covers ``amount``; the top tier for an amount in another currency
    than the tiers' (``foreign``), which no ceiling describes."""
    if foreign:
        return len(tiers) - 1
    for index, tier in enumerate(tiers):
        if tier.max_amount is None or amount <= tier.max_amount:
            return index
    # A policy whose top tier has a ceiling cannot approve above it: that tier still gets the
    # task, and the approval limits in the directory decide who can actually sign.
    return len(tiers) - 1


def approval_gaps(policy: ApprovalPolicy, directory: Directory) -> list[str]:
    """The amounts ``policy`` routes to people none of whom may approve them, each naming the
    tiers and the amounts; empty when every amount it can route has someone.

    A tier's task may be decided by its role and every role above it; approving needs a limit
    that covers the amount (``refusal_reasons``). A case in another currency than the policy's
    goes to the top tier, where only a role without a limit may approve it.
    """
    gaps: list[str] = []
    same_currency = None in (policy.currency, directory.currency) or (
        policy.currency == directory.currency
    )

    def limit(role: str) -> Decimal | None:
        entry = directory.roles.get(role)
        if entry is None:
            return Decimal(0)
        if entry.approval_limit is None:
            return None
        # A limit in another currency covers nothing in the policy's.
        return entry.approval_limit if same_currency else Decimal(0)

    for ladder in policy.amount_ladders():
        tiers = ladder.tiers
        lower = Decimal(0)
        for index, tier in enumerate(tiers):
            last = index == len(tiers) - 1
            # The last tier takes every amount above the others, whatever its own ceiling.
            upper = None if last else tier.max_amount
            if ladder.ceiling is not None:
                upper = ladder.ceiling if upper is None else min(upper, ladder.ceiling)
            if upper is not None and upper <= lower:
                break
            deciders = [t.role for t in tiers[index:]]
            limits = [limit(role) for role in deciders]
            if None not in limits:
                covered = max(value for value in limits if value is not None)
                if upper is None or covered < upper:
                    span = f"above {money(max(covered, lower))}" + (
                        f" up to {money(upper)}" if upper is not None else ""
                    )
                    gaps.append(
                        f"{ladder.field}: {span} {policy.currency} goes to {tier.role}, and no "
                        f"one who may decide it ({', '.join(deciders)}) has an approval limit "
                        "that covers it"
                    )
            if upper is None or tier.max_amount is None:
                break
            lower = upper
        top = tiers[-1].role
        if policy.currency is not None and limit(top) is not None:
            gaps.append(
                f"{ladder.field}: a case in another currency than {policy.currency} goes to "
                f"{top}, whose approval limit covers no other currency: nobody may approve it"
            )
    return gaps


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


def eligible_roles(tiers: list[ApprovalTier], tier: int) -> list[str]:
    """The assigned tier and every tier above it may decide."""
    return [t.role for t in tiers[tier:]]


def refusal_reasons(
    directory: Directory,
    task: HumanTask | None,
    decision: TaskDecision,
    *,
    submitter_may_approve: bool = False,
    strict_amounts: bool = True,
) -> list[str]:
    """Why a decision may not be accepted; empty when it may.

    Used by the update validator (rejected before it reaches history) and by the signal handler
    (recorded in the audit trail and ignored), so both paths enforce the same rules. Never
    raises, whatever the decision holds: a signal handler that raised would fail every workflow
    task of its case. ``strict_amounts`` False judges amounts as cases did before currencies'
    minor units, policy bounds and foreign currencies were checked: only for signals replayed
    in cases started before then, whose history must play out as it did.
    """
    if task is None:
        return ["there is no task awaiting a decision in this case"]
    if task.kind is not TaskKind.APPROVAL:
        return [f"the open task {task.task_id} is a question: reply with `answer`, not `decide`"]
    if task.status is not TaskStatus.OPEN:
        return [f"task {task.task_id} is no longer open (it is {task.status.value})"]
    if decision.task_id and decision.task_id != task.task_id:
        return [f"task {decision.task_id} is no longer open; the open task is {task.task_id}"]
    reasons: list[str] = []
    actions = [action.value for action in DecisionAction]
    if decision.action not in actions:
        reasons.append(f"action must be one of {actions}, got {decision.action!r}")
    user = directory.users.get(decision.approver)
    if user is None:
        return [*reasons, f"unknown approver {decision.approver!r}"]
    if decision.approver == task.requested_by and not submitter_may_approve:
        reasons.append(
            f"{decision.approver} submitted this case and may not decide it (segregation of duties)"
        )
    if user.role not in task.eligible_roles:
        # The approval limit is moot for someone who may not decide at all.
        return [
            *reasons,
            f"{decision.approver} ({user.role}) may not decide this task; it needs one of: "
            + ", ".join(task.eligible_roles),
        ]
    if decision.action == DecisionAction.APPROVE:
        if not task.carries_amount:
            if decision.amount is not None:
                reasons.append(
                    f"task {task.task_id} carries no amount, so an amount means nothing here: "
                    "approve it without one"
                )
            return reasons
        if decision.amount is not None:
            problems = edited_amount_problems(task, decision.amount, strict=strict_amounts)
            if problems:
                return [*reasons, *problems]
        amount = task.amount if decision.amount is None else decision.amount
        reasons += _limit_problems(
            directory, decision.approver, user.role, task, amount, strict=strict_amounts
        )
    elif decision.action == DecisionAction.REJECT and not (decision.comment or "").strip():
        reasons.append("a rejection needs a comment saying why")
    return reasons


def edited_amount_problems(task: HumanTask, amount: Decimal, *, strict: bool = True) -> list[str]:
    """Why ``amount`` may not be approved instead of the task's; empty when it may.

    Above 0, at most what the task asks and the policy's maximum, at least the policy's minimum,
    and no more decimals than the currency has. Each reason quotes the amount exactly as sent,
    so no reason contradicts itself by rounding.
    """
    if problem := size_problem(amount):
        return [f"edited amount {problem}"]
    currency = task.currency
    shown = f"{exact(amount)} {currency}"
    upper, upper_is = task.amount, "the amount this task is for"
    if strict and task.max_amount is not None and task.max_amount < upper:
        upper, upper_is = task.max_amount, "the policy's maximum"
    problems: list[str] = []
    if amount <= 0:
        problems.append(f"edited amount {shown} must be above 0")
    elif amount > upper:
        problems.append(f"edited amount {shown} is above {money(upper)} {currency}, {upper_is}")
    elif strict and task.min_amount is not None and amount < task.min_amount:
        problems.append(
            f"edited amount {shown} is below {money(task.min_amount)} {currency}, "
            "the policy's minimum"
        )
    if strict and (places := decimal_places(amount)) > (unit := minor_unit(currency)):
        problems.append(f"edited amount {shown} has {places} decimal places; {currency} has {unit}")
    return problems


def _limit_problems(
    directory: Directory,
    approver: str,
    role_name: str,
    task: HumanTask,
    amount: Decimal,
    *,
    strict: bool,
) -> list[str]:
    """Why ``approver``'s approval limit does not cover ``amount``; empty when it does.

    A limit is in the directory's currency and converts nothing: it covers no amount in another
    currency, which only a role without a limit may approve (``foreign_currency``).
    """
    role = directory.roles.get(role_name)
    limit = role.approval_limit if role else Decimal(0)
    if limit is None:
        return []
    if strict and directory.currency is not None and task.currency != directory.currency:
        return [
            f"{approver}'s approval limit is in {directory.currency} and does not cover an amount "
            f"in {task.currency}: only a role without a limit may approve this task"
        ]
    if amount > limit:
        return [
            f"{approver}'s approval limit {money(limit)} {task.currency} "
            f"does not cover {exact(amount)} {task.currency}"
        ]
    return []


def answer_refusal_reasons(
    directory: Directory, task: HumanTask | None, answer: TaskAnswer
) -> list[str]:
    """Why an answer to an agent's question may not be accepted; empty when it may."""
    if task is None or task.kind is not TaskKind.QUESTION:
        return ["there is no question awaiting an answer in this case"]
    if task.status is not TaskStatus.OPEN:
        return [f"question {task.task_id} is no longer open (it is {task.status.value})"]
    if answer.task_id and answer.task_id != task.task_id:
        return [f"question {answer.task_id} is no longer open; the open one is {task.task_id}"]
    reasons: list[str] = []
    if not answer.text.strip():
        reasons.append("the answer is empty")
    user = directory.users.get(answer.responder)
    if user is None:
        reasons.append(f"unknown responder {answer.responder!r}")
    elif user.role not in task.eligible_roles:
        reasons.append(
            f"{answer.responder} ({user.role}) may not answer; it needs one of: "
            + ", ".join(task.eligible_roles)
        )
    return reasons


class TriageRoute(StrEnum):
    AUTO_RESOLVE = "auto_resolve"
    ASSIGN = "assign"
    ESCALATE = "escalate"
    HUMAN_REVIEW = "human_review"


class TriageDecision(BaseModel):
    route: TriageRoute
    reasons: list[str]
    policy: PolicyRef
    team: str | None = None
    kb_article_id: str | None = None
    page: bool = False
    """Severity 1: page the on-call owner, whatever else is decided."""
    follows_proposal: bool = False
    """The route is the agent's proposal, accepted; its classification may be written."""


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
