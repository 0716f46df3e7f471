"""Invoice exception: explain, decide by policy, get the right approval, pay exactly once.

Flow: load policy -> fetch invoice, PO, goods receipts, supplier -> compute the variance ->
the invoice analyst agent proposes -> the policy auto-approves or routes to an approver tier
(escalating when SLAs pass, putting the invoice on hold at the final timeout) -> pay with an
idempotency key -> mark the invoice paid in the ERP. If that last step fails for good, the
payment is reversed and the case ends ``failed_compensated``, saying what was undone.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from activities.agents.invoice_exception import (
        INVOICE_ANALYST,
        INVOICE_ANALYST_AGENT,
        InvoiceProposal,
        check_proposal,
    )
    from activities.erp import (
        ErpActivities,
        GoodsReceipt,
        Invoice,
        InvoiceLookup,
        InvoiceStatusChange,
        PurchaseOrder,
        PurchaseOrderLookup,
        Supplier,
        SupplierLookup,
    )
    from activities.payments import (
        Payment,
        PaymentActivities,
        PaymentLookup,
        PaymentRequest,
        PaymentReversal,
    )
    from casework.agents.checks import ProposalChecks
    from casework.agents.region import RegionOutcome, region_input, run_region
    from casework.amounts import money
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        at_once_or_in_turn,
    )
    from casework.case.saga import Saga
    from casework.case.tasks import DecisionAction, TaskDecision
    from casework.governance.models import AgentSettings, PolicyRef, RegionAgentSettings
    from policies.invoice_exception import (
        InvoiceExceptionPolicy,
        LineMatch,
        PolicyDecision,
        Route,
        Variance,
        compute_variance,
        decide_invoice,
        match_lines,
    )

SETTLED_STATUSES = frozenset({"paid", "rejected"})
# workflow.patched() ID: a payment that failed for good is looked up in the ledger and reversed
# if it went through, instead of failing the case with the money possibly moved.
RECONCILE_FAILED_PAYMENT = "reconcile-failed-payment"
# workflow.patched() ID: under a policy that gives the analyst tools, it works in an agent region
# (its lookups are its own choice, each an activity) instead of being consulted once.
ANALYST_REGION = "invoice-analyst-region"
# workflow.patched() ID: the supplier, the purchase order and its goods receipts are read at once,
# once the invoice names them, not one after the other.
ERP_READS_TOGETHER = "erp-reads-together"


class InvoiceExceptionInput(BaseModel):
    # Unknown keys are refused so that a misspelt field ("invoiceId") fails at start, by name.
    model_config = ConfigDict(extra="forbid")

    invoice_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    submitted_by: str = Field(min_length=1, description="Directory user who flagged the exception.")
    note: str | None = Field(default=None, max_length=2000)


class InvoiceStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    PAID = "paid"


class Outcome(StrEnum):
    AUTO_APPROVED = "auto_approved"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    FAILED_COMPENSATED = "failed_compensated"


class InvoiceExceptionResult(BaseModel):
    case_id: str
    invoice_id: str
    status: CaseStatus | InvoiceStatus
    outcome: Outcome
    message: str
    decided_by: str | None = None
    amount_paid: Decimal | None = None
    payment_id: str | None = None
    compensated: list[str] = []
    compensation_failed: list[str] = []
    policy: PolicyRef


class InvoiceContext(BaseModel):
    invoice: Invoice
    supplier: Supplier
    purchase_order: PurchaseOrder | None
    receipts: list[GoodsReceipt]


def analyst_context(context: InvoiceContext, variance: Variance) -> dict[str, Any]:
    """What the invoice analyst is shown: the records and the three-way match. Also what its
    evaluation on labelled cases shows it (``evals/invoice_exception.py``)."""
    return {**context.model_dump(mode="json"), "variance": variance.model_dump(mode="json")}


@workflow.defn(name="InvoiceException")
class InvoiceExceptionWorkflow(CaseWorkflow):
    case_type = "invoice-exception"
    description = "explain an AP invoice exception, approve by policy, pay exactly once"
    input_model = InvoiceExceptionInput
    business_key = "invoice_id"
    statuses = InvoiceStatus

    def __init__(self) -> None:
        super().__init__()
        self._saga = Saga()

    @workflow.run
    async def run(self, request: InvoiceExceptionInput) -> InvoiceExceptionResult:
        self.begin(
            request,
            request.submitted_by,
            f"Invoice exception {request.invoice_id}",
            f"{request.submitted_by} flagged invoice {request.invoice_id}",
        )
        policy, policy_ref = await self.load_governance(InvoiceExceptionPolicy)

        context = await self._retrieve_context(request.invoice_id)
        invoice = context.invoice
        variance = compute_variance(
            invoice, context.purchase_order, context.receipts, policy.tolerance
        )
        self._facts.update(
            invoice_id=invoice.invoice_id,
            supplier=context.supplier.name,
            currency=invoice.currency,
            total=invoice.total,
            variance=variance.variance,
            variance_percent=variance.variance_percent,
        )
        self.set_status(CaseStatus.ANALYSING, amount=invoice.total)

        proposal, checks = await self._propose(policy, context, variance)
        decision = decide_invoice(
            policy,
            policy_ref,
            variance,
            proposal,
            context.supplier,
            checks,
            currency=invoice.currency,
        )
        self.record_decision(decision)

        try:
            if decision.route is Route.AUTO_APPROVE:
                result = await self._pay(
                    invoice, invoice.total, "policy", Outcome.AUTO_APPROVED, policy_ref
                )
            else:
                lines = match_lines(invoice, context.purchase_order, context.receipts)
                result = await self._seek_approval(
                    policy, policy_ref, decision, invoice, variance, proposal, checks, lines
                )
        except asyncio.CancelledError:
            # A cancelled case must not leave money moved: undo what was done, then report it.
            self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))
            raise
        return await self.complete(result)

    # -- steps ------------------------------------------------------------------------------

    async def _retrieve_context(self, invoice_id: str) -> InvoiceContext:
        invoice: Invoice = await self.call_tool(
            ErpActivities.get_invoice, InvoiceLookup(invoice_id=invoice_id)
        )
        if invoice.status in SETTLED_STATUSES:
            raise ApplicationError(
                f"invoice {invoice_id} is already {invoice.status}; nothing to decide",
                type="InvoiceAlreadySettled",
                non_retryable=True,
            )
        supplier_lookup = SupplierLookup(supplier_id=invoice.supplier_id)
        together = workflow.patched(ERP_READS_TOGETHER)
        supplier, (purchase_order, receipts) = await at_once_or_in_turn(
            together,
            lambda: self.call_tool(ErpActivities.get_supplier, supplier_lookup),
            lambda: self._order_and_receipts(invoice.po_number, together=together),
        )
        context = InvoiceContext(
            invoice=invoice, supplier=supplier, purchase_order=purchase_order, receipts=receipts
        )
        self.record(
            AuditKind.CONTEXT_RETRIEVED,
            f"invoice {invoice.invoice_id} ({money(invoice.total)} {invoice.currency}) from "
            f"{supplier.name}, PO {invoice.po_number or 'none'}, {len(receipts)} goods receipt(s)",
            context=context,
        )
        return context

    async def _order_and_receipts(
        self, po_number: str | None, *, together: bool
    ) -> tuple[PurchaseOrder | None, list[GoodsReceipt]]:
        """The invoice's purchase order and its goods receipts (none without a PO), read at once
        or, in cases started before ``ERP_READS_TOGETHER``, one after the other."""
        if not po_number:
            return None, []
        lookup = PurchaseOrderLookup(po_number=po_number)
        order, receipts = await at_once_or_in_turn(
            together,
            lambda: self.call_tool(ErpActivities.get_purchase_order, lookup),
            lambda: self.call_tool(ErpActivities.list_goods_receipts, lookup),
        )
        return order, receipts

    async def _propose(
        self, policy: InvoiceExceptionPolicy, context: InvoiceContext, variance: Variance
    ) -> tuple[InvoiceProposal | None, ProposalChecks | None]:
        # Without a proposal the case still proceeds, to a person.
        case_data = analyst_context(context, variance)
        settings = policy.agents.get(INVOICE_ANALYST, AgentSettings())
        if isinstance(settings, RegionAgentSettings) and workflow.patched(ANALYST_REGION):
            proposal, checks = await self._propose_in_region(settings, case_data, context)
        else:
            consultation = await self.consult(
                INVOICE_ANALYST_AGENT,
                case_data,
                settings=_consulted(settings),
                check=lambda proposal: check_proposal(proposal, context.invoice.total),
            )
            proposal, checks = consultation.answer, consultation.checks
        if proposal is not None:
            self._facts.update(
                recommendation=proposal.recommendation.value, confidence=proposal.confidence
            )
        return proposal, checks

    async def _propose_in_region(
        self, settings: RegionAgentSettings, case_data: dict[str, object], context: InvoiceContext
    ) -> tuple[InvoiceProposal | None, ProposalChecks | None]:
        """The analyst in an agent region: it starts from what the case fetched and may look
        further with the policy's read-only tools. Its answer is checked as a consulted one's."""
        directory = self._directory
        assert directory is not None
        region_id = f"{workflow.info().workflow_id}-agent"
        # Lets people (and the CLI) find a question the agent asks while it works.
        self._facts["agent_region"] = region_id
        region = await run_region(
            self,
            region_input(
                INVOICE_ANALYST_AGENT,
                {INVOICE_ANALYST: settings},
                context=case_data,
                requested_by=self._requested_by,
                directory=directory,
            ),
            region_id=region_id,
            summary=f"{INVOICE_ANALYST} on invoice {context.invoice.invoice_id}",
        )
        self._facts.update(agent=region.outcome.value, agent_model=", ".join(region.models))
        if region.outcome is not RegionOutcome.ANSWERED or region.output is None:
            self.record(
                AuditKind.AGENT_FAILED,
                f"{INVOICE_ANALYST} gave no usable proposal: {region.outcome.value}: "
                f"{region.reason}",
            )
            return None, None
        proposal = InvoiceProposal.model_validate(region.output)
        self.record_proposal(
            INVOICE_ANALYST,
            f"{INVOICE_ANALYST} on {', '.join(region.models)} {proposal.headline()}",
            recommended_action=proposal.recommended_action(),
            confidence=proposal.confidence,
            proposal=proposal,
        )
        return proposal, self.check_proposal(check_proposal(proposal, context.invoice.total))

    async def _seek_approval(
        self,
        policy: InvoiceExceptionPolicy,
        policy_ref: PolicyRef,
        decision: PolicyDecision,
        invoice: Invoice,
        variance: Variance,
        proposal: InvoiceProposal | None,
        checks: ProposalChecks | None,
        lines: list[LineMatch],
    ) -> InvoiceExceptionResult:
        assert decision.tier is not None
        outcome = await self.request_approval(
            ApprovalRequest(
                title=f"Invoice {invoice.invoice_id}: {money(invoice.total)} {invoice.currency}",
                summary=_summary(invoice, variance, proposal, decision, checks),
                # Evidence is task state only (no command carries it): each line against the
                # PO and receipts, for the approver's table.
                evidence={
                    "lines": [line.model_dump(mode="json") for line in lines],
                    "variance": variance.model_dump(mode="json"),
                    "proposal": proposal.model_dump(mode="json") if proposal else None,
                    "policy_reasons": decision.reasons,
                },
                amount=invoice.total,
                currency=invoice.currency,
                tiers=policy.approval_tiers,
                start_tier=decision.tier,
                escalate=policy.escalation.to_next_tier_on_sla,
            )
        )
        human = outcome.decision
        if human is None:
            return await self._put_on_hold(policy, policy_ref, invoice)
        if human.action == DecisionAction.REJECT:
            return await self._reject(policy_ref, invoice, human)
        amount = invoice.total if human.amount is None else human.amount
        return await self._pay(invoice, amount, human.approver, Outcome.APPROVED, policy_ref)

    async def _pay(
        self,
        invoice: Invoice,
        amount: Decimal,
        decided_by: str,
        outcome: Outcome,
        policy_ref: PolicyRef,
    ) -> InvoiceExceptionResult:
        self.set_status(CaseStatus.EXECUTING, amount=amount)
        try:
            payment: Payment = await self.call_tool(
                PaymentActivities.pay,
                PaymentRequest(
                    invoice_id=invoice.invoice_id,
                    supplier_id=invoice.supplier_id,
                    amount=amount,
                    currency=invoice.currency,
                    reference=workflow.info().workflow_id,
                    idempotency_key=self.idempotency_key("payment"),
                ),
                summary=f"paid {money(amount)} {invoice.currency} for {invoice.invoice_id}",
            )
        except ActivityError as error:
            # Cases that failed here before the change keep failing on replay.
            if not workflow.patched(RECONCILE_FAILED_PAYMENT):
                raise
            return await self._payment_failed(invoice, policy_ref, error)
        self._register_reversal(payment, amount, invoice.currency)
        try:
            await self.call_tool(
                ErpActivities.set_invoice_status,
                InvoiceStatusChange(
                    invoice_id=invoice.invoice_id,
                    status="paid",
                    note=f"payment {payment.payment_id}, approved by {decided_by}",
                    idempotency_key=self.idempotency_key("erp-status-paid"),
                ),
            )
        except ActivityError as error:
            return await self._fail_compensated(invoice, policy_ref, error)
        how = (
            "auto-approved by policy"
            if outcome is Outcome.AUTO_APPROVED
            else f"approved by {decided_by}"
        )
        message = f"{how}; paid {money(amount)} {invoice.currency}"
        self.set_status(InvoiceStatus.PAID, amount=amount)
        await self.notify(
            self._requested_by,
            f"Invoice {invoice.invoice_id} paid",
            message,
            step="paid",
        )
        return InvoiceExceptionResult(
            case_id=workflow.info().workflow_id,
            invoice_id=invoice.invoice_id,
            status=InvoiceStatus.PAID,
            outcome=outcome,
            message=message,
            decided_by=decided_by,
            amount_paid=amount,
            payment_id=payment.payment_id,
            policy=policy_ref,
        )

    def _register_reversal(self, payment: Payment, amount: Decimal, currency: str) -> None:
        self._saga.add(
            f"payment {payment.payment_id} of {money(amount)} {currency} reversed",
            lambda: self.call_tool(
                PaymentActivities.reverse,
                PaymentReversal(
                    payment_id=payment.payment_id,
                    reason=f"case {workflow.info().workflow_id} could not complete",
                    idempotency_key=self.idempotency_key("payment-reversal"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )

    async def _payment_failed(
        self, invoice: Invoice, policy_ref: PolicyRef, error: ActivityError
    ) -> InvoiceExceptionResult:
        """The payment failed for good, yet it may have gone through with every answer lost:
        the ledger says, under the case's own idempotency key. What went through is reversed;
        when the ledger cannot be read either, a person must look (failed_needs_attention)."""
        key = self.idempotency_key("payment")
        try:
            found: Payment | None = await self.made_anyway(
                PaymentActivities.find,
                PaymentLookup(invoice_id=invoice.invoice_id, idempotency_key=key),
                write=f"the payment for {invoice.invoice_id}",
                idempotency_key=key,
                pick=lambda payment: payment,
                retry_policy=COMPENSATION_RETRY,
                summary=f"looked up the payment for {invoice.invoice_id} after it failed",
            )
        except ActivityError:
            self._saga.add_unconfirmed(
                f"a possible payment for {invoice.invoice_id} (the ledger could not be read)",
                f"check the ledger for {key}",
            )
        else:
            if found is not None and found.status != "reversed":
                self._register_reversal(found, found.amount, found.currency)
        return await self._fail_compensated(
            invoice, policy_ref, error, step=f"paying {invoice.invoice_id}"
        )

    async def _fail_compensated(
        self,
        invoice: Invoice,
        policy_ref: PolicyRef,
        error: ActivityError,
        step: str | None = None,
    ) -> InvoiceExceptionResult:
        ending = await self.fail_compensated(
            self._saga,
            error,
            failed=step or f"marking {invoice.invoice_id} paid in the ERP",
            reason="payment failed" if step else "ERP status update failed",
        )
        await self.notify(
            self._requested_by, f"Invoice {invoice.invoice_id} failed", ending.message, "failed"
        )
        return InvoiceExceptionResult(
            case_id=workflow.info().workflow_id,
            invoice_id=invoice.invoice_id,
            outcome=Outcome.FAILED_COMPENSATED,
            policy=policy_ref,
            **ending.result_fields(),
        )

    async def _reject(
        self, policy_ref: PolicyRef, invoice: Invoice, decision: TaskDecision
    ) -> InvoiceExceptionResult:
        await self.call_tool(
            ErpActivities.set_invoice_status,
            InvoiceStatusChange(
                invoice_id=invoice.invoice_id,
                status="rejected",
                note=f"rejected by {decision.approver}: {decision.comment}",
                idempotency_key=self.idempotency_key("erp-status-rejected"),
            ),
        )
        ending = await self.close_rejected(
            f"rejected by {decision.approver}: {decision.comment}",
            tell_submitter=f"Invoice {invoice.invoice_id} rejected",
        )
        return InvoiceExceptionResult(
            case_id=workflow.info().workflow_id,
            invoice_id=invoice.invoice_id,
            outcome=Outcome.REJECTED,
            decided_by=decision.approver,
            policy=policy_ref,
            **ending.result_fields(),
        )

    async def _put_on_hold(
        self, policy: InvoiceExceptionPolicy, policy_ref: PolicyRef, invoice: Invoice
    ) -> InvoiceExceptionResult:
        final = policy.final_timeout
        await self.call_tool(
            ErpActivities.set_invoice_status,
            InvoiceStatusChange(
                invoice_id=invoice.invoice_id,
                status=final.invoice_status,
                note="no approver decided within the SLAs of every tier",
                idempotency_key=self.idempotency_key(f"erp-status-{final.invoice_status}"),
            ),
        )
        ending = await self.put_on_hold(
            f"no decision in time at any tier; invoice put {final.invoice_status}",
            notify_roles=final.notify_roles,
            subject=f"Invoice {invoice.invoice_id} timed out",
            tell_submitter=f"Invoice {invoice.invoice_id} on hold",
        )
        return InvoiceExceptionResult(
            case_id=workflow.info().workflow_id,
            invoice_id=invoice.invoice_id,
            outcome=Outcome.TIMED_OUT,
            policy=policy_ref,
            **ending.result_fields(),
        )


def _summary(
    invoice: Invoice,
    variance: Variance,
    proposal: InvoiceProposal | None,
    decision: PolicyDecision,
    checks: ProposalChecks | None,
) -> str:
    lines = [
        f"Invoice {invoice.invoice_id}: {money(invoice.total)} {invoice.currency}; "
        f"PO and receipts support {money(variance.matched_amount)} "
        f"(variance {money(variance.variance)}, {variance.variance_percent}%).",
    ]
    lines += [f"- {finding}" for finding in variance.findings]
    if proposal is None:
        lines.append("Agent: no proposal (see audit trail).")
    else:
        lines.append(
            f"Agent recommends {proposal.recommendation.value} "
            f"(confidence {proposal.confidence:.2f}): {proposal.explanation}"
        )
        if proposal.suggested_amount is not None:
            if checks is None or checks.field_verified("suggested_amount"):
                lines.append(f"Agent suggests paying {money(proposal.suggested_amount)}.")
            else:
                lines.append(
                    f"Agent suggests paying {money(proposal.suggested_amount)}, which is not "
                    "within the invoice total: disregard it."
                )
    lines.append("Needs a person because: " + "; ".join(decision.reasons) + ".")
    return "\n".join(lines)


def _consulted(settings: AgentSettings | RegionAgentSettings) -> AgentSettings:
    """Settings for consulting the analyst once: what a policy before version 3 gave it."""
    if isinstance(settings, AgentSettings):
        return settings
    return AgentSettings(
        model=settings.model,
        fallback_models=settings.fallback_models,
        max_tokens=settings.max_tokens_per_call,
    )
