"""Refund approval: check the order, the customer and fraud signals; refund exactly once.

Flow: load policy -> fetch the order, then (in parallel) the customer from the CRM, their order
history, their refunds from the payments ledger and their fraud signals -> assess the request
against the policy (refundable amount, payment status, refund window by customer tier, recent
refunds, fraud flags) -> the refund analyst agent proposes -> the policy rejects what cannot be
refunded, sends any fraud flag to a fraud investigator, refunds small clear-cut requests
automatically, and sends the rest to the support lead or finance by amount (escalating when
SLAs pass, putting the request on hold at the final timeout) -> refund through the payments API
with an idempotency key -> note the refund in the CRM. If that note fails for good, the refund
is reversed and the case ends ``failed_compensated``, saying what was undone.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from activities.agents.refund import (
        REFUND_ANALYST_AGENT,
        RefundProposal,
        check_proposal,
    )
    from activities.crm import CrmActivities, Customer, CustomerLookup, RefundNoteRequest
    from activities.fraud import FraudActivities, FraudSignal, FraudSignalLookup
    from activities.orders import CustomerOrdersLookup, Order, OrderActivities, OrderLookup
    from activities.payments import (
        PaymentActivities,
        Refund,
        RefundLookup,
        RefundRequest,
        RefundReversal,
    )
    from casework import search_attributes as sa
    from casework.amounts import money
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        failure_message,
    )
    from casework.case.saga import Saga
    from casework.case.tasks import DecisionAction, TaskDecision
    from casework.governance.models import ApprovalTier, PolicyRef
    from casework.systems.notifications import NotificationActivities, NotificationRequest
    from policies.refund import (
        RefundAssessment,
        RefundDecision,
        RefundPolicy,
        RefundRoute,
        assess_refund,
        decide_refund,
    )

RECHECK_BEFORE_REFUND = "refund-recheck-before-paying"
"""Patch ID: right before refunding, the case re-reads the order and its refunds and refunds
only what is still refundable then (another case may have refunded the order meanwhile); a
refund the payments system refuses ends the case saying so. Cases started before refunded on
what they read at their start."""


class RefundInput(BaseModel):
    # Unknown keys are refused so that a misspelt field ("orderId") fails at start, by name.
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    amount: Decimal = Field(
        gt=0, max_digits=12, decimal_places=2, description="Refund asked for, order currency."
    )
    reason: str = Field(
        min_length=1, max_length=2000, description="The customer's reason, in their own words."
    )
    submitted_by: str = Field(
        default="erin", min_length=1, description="Directory user who took the request."
    )


class RefundStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    REFUNDED = "refunded"


class Outcome(StrEnum):
    AUTO_REFUNDED = "auto_refunded"
    APPROVED = "approved"
    FRAUD_CLEARED = "fraud_cleared"
    """The investigator cleared the fraud flag; the refund was issued."""
    REJECTED = "rejected"
    REJECTED_BY_POLICY = "rejected_by_policy"
    """Nothing could be refunded (payment not captured, amount above what is refundable)."""
    NOT_REFUNDABLE_ANY_MORE = "not_refundable_any_more"
    """Approved, but by the time of the refund the order no longer allowed it (another refund
    on it, a charge-back): nothing refunded."""
    REFUND_REFUSED = "refund_refused"
    """Approved, but the payments system refused the refund: nothing refunded, a person has to
    sort it out."""
    FRAUD_CONFIRMED = "fraud_confirmed"
    TIMED_OUT = "timed_out"
    FAILED_COMPENSATED = "failed_compensated"


class RefundResult(BaseModel):
    case_id: str
    order_id: str
    customer_id: str
    status: CaseStatus | RefundStatus
    outcome: Outcome
    message: str
    decided_by: str | None = None
    amount_refunded: Decimal | None = None
    refund_id: str | None = None
    compensated: list[str] = []
    compensation_failed: list[str] = []
    policy: PolicyRef


class RefundContext(BaseModel):
    order: Order
    customer: Customer
    order_history: list[Order]
    refunds: list[Refund]
    signals: list[FraudSignal]


def analyst_context(
    request: RefundInput, context: RefundContext, assessment: RefundAssessment
) -> dict[str, Any]:
    """What the refund analyst is shown. Also what its evaluation on labelled cases shows it
    (``evals/refund.py``)."""
    return {
        "request": {
            "order_id": request.order_id,
            "amount": str(request.amount),
            "currency": context.order.currency,
            "reason": request.reason,
        },
        "order": context.order.model_dump(mode="json"),
        # What the analyst needs about the person, and no more: no name, no email.
        "customer": context.customer.model_dump(
            mode="json", include={"customer_id", "tier", "status", "customer_since"}
        ),
        "order_history": [
            order.model_dump(
                mode="json",
                include={
                    "order_id",
                    "placed_at",
                    "total",
                    "payment_status",
                    "fulfilment_status",
                },
            )
            for order in context.order_history
        ],
        "refund_history": [
            refund.model_dump(
                mode="json",
                include={"refund_id", "order_id", "amount", "status", "created_at"},
            )
            for refund in context.refunds
        ],
        "fraud_signals": [s.model_dump(mode="json") for s in context.signals],
        "assessment": assessment.model_dump(mode="json"),
    }


@workflow.defn(name="Refund")
class RefundWorkflow(CaseWorkflow):
    case_type = "refund"
    description = "refund a customer by policy tier; fraud flags go to an investigator"
    input_model = RefundInput
    business_key = "order_id"
    statuses = RefundStatus

    def __init__(self) -> None:
        super().__init__()
        self._saga = Saga()

    @workflow.run
    async def run(self, request: RefundInput) -> RefundResult:
        self.begin(
            request,
            request.submitted_by,
            f"Refund on order {request.order_id}",
            f"{request.submitted_by} asked for a refund of {money(request.amount)} on order "
            f"{request.order_id}",
        )
        policy, policy_ref = await self.load_governance(RefundPolicy)
        context = await self._retrieve_context(request.order_id)
        order = context.order
        assessment = assess_refund(
            policy,
            order,
            context.customer,
            context.refunds,
            context.signals,
            request.amount,
            workflow.now(),
        )
        self._facts.update(
            order_id=order.order_id,
            customer=f"{context.customer.name} ({context.customer.tier})",
            amount=request.amount,
            currency=order.currency,
            refundable=assessment.refundable,
            fraud_flags=len(assessment.fraud_flags),
        )
        self.set_status(CaseStatus.ANALYSING, amount=request.amount)
        workflow.upsert_search_attributes(
            [sa.CASE_RISK.value_set("fraud_flag" if assessment.fraud_flags else "low")]
        )

        proposal = await self._propose(policy, request, context, assessment)
        decision = decide_refund(policy, policy_ref, assessment, proposal)
        self.record_decision(decision)

        try:
            result = await self._follow(
                policy, policy_ref, decision, request, context, assessment, proposal
            )
        except asyncio.CancelledError:
            # A cancelled case must not leave money moved: undo what was done, then report it.
            self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))
            raise
        return await self.complete(result)

    # -- steps ------------------------------------------------------------------------------

    async def _retrieve_context(self, order_id: str) -> RefundContext:
        order: Order = await self.call_tool(
            OrderActivities.get_order, OrderLookup(order_id=order_id)
        )
        customer_id = order.customer_id
        # Independent lookups: asked at once, so the case waits for the slowest, not the sum.
        customer, history, refunds, signals = await asyncio.gather(
            self.call_tool(CrmActivities.get_customer, CustomerLookup(customer_id=customer_id)),
            self.call_tool(
                OrderActivities.list_customer_orders,
                CustomerOrdersLookup(customer_id=customer_id),
            ),
            self.call_tool(PaymentActivities.list_refunds, RefundLookup(customer_id=customer_id)),
            self.call_tool(
                FraudActivities.list_signals, FraudSignalLookup(customer_id=customer_id)
            ),
        )
        context = RefundContext(
            order=order,
            customer=customer,
            order_history=history,
            refunds=refunds,
            signals=signals,
        )
        self.record(
            AuditKind.CONTEXT_RETRIEVED,
            f"order {order.order_id} ({money(order.total)} {order.currency}, payment "
            f"{order.payment_status}, {order.fulfilment_status}) for {customer.name} "
            f"({customer.tier}); {len(history)} order(s), {len(refunds)} refund(s), "
            f"{len(signals)} fraud signal(s) on record",
            context=context,
        )
        return context

    async def _propose(
        self,
        policy: RefundPolicy,
        request: RefundInput,
        context: RefundContext,
        assessment: RefundAssessment,
    ) -> RefundProposal | None:
        # Without a proposal the case still proceeds, to a person.
        consultation = await self.consult(
            REFUND_ANALYST_AGENT,
            analyst_context(request, context, assessment),
            settings=REFUND_ANALYST_AGENT.settings_in(policy.agents),
            check=check_proposal,
        )
        proposal = consultation.answer
        if proposal is not None:
            self._facts.update(
                recommendation=proposal.recommendation.value, confidence=proposal.confidence
            )
        return proposal

    async def _follow(
        self,
        policy: RefundPolicy,
        policy_ref: PolicyRef,
        decision: RefundDecision,
        request: RefundInput,
        context: RefundContext,
        assessment: RefundAssessment,
        proposal: RefundProposal | None,
    ) -> RefundResult:
        """Carry out the policy's route: refund, reject, or ask the people it names."""
        if decision.route is RefundRoute.REJECT:
            message = "rejected by policy: " + "; ".join(decision.reasons)
            return await self._close_rejected(
                context, policy_ref, message, "policy", Outcome.REJECTED_BY_POLICY
            )
        if decision.route is RefundRoute.AUTO_REFUND:
            return await self._refund(
                policy,
                context,
                request,
                request.amount,
                "policy",
                Outcome.AUTO_REFUNDED,
                policy_ref,
            )
        investigating = decision.route is RefundRoute.FRAUD_INVESTIGATION
        tiers = policy.fraud_investigation.tiers if investigating else policy.approval_tiers
        assert decision.tier is not None
        order = context.order
        outcome = await self.request_approval(
            ApprovalRequest(
                title=("Fraud investigation: refund" if investigating else "Refund")
                + f" of {money(request.amount)} {order.currency} on {order.order_id}",
                summary=_summary(request, context, assessment, proposal, decision),
                evidence={
                    "assessment": assessment.model_dump(mode="json"),
                    "proposal": proposal.model_dump(mode="json") if proposal else None,
                    "policy_reasons": decision.reasons,
                },
                amount=request.amount,
                currency=order.currency,
                tiers=tiers,
                start_tier=decision.tier,
                escalate=policy.escalation.to_next_tier_on_sla,
            )
        )
        human = outcome.decision
        if human is None:
            return await self._put_on_hold(policy, policy_ref, context, tiers)
        if human.action == DecisionAction.REJECT:
            return await self._reject(context, policy_ref, human, investigating)
        amount = request.amount if human.amount is None else human.amount
        return await self._refund(
            policy,
            context,
            request,
            amount,
            human.approver,
            Outcome.FRAUD_CLEARED if investigating else Outcome.APPROVED,
            policy_ref,
        )

    async def _refund(
        self,
        policy: RefundPolicy,
        context: RefundContext,
        request: RefundInput,
        amount: Decimal,
        decided_by: str,
        outcome: Outcome,
        policy_ref: PolicyRef,
    ) -> RefundResult:
        order, customer = context.order, context.customer
        case_id = workflow.info().workflow_id
        self.set_status(CaseStatus.EXECUTING, amount=amount)
        refund_request = RefundRequest(
            order_id=order.order_id,
            customer_id=customer.customer_id,
            amount=amount,
            currency=order.currency,
            reason=request.reason,
            reference=case_id,
            idempotency_key=self.idempotency_key("refund"),
        )
        summary = f"refunded {money(amount)} {order.currency} on order {order.order_id}"
        if workflow.patched(RECHECK_BEFORE_REFUND):
            no_longer = await self._still_refundable(policy, context, amount)
            if no_longer:
                return await self._close_rejected(
                    context,
                    policy_ref,
                    f"approved by {decided_by}, but not refunded: " + "; ".join(no_longer),
                    decided_by,
                    Outcome.NOT_REFUNDABLE_ANY_MORE,
                    approver=decided_by,
                )
            try:
                refund: Refund = await self.call_tool(
                    PaymentActivities.issue_refund, refund_request, summary=summary
                )
            except ActivityError as error:
                found = await self._refund_made_anyway(customer, refund_request)
                if found is None:
                    return await self._refund_refused(
                        context, policy_ref, amount, decided_by, error
                    )
                refund = found
        else:
            refund = await self.call_tool(
                PaymentActivities.issue_refund, refund_request, summary=summary
            )
        self._saga.add(
            f"refund {refund.refund_id} of {money(amount)} {order.currency} reversed",
            lambda: self.call_tool(
                PaymentActivities.reverse_refund,
                RefundReversal(
                    refund_id=refund.refund_id,
                    reason=f"case {case_id} could not complete",
                    idempotency_key=self.idempotency_key("refund-reversal"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        who = {
            Outcome.AUTO_REFUNDED: "",
            Outcome.FRAUD_CLEARED: f"fraud flag cleared by {decided_by}; ",
        }.get(outcome, f"approved by {decided_by}; ")
        how = " automatically by policy" if outcome is Outcome.AUTO_REFUNDED else ""
        message = f"{who}refunded {money(amount)} {order.currency}{how} (refund {refund.refund_id})"
        try:
            await self.call_tool(
                CrmActivities.add_refund_note,
                RefundNoteRequest(
                    customer_id=customer.customer_id,
                    order_id=order.order_id,
                    refund_id=refund.refund_id,
                    amount=amount,
                    currency=order.currency,
                    note=message,
                    case_id=case_id,
                    idempotency_key=self.idempotency_key("crm-refund-note"),
                ),
                summary=f"noted refund {refund.refund_id} on {customer.customer_id} in the CRM",
            )
        except ActivityError as error:
            return await self._fail_compensated(context, policy_ref, refund, error)
        self.set_status(RefundStatus.REFUNDED, amount=amount)
        await self._tell_customer(
            customer,
            f"Your refund for order {order.order_id}",
            f"We have refunded {money(amount)} {order.currency} for order {order.order_id}.",
            step="refunded",
        )
        await self.notify(
            self._requested_by, f"Refund on {order.order_id} issued", message, step="refunded"
        )
        return RefundResult(
            case_id=case_id,
            order_id=order.order_id,
            customer_id=customer.customer_id,
            status=RefundStatus.REFUNDED,
            outcome=outcome,
            message=message,
            decided_by=decided_by,
            amount_refunded=amount,
            refund_id=refund.refund_id,
            policy=policy_ref,
        )

    async def _still_refundable(
        self, policy: RefundPolicy, context: RefundContext, amount: Decimal
    ) -> list[str]:
        """Why ``amount`` may not be refunded now, read again from the systems of record; empty
        when it may. The order is the unit of money: a refund another case issued on it since
        this case read it counts against this one."""
        order, customer = context.order, context.customer
        fresh, refunds = await asyncio.gather(
            self.call_tool(
                OrderActivities.get_order,
                OrderLookup(order_id=order.order_id),
                summary=f"re-read order {order.order_id} before refunding",
            ),
            self.call_tool(
                PaymentActivities.list_refunds,
                RefundLookup(customer_id=customer.customer_id),
                summary=f"re-read the refunds of {customer.customer_id} before refunding",
            ),
        )
        now = assess_refund(policy, fresh, customer, refunds, [], amount, workflow.now())
        self.record(
            AuditKind.POLICY_DECISION,
            f"re-checked before refunding: {money(now.refundable)} {order.currency} still "
            f"refundable on {order.order_id} (already refunded {money(now.already_refunded)})"
            + ("; " + "; ".join(now.ineligible) if now.ineligible else ""),
            recheck=now,
        )
        return now.ineligible

    async def _refund_made_anyway(
        self, customer: Customer, request: RefundRequest
    ) -> Refund | None:
        """After a refund call that failed for good, the ledger says whether it went through
        anyway (its answers lost): the case's own idempotency key names it."""
        key = request.idempotency_key
        try:
            return await self.made_anyway(
                PaymentActivities.list_refunds,
                RefundLookup(customer_id=customer.customer_id),
                write=f"the refund on order {request.order_id}",
                idempotency_key=key,
                pick=lambda refunds: next((r for r in refunds if r.idempotency_key == key), None),
                summary=f"looked for refund {key} in the ledger",
            )
        except ActivityError:
            return None

    async def _refund_refused(
        self,
        context: RefundContext,
        policy_ref: PolicyRef,
        amount: Decimal,
        decided_by: str,
        error: ActivityError,
    ) -> RefundResult:
        """Approved, but the payments system refused the refund and none was made: the case ends
        saying so, and the people involved are told, rather than failing without a word."""
        order = context.order
        message = (
            f"approved by {decided_by}, but the payments system refused the refund of "
            f"{amount} {order.currency} ({failure_message(error)}); nothing was refunded, a "
            "person has to follow up"
        )
        self.set_status(CaseStatus.FAILED_NEEDS_ATTENTION)
        for person in dict.fromkeys((self._requested_by, decided_by)):
            await self.notify(
                person, f"Refund on {order.order_id} not made", message, step="refund-refused"
            )
        return RefundResult(
            case_id=workflow.info().workflow_id,
            order_id=order.order_id,
            customer_id=order.customer_id,
            status=CaseStatus.FAILED_NEEDS_ATTENTION,
            outcome=Outcome.REFUND_REFUSED,
            message=message,
            decided_by=decided_by,
            policy=policy_ref,
        )

    async def _fail_compensated(
        self, context: RefundContext, policy_ref: PolicyRef, refund: Refund, error: ActivityError
    ) -> RefundResult:
        order = context.order
        ending = await self.fail_compensated(
            self._saga,
            error,
            failed=f"noting refund {refund.refund_id} in the CRM",
            reason="CRM update failed",
        )
        await self.notify(
            self._requested_by, f"Refund on {order.order_id} failed", ending.message, step="failed"
        )
        return RefundResult(
            case_id=workflow.info().workflow_id,
            order_id=order.order_id,
            customer_id=order.customer_id,
            outcome=Outcome.FAILED_COMPENSATED,
            policy=policy_ref,
            **ending.result_fields(),
        )

    async def _reject(
        self, context: RefundContext, policy_ref: PolicyRef, decision: TaskDecision, fraud: bool
    ) -> RefundResult:
        if fraud:
            message = f"fraud confirmed by {decision.approver}: {decision.comment}; not refunded"
            outcome = Outcome.FRAUD_CONFIRMED
        else:
            message = f"rejected by {decision.approver}: {decision.comment}"
            outcome = Outcome.REJECTED
        return await self._close_rejected(context, policy_ref, message, decision.approver, outcome)

    async def _close_rejected(
        self,
        context: RefundContext,
        policy_ref: PolicyRef,
        message: str,
        decided_by: str,
        outcome: Outcome,
        *,
        approver: str | None = None,
    ) -> RefundResult:
        order = context.order
        # The customer hears that it was declined, never the fraud suspicion behind it.
        ending = await self.close_rejected(
            message,
            letter=lambda: self._tell_customer(
                context.customer,
                f"Your refund request for order {order.order_id}",
                f"We could not refund order {order.order_id}. Reply to this message if you would "
                "like us to look at it again.",
                step="rejected",
            ),
            tell_submitter=f"Refund on {order.order_id} rejected",
        )
        if approver is not None and approver != self._requested_by:
            # Who approved it hears that it was not carried out, and why.
            await self.notify(
                approver, f"Refund on {order.order_id} not made", message, step="not-refunded"
            )
        return RefundResult(
            case_id=workflow.info().workflow_id,
            order_id=order.order_id,
            customer_id=order.customer_id,
            outcome=outcome,
            decided_by=decided_by,
            policy=policy_ref,
            **ending.result_fields(),
        )

    async def _put_on_hold(
        self,
        policy: RefundPolicy,
        policy_ref: PolicyRef,
        context: RefundContext,
        tiers: list[ApprovalTier],
    ) -> RefundResult:
        order = context.order
        roles = ", ".join(tier.role for tier in tiers)
        ending = await self.put_on_hold(
            f"no decision in time from {roles}; request on hold, nothing refunded",
            notify_roles=policy.final_timeout.notify_roles,
            subject=f"Refund on {order.order_id} timed out",
            tell_submitter=f"Refund on {order.order_id} on hold",
        )
        return RefundResult(
            case_id=workflow.info().workflow_id,
            order_id=order.order_id,
            customer_id=order.customer_id,
            outcome=Outcome.TIMED_OUT,
            policy=policy_ref,
            **ending.result_fields(),
        )

    async def _tell_customer(self, customer: Customer, subject: str, body: str, step: str) -> None:
        """Best effort: the outcome stands whether or not the email goes out, and a failed
        send is in the audit trail for a person to follow up."""
        try:
            await self.call_tool(
                NotificationActivities.send,
                NotificationRequest(
                    to=customer.email,
                    subject=subject,
                    body=body,
                    case_id=workflow.info().workflow_id,
                    idempotency_key=self.idempotency_key(f"notify:customer:{step}"),
                ),
                summary=f"told customer {customer.customer_id}: {subject}",
            )
        except ActivityError:
            return


def _summary(
    request: RefundInput,
    context: RefundContext,
    assessment: RefundAssessment,
    proposal: RefundProposal | None,
    decision: RefundDecision,
) -> str:
    order, customer = context.order, context.customer
    currency = order.currency
    lines = [
        f"Refund of {money(request.amount)} {currency} asked on order {order.order_id} "
        f"({money(order.total)} {currency}, payment {order.payment_status}, "
        f"{order.fulfilment_status}, {assessment.days_since_delivery} days ago).",
        f"Customer {customer.customer_id} ({customer.tier}): {len(context.order_history)} "
        f"order(s), {assessment.recent_refunds} recent refund(s); "
        f"{money(assessment.refundable)} {currency} still refundable on this order.",
        f"Customer's reason: {request.reason}",
    ]
    lines += [f"- fraud signal {flag}" for flag in assessment.fraud_flags]
    if proposal is None:
        lines.append("Agent: no proposal (see audit trail).")
    else:
        lines.append(
            f"Agent recommends {proposal.recommendation.value} "
            f"(confidence {proposal.confidence:.2f}): {proposal.reason}"
        )
    lines.append("Needs a person because: " + "; ".join(decision.reasons) + ".")
    return "\n".join(lines)
