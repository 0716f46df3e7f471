"""Lead routing: score, read and look up a lead at once, route it by policy, message it once.

Flow: load policy -> read the lead from the CRM -> in parallel: enrichment (firmographics),
the lead analyst agent's read of what the prospect wrote, and the CRM lookup (existing account,
account executives) -> the policy scores the ICP fit, picks the AE (account owner, else the
territory's least-loaded AE with capacity, else the fallback territory's) and the confidence
decides: straight through (assign, queue the first touch; no person, seconds), or a review by
sales_ops first (approve -> the same writes; reject or no decision in time -> nurture queue).
Nothing is written to the CRM before that decision. If the first touch cannot be queued after
the assignment, the assignment is undone and the case ends ``failed_compensated``.
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

    from activities.agents.lead_routing import (
        LEAD_ANALYST,
        LEAD_ANALYST_AGENT,
        LeadRead,
        check_read,
    )
    from activities.crm_sales import (
        Account,
        AccountExecutive,
        AccountMatch,
        CompanyLookup,
        CrmSalesActivities,
        Enrichment,
        Firmographics,
        FirstTouchRequest,
        Lead,
        LeadAssignment,
        LeadLookup,
        LeadRelease,
        Roster,
        RosterLookup,
    )
    from casework.agents.checks import ProposalChecks
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
    )
    from casework.case.saga import Saga
    from casework.case.tasks import DecisionAction
    from casework.governance.models import PolicyRef, format_duration
    from policies.lead_routing import (
        LeadDecision,
        LeadRoute,
        LeadRoutingPolicy,
        RoutingRule,
        TimeoutAction,
        decide_lead,
        first_touch_text,
    )

ONE_OWNER_PER_LEAD = "lead-write-only-if-untaken"
"""Patch ID: the case assigns (or nurtures) a lead only if nobody took it meanwhile (the CRM
refuses otherwise, atomically), and then ends ``superseded`` having written nothing. Cases
started before wrote over whoever had taken the lead."""
MESSAGE_EXCERPT_CHARS = 300


class LeadRoutingInput(BaseModel):
    # Unknown keys are refused so that a misspelt field ("leadId") fails at start, by name.
    model_config = ConfigDict(extra="forbid")

    lead_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    submitted_by: str = Field(
        default="paul", min_length=1, description="Directory user the case is opened for."
    )


class LeadStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    ROUTED = "routed"


class Outcome(StrEnum):
    STRAIGHT_THROUGH = "straight_through"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    NO_CAPACITY = "no_capacity"
    FAILED_COMPENSATED = "failed_compensated"
    TAKEN_ELSEWHERE = "taken_elsewhere"
    """Another case or a person took the lead first; this case wrote nothing."""


class LeadRoutingResult(BaseModel):
    case_id: str
    lead_id: str
    status: CaseStatus | LeadStatus
    outcome: Outcome
    message: str
    decided_by: str | None = None
    ae_id: str | None = None
    """Who has the lead now; None when it is unassigned (nurture queue, or compensated)."""
    proposed_ae_id: str | None = None
    routing_rule: RoutingRule
    territory: str | None = None
    confidence: float
    icp_score: int
    first_touch_message_id: str | None = None
    compensated: list[str] = []
    compensation_failed: list[str] = []
    policy: PolicyRef


class _Context(BaseModel):
    lead: Lead
    firmographics: Firmographics | None
    read: LeadRead | None
    read_failure: str = ""
    read_checks: ProposalChecks | None = None
    account: Account | None
    roster: list[AccountExecutive]


def analyst_context(lead: Lead) -> dict[str, Any]:
    """What the lead analyst is shown. Also what its evaluation on labelled cases shows it
    (``evals/lead_routing.py``)."""
    # No email address: the read needs what was written, not how to reach its writer.
    return {
        "lead": lead.model_dump(
            mode="json",
            include={
                "lead_id",
                "contact_name",
                "job_title",
                "company",
                "domain",
                "country",
                "source",
                "message",
            },
        )
    }


@workflow.defn(name="LeadRouting")
class LeadRoutingWorkflow(CaseWorkflow):
    case_type = "lead-routing"
    description = "score and read an inbound lead, route it to an AE by territory and load"
    input_model = LeadRoutingInput
    business_key = "lead_id"
    statuses = LeadStatus

    def __init__(self) -> None:
        super().__init__()
        self._saga = Saga()

    @workflow.run
    async def run(self, request: LeadRoutingInput) -> LeadRoutingResult:
        self.begin(
            request,
            request.submitted_by,
            f"Lead routing {request.lead_id}",
            f"{request.submitted_by} opened routing for lead {request.lead_id}",
        )
        policy, policy_ref = await self.load_governance(LeadRoutingPolicy)
        context = await self._gather_context(policy, request.lead_id)
        decision = decide_lead(
            policy,
            policy_ref,
            context.lead,
            firmographics=context.firmographics,
            read=context.read,
            account=context.account,
            roster=context.roster,
            no_read_reason=context.read_failure,
            read_checks=context.read_checks,
        )
        proposed = decision.routing.ae
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {policy_ref}: {decision.route.value}"
            + (f" to {proposed.ae_id} by {decision.routing.rule.value}" if proposed else "")
            + f", confidence {decision.confidence:.2f} because "
            + "; ".join(decision.reasons),
            decision=decision,
        )
        self._facts.update(
            route=decision.route.value,
            confidence=decision.confidence,
            icp_score=decision.icp.score,
            proposed_ae=f"{proposed.ae_id} ({proposed.name})" if proposed else None,
            routing_rule=decision.routing.rule.value,
        )

        try:
            if decision.route is LeadRoute.NURTURE:
                result = await self._nurture(
                    policy,
                    context,
                    decision,
                    "nobody has capacity to take it: " + "; ".join(decision.routing.reasons),
                    Outcome.NO_CAPACITY,
                    CaseStatus.ON_HOLD,
                    decided_by="policy",
                )
            elif decision.route is LeadRoute.STRAIGHT_THROUGH:
                result = await self._route(
                    policy, context, decision, "policy", Outcome.STRAIGHT_THROUGH
                )
            else:
                result = await self._review(policy, context, decision)
        except asyncio.CancelledError:
            # A cancelled case must not leave a lead with an AE nobody messaged: undo, then say so.
            self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))
            raise
        return await self.complete(result)

    # -- steps ------------------------------------------------------------------------------

    async def _gather_context(self, policy: LeadRoutingPolicy, lead_id: str) -> _Context:
        lead: Lead = await self.call_tool(
            CrmSalesActivities.get_lead, LeadLookup(lead_id=lead_id), summary=f"read lead {lead_id}"
        )
        if lead.status != "new":
            raise ApplicationError(
                f"lead {lead_id} is already {lead.status}"
                + (f" (owner {lead.owner_ae_id})" if lead.owner_ae_id else "")
                + "; nothing to route",
                type="LeadAlreadyRouted",
                non_retryable=True,
            )
        self._facts.update(lead_id=lead.lead_id, company=lead.company, country=lead.country)
        # The three lookups need nothing from each other: run them at once, so the case takes as
        # long as the slowest of them rather than their sum.
        firmographics, (read, read_failure, read_checks), (account, roster) = await asyncio.gather(
            self._enrich(lead), self._read(policy, lead), self._look_up_crm(lead)
        )
        context = _Context(
            lead=lead,
            firmographics=firmographics,
            read=read,
            read_failure=read_failure,
            read_checks=read_checks,
            account=account,
            roster=roster,
        )
        self.record(
            AuditKind.CONTEXT_RETRIEVED,
            f"lead {lead.lead_id} from {lead.company} ({lead.country}); firmographics: "
            + (
                f"{firmographics.industry}, {firmographics.employees} employees"
                if firmographics
                else "none"
            )
            + f"; account: {account.account_id if account else 'none'}; "
            f"{len(roster)} account executive(s)",
            # The read's checks have an entry of their own (proposal_checked).
            context=context.model_dump(mode="json", exclude={"read_checks"}),
        )
        return context

    async def _enrich(self, lead: Lead) -> Firmographics | None:
        try:
            enrichment: Enrichment = await self.call_tool(
                CrmSalesActivities.enrich_company,
                CompanyLookup(domain=lead.domain),
                summary=f"enrichment for {lead.domain}",
            )
        except ActivityError:
            # Enrichment only informs the ICP score: without it the score is lower, and an
            # unsure case goes to a person. The failure is already in the audit trail.
            return None
        return enrichment.firmographics

    async def _read(
        self, policy: LeadRoutingPolicy, lead: Lead
    ) -> tuple[LeadRead | None, str, ProposalChecks | None]:
        consultation = await self.consult(
            LEAD_ANALYST_AGENT,
            analyst_context(lead),
            settings=LEAD_ANALYST_AGENT.settings_in(policy.agents),
            check=lambda read: check_read(read, lead.message, policy.sales_intents),
            failure=f"{LEAD_ANALYST} gave no usable read",
        )
        read = consultation.answer
        if read is None:
            return None, consultation.why_none, None
        self._facts.update(intent=read.intent.value, agent_confidence=read.confidence)
        return read, "", consultation.checks

    async def _look_up_crm(self, lead: Lead) -> tuple[Account | None, list[AccountExecutive]]:
        match, roster = await asyncio.gather(
            self.call_tool(
                CrmSalesActivities.find_account,
                CompanyLookup(domain=lead.domain),
                summary=f"account lookup for {lead.domain}",
            ),
            self.call_tool(
                CrmSalesActivities.list_account_executives,
                RosterLookup(),
                summary="account executives with territory and load",
            ),
        )
        account_match: AccountMatch = match
        executives: Roster = roster
        return account_match.account, executives.account_executives

    async def _review(
        self, policy: LeadRoutingPolicy, context: _Context, decision: LeadDecision
    ) -> LeadRoutingResult:
        ae = decision.routing.ae
        assert ae is not None
        lead = context.lead
        outcome = await self.request_approval(
            ApprovalRequest(
                title=f"Lead {lead.lead_id}: {lead.company} to {ae.name}",
                summary=_summary(context, decision, policy.min_confidence),
                evidence={
                    "decision": decision.model_dump(mode="json"),
                    "lead_message": lead.message,
                },
                amount=Decimal(0),
                currency="",
                tiers=policy.review.tiers,
                start_tier=0,
            )
        )
        human = outcome.decision
        if human is None:
            sla = format_duration(policy.review.tiers[-1].sla)
            if policy.review.on_timeout is TimeoutAction.ROUTE_AS_PROPOSED:
                return await self._route(
                    policy,
                    context,
                    decision,
                    f"policy (no review within {sla})",
                    Outcome.TIMED_OUT,
                )
            return await self._nurture(
                policy,
                context,
                decision,
                f"nobody reviewed the routing within {sla}",
                Outcome.TIMED_OUT,
                CaseStatus.ON_HOLD,
                decided_by="policy",
            )
        if human.action == DecisionAction.REJECT:
            return await self._nurture(
                policy,
                context,
                decision,
                f"routing rejected by {human.approver}: {human.comment}",
                Outcome.REJECTED,
                CaseStatus.REJECTED,
                decided_by=human.approver,
            )
        return await self._route(policy, context, decision, human.approver, Outcome.APPROVED)

    async def _route(
        self,
        policy: LeadRoutingPolicy,
        context: _Context,
        decision: LeadDecision,
        decided_by: str,
        outcome: Outcome,
    ) -> LeadRoutingResult:
        ae = decision.routing.ae
        assert ae is not None
        lead = context.lead
        case_id = workflow.info().workflow_id
        self.set_status(CaseStatus.EXECUTING)
        only_if_new = workflow.patched(ONE_OWNER_PER_LEAD)
        try:
            await self.call_tool(
                CrmSalesActivities.assign_lead,
                LeadAssignment(
                    lead_id=lead.lead_id,
                    ae_id=ae.ae_id,
                    account_id=context.account.account_id if context.account else None,
                    note=(
                        f"{decision.routing.rule.value} routing by {case_id}, decided by "
                        f"{decided_by}"
                    ),
                    only_if_new=only_if_new,
                    idempotency_key=self.idempotency_key("assign"),
                ),
                summary=f"assigned {lead.lead_id} to {ae.ae_id} ({ae.name})",
            )
        except ActivityError:
            if only_if_new and (taken := await self._taken(lead.lead_id)) is not None:
                return self._taken_elsewhere(decision, taken, decided_by)
            raise
        self._saga.add(
            f"lead {lead.lead_id} unassigned from {ae.ae_id}",
            lambda: self.call_tool(
                CrmSalesActivities.unassign_lead,
                LeadRelease(
                    lead_id=lead.lead_id,
                    reason=f"case {case_id} could not complete",
                    idempotency_key=self.idempotency_key("unassign"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        text = first_touch_text(policy.first_touch, lead, ae)
        try:
            message = await self.call_tool(
                CrmSalesActivities.queue_first_touch,
                FirstTouchRequest(
                    lead_id=lead.lead_id,
                    ae_id=ae.ae_id,
                    subject=text.subject,
                    body=text.body,
                    idempotency_key=self.idempotency_key("first-touch"),
                ),
                summary=f"queued the first touch to {lead.lead_id} from {ae.ae_id}",
            )
        except ActivityError as error:
            return await self._fail_compensated(policy, context, decision, decided_by, error)
        how = {
            Outcome.STRAIGHT_THROUGH: "routed straight through by policy",
            Outcome.APPROVED: f"routing approved by {decided_by}",
            Outcome.TIMED_OUT: f"routed as proposed: {decided_by}",
        }[outcome]
        result_message = (
            f"assigned to {ae.name} ({ae.ae_id}, {ae.territory}) by "
            f"{decision.routing.rule.value}; {how}; first touch {message.message_id} queued"
        )
        self.set_status(LeadStatus.ROUTED)
        return self._result(
            decision,
            lead,
            LeadStatus.ROUTED,
            outcome,
            result_message,
            decided_by=decided_by,
            ae_id=ae.ae_id,
            first_touch_message_id=message.message_id,
        )

    async def _nurture(
        self,
        policy: LeadRoutingPolicy,
        context: _Context,
        decision: LeadDecision,
        reason: str,
        outcome: Outcome,
        status: CaseStatus | LeadStatus,
        *,
        decided_by: str,
    ) -> LeadRoutingResult:
        lead = context.lead
        only_if_unassigned = workflow.patched(ONE_OWNER_PER_LEAD)
        try:
            await self.call_tool(
                CrmSalesActivities.nurture_lead,
                LeadRelease(
                    lead_id=lead.lead_id,
                    reason=reason,
                    only_if_unassigned=only_if_unassigned,
                    idempotency_key=self.idempotency_key("nurture"),
                ),
                summary=f"put {lead.lead_id} in the nurture queue",
            )
        except ActivityError:
            if only_if_unassigned and (taken := await self._taken(lead.lead_id)) is not None:
                return self._taken_elsewhere(decision, taken, decided_by)
            raise
        message = f"put in the nurture queue, unassigned: {reason}"
        self.set_status(status)
        if outcome is not Outcome.REJECTED:
            # The reviewer who rejected knows; otherwise nobody chose this, so sales ops is told.
            await self.notify_role(
                policy.review.tiers[0].role,
                f"Lead {lead.lead_id} ({lead.company}) in the nurture queue",
                message,
                step="nurture",
            )
        return self._result(decision, lead, status, outcome, message, decided_by=decided_by)

    async def _taken(self, lead_id: str) -> Lead | None:
        """The lead as the CRM has it now, if someone else took it since the case read it."""
        try:
            lead: Lead = await self.call_tool(
                CrmSalesActivities.get_lead,
                LeadLookup(lead_id=lead_id),
                summary=f"re-read lead {lead_id}",
            )
        except ActivityError:
            return None
        return lead if lead.status == "assigned" else None

    def _taken_elsewhere(
        self, decision: LeadDecision, lead: Lead, decided_by: str
    ) -> LeadRoutingResult:
        """Another case or a person took the lead first: one lead, one owner, one first touch,
        so this case writes nothing over theirs."""
        message = (
            f"not routed: lead {lead.lead_id} was assigned to {lead.owner_ae_id} by someone else "
            "meanwhile; this case wrote nothing (no assignment, no first touch)"
        )
        self.record(AuditKind.POLICY_DECISION, message, lead_status=lead.status)
        self.set_status(CaseStatus.SUPERSEDED)
        return self._result(
            decision,
            lead,
            CaseStatus.SUPERSEDED,
            Outcome.TAKEN_ELSEWHERE,
            message,
            decided_by=decided_by,
            ae_id=lead.owner_ae_id,
        )

    async def _fail_compensated(
        self,
        policy: LeadRoutingPolicy,
        context: _Context,
        decision: LeadDecision,
        decided_by: str,
        error: ActivityError,
    ) -> LeadRoutingResult:
        lead = context.lead
        ending = await self.fail_compensated(
            self._saga,
            error,
            failed=f"queuing the first touch to {lead.lead_id}",
            reason="queuing the first touch failed",
        )
        await self.notify_role(
            policy.review.tiers[0].role,
            f"Lead {lead.lead_id} ({lead.company}) could not be routed",
            ending.message,
            step="failed",
        )
        return self._result(
            decision,
            lead,
            ending.status,
            Outcome.FAILED_COMPENSATED,
            ending.message,
            decided_by=decided_by,
            # Still with the AE only if unassigning failed too.
            ae_id=decision.routing.ae.ae_id
            if ending.compensation_failed and decision.routing.ae
            else None,
            compensated=ending.compensated,
            compensation_failed=ending.compensation_failed,
        )

    def _result(
        self,
        decision: LeadDecision,
        lead: Lead,
        status: CaseStatus | LeadStatus,
        outcome: Outcome,
        message: str,
        *,
        decided_by: str,
        ae_id: str | None = None,
        first_touch_message_id: str | None = None,
        compensated: list[str] | None = None,
        compensation_failed: list[str] | None = None,
    ) -> LeadRoutingResult:
        routing = decision.routing
        return LeadRoutingResult(
            case_id=workflow.info().workflow_id,
            lead_id=lead.lead_id,
            status=status,
            outcome=outcome,
            message=message,
            decided_by=decided_by,
            ae_id=ae_id,
            proposed_ae_id=routing.ae.ae_id if routing.ae else None,
            routing_rule=routing.rule,
            territory=routing.territory,
            confidence=decision.confidence,
            icp_score=decision.icp.score,
            first_touch_message_id=first_touch_message_id,
            compensated=compensated or [],
            compensation_failed=compensation_failed or [],
            policy=decision.policy,
        )


def _summary(context: _Context, decision: LeadDecision, min_confidence: float) -> str:
    lead = context.lead
    ae = decision.routing.ae
    assert ae is not None
    excerpt = lead.message[:MESSAGE_EXCERPT_CHARS] + (
        "..." if len(lead.message) > MESSAGE_EXCERPT_CHARS else ""
    )
    read = context.read
    lines = [
        f"Lead {lead.lead_id}: {lead.contact_name}"
        + (f", {lead.job_title}" if lead.job_title else "")
        + f" at {lead.company} ({lead.domain}, {lead.country}).",
        f'They wrote: "{excerpt}"',
        f"Proposed: {ae.name} ({ae.ae_id}, {ae.territory}, load {ae.current_load}/"
        f"{ae.capacity}) by {decision.routing.rule.value}.",
        f"ICP {decision.icp.score}/100: " + "; ".join(decision.icp.findings) + ".",
        (
            f"Agent reads {read.intent.value} (confidence {read.confidence:.2f}): {read.summary}"
            if read
            else f"Agent: no read ({context.read_failure or 'unavailable'})."
        ),
        f"Needs a person because the confidence {decision.confidence:.2f} is below "
        f"{min_confidence:.2f}, the policy's threshold for routing without one.",
        "Approve to assign the lead and queue the first touch; reject with a comment to put it "
        "in the nurture queue, unassigned.",
    ]
    return "\n".join(lines)
