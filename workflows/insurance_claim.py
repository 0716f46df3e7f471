"""Insurance claim: specialists read the claim, a coordinator proposes, the policy decides.

Flow: load policy -> read the first notice of loss and the insurance policy -> the claims
coordinator runs in an agent region (child workflow) and delegates, in parallel, to a coverage
analyst, a damage assessor and a fraud analyst (each its own child region), then reconciles their
findings into one proposal -> the proposal's values are checked against the records (coverage
against the policy record; the amount against the estimate held to repair-cost benchmarks, the
limit and the deductible) and the claim history's red flags are read -> the policy decides:
deny (not covered, the claimant told why), fast-track payment, an adjuster by amount, or special
investigations -> pay once (idempotency key), close the claim on the policy's register, tell the
claimant -> watch for a fraud finding: a confirmed one recovers the payout (reversed, the claim
reopened: saga compensation) and the case says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from activities.agents.insurance_claim import (
        CLAIMS_COORDINATOR,
        COORDINATOR_AGENT,
        SPECIALISTS,
        ClaimProposal,
        benchmarked_estimate,
        check_claim_proposal,
        payable_bound,
    )
    from activities.claim_history import (
        ClaimHistoryActivities,
        FraudFinding,
        FraudFindingLookup,
        PastClaim,
        PriorClaimsLookup,
    )
    from activities.claims import (
        Claim,
        ClaimLookup,
        ClaimsActivities,
        LetterRequest,
        Payout,
        PayoutRequest,
        PayoutReversal,
        PayoutsLookup,
    )
    from activities.policy_admin import (
        ClaimStatusChange,
        InsurancePolicy,
        PolicyAdminActivities,
        PolicyLookup,
    )
    from activities.repair_costs import Benchmark, BenchmarkLookup, RepairCostActivities
    from casework.agents.checks import ProposalChecks
    from casework.agents.region import (
        AgentRegionResult,
        RegionOutcome,
        region_input,
        run_region,
    )
    from casework.amounts import money
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        AmountLimits,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        Ending,
        Saga,
        compensation_summary,
        failure_message,
        wait_within,
    )
    from casework.case.tasks import DecisionAction
    from casework.governance.models import PolicyRef, format_duration
    from policies.insurance_claim import (
        ClaimRoute,
        ClaimRouting,
        InsuranceClaimPolicy,
        decide_claim,
        red_flags,
    )

FRAUD_FINDING = "fraud_finding"
"""Signal: special investigations found a paid claim fraudulent (read back before it counts)."""


class InsuranceClaimInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claim_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    submitted_by: str = Field(
        default="alice", min_length=1, description="Directory user who opened the case."
    )


class FraudFindingNotice(BaseModel):
    """Special investigations' word that a claim was fraudulent: it counts once the claim
    history holds the finding, for this claim."""

    model_config = ConfigDict(extra="forbid")

    claim_id: str
    finding_id: str


class ClaimStatus(StrEnum):
    """Where a claim can stand besides the framework's ``CaseStatus``."""

    PAID = "paid"
    DENIED = "denied"
    RECOVERED = "recovered"


class Outcome(StrEnum):
    FAST_TRACKED = "fast_tracked"
    ADJUSTER_APPROVED = "adjuster_approved"
    CLEARED_BY_INVESTIGATION = "cleared_by_investigation"
    DENIED_NOT_COVERED = "denied_not_covered"
    REJECTED_BY_ADJUSTER = "rejected_by_adjuster"
    DENIED_AFTER_INVESTIGATION = "denied_after_investigation"
    TIMED_OUT = "timed_out"
    PAYOUT_REFUSED = "payout_refused"
    NOTHING_PAYABLE = "nothing_payable"
    """Approved, but the records bear nothing to pay (the estimate has no benchmarked line)."""
    FAILED_COMPENSATED = "failed_compensated"
    RECOVERED_AFTER_FRAUD_FINDING = "recovered_after_fraud_finding"


class InsuranceClaimResult(BaseModel):
    case_id: str
    claim_id: str
    status: str
    outcome: Outcome
    message: str
    route: ClaimRoute
    decided_by: str | None = None
    reasons: list[str] = Field(default_factory=list)
    amount_paid: Decimal | None = None
    payout_id: str | None = None
    agent_outcome: RegionOutcome
    specialists: dict[str, str] = Field(default_factory=dict)
    """How each delegation ended (``answered``, ``budget_exhausted`` ...), by specialist."""
    compensated: list[str] = Field(default_factory=list)
    compensation_failed: list[str] = Field(default_factory=list)
    policy: PolicyRef


class ClaimRecords(BaseModel):
    """What the case reads from the systems of record before the policy decides."""

    claim: Claim
    insurance: InsurancePolicy
    benchmarks: list[Benchmark]
    prior: list[PastClaim]
    """The holder's earlier claims, from the claim history."""


def coordinator_context(claim: Claim) -> dict[str, Any]:
    """What the claims coordinator (and each specialist it delegates to) is shown of the case."""
    return {"claim": claim.model_dump(mode="json")}


def claim_routing(
    policy: InsuranceClaimPolicy,
    ref: PolicyRef,
    records: ClaimRecords,
    proposal: ClaimProposal | None,
    checks: ProposalChecks | None,
    *,
    no_proposal_reason: str,
) -> ClaimRouting:
    """The policy's decision on the coordinator's checked proposal (or on none), with the
    records' own word on coverage, red flags and the payable bound."""
    claim, insurance = records.claim, records.insurance
    benchmarked, _ = benchmarked_estimate(claim.estimate_lines, records.benchmarks)
    return decide_claim(
        policy,
        ref,
        claim,
        proposal=proposal,
        checks=checks,
        no_proposal_reason=no_proposal_reason,
        not_covered=insurance.covers(claim.peril, claim.loss_date),
        record_flags=red_flags(policy, claim, insurance, records.prior),
        payable=payable_bound(benchmarked, insurance),
    )


@workflow.defn(name="InsuranceClaim")
class InsuranceClaimWorkflow(CaseWorkflow):
    case_type = "insurance-claim"
    description = (
        "a coordinator and three specialist agents read a claim; policy decides; pay once, "
        "recover on fraud"
    )
    input_model = InsuranceClaimInput
    business_key = "claim_id"
    statuses = ClaimStatus

    @workflow.init
    def __init__(self, request: InsuranceClaimInput) -> None:
        super().__init__()
        # Known before any message is handled: a fraud finding can arrive in the first moment.
        self._claim_id = request.claim_id
        self._saga = Saga()
        self._findings: list[FraudFindingNotice] = []
        self._watch_until: datetime | None = None
        # What the saga's compensations say they undo for: a recovery names its finding.
        self._undo_reason = "the case could not complete"

    @workflow.run
    async def run(self, request: InsuranceClaimInput) -> InsuranceClaimResult:
        self.begin(
            request,
            request.submitted_by,
            f"Insurance claim {request.claim_id}",
            f"{request.submitted_by} opened insurance claim {request.claim_id}",
        )
        policy, ref = await self.load_governance(InsuranceClaimPolicy)
        claim: Claim = await self.call_tool(
            ClaimsActivities.get_claim, ClaimLookup(claim_id=request.claim_id)
        )
        insurance: InsurancePolicy = await self.call_tool(
            PolicyAdminActivities.get_policy, PolicyLookup(policy_number=claim.policy_number)
        )
        self._facts.update(
            claim_id=claim.claim_id, policy_number=claim.policy_number, peril=claim.peril
        )
        self.set_status(CaseStatus.ANALYSING, amount=claim.estimate_total)

        region = await self._consult(policy, claim)
        proposal = (
            ClaimProposal.model_validate(region.output)
            if region.outcome is RegionOutcome.ANSWERED and region.output is not None
            else None
        )
        if proposal is not None:
            self.record_proposal(
                CLAIMS_COORDINATOR,
                f"{CLAIMS_COORDINATOR} {proposal.headline()}",
                recommended_action=proposal.recommended_action(),
                confidence=proposal.confidence,
                proposal=proposal,
            )
        benchmarks = await self._benchmarks(claim)
        prior: list[PastClaim] = await self.call_tool(
            ClaimHistoryActivities.prior_claims, PriorClaimsLookup(holder_id=insurance.holder_id)
        )
        checks: ProposalChecks | None = (
            self.check_proposal(check_claim_proposal(proposal, claim, insurance, benchmarks))
            if proposal is not None
            else None
        )
        decision = claim_routing(
            policy,
            ref,
            ClaimRecords(claim=claim, insurance=insurance, benchmarks=benchmarks, prior=prior),
            proposal,
            checks,
            no_proposal_reason=f"{region.outcome.value}: {region.reason}",
        )
        self.record_decision(decision)
        context = _Context(policy, ref, claim, insurance, decision, region)
        try:
            if decision.route is ClaimRoute.DENY:
                result = await self._deny(context, Outcome.DENIED_NOT_COVERED, "policy")
            elif decision.route is ClaimRoute.FAST_TRACK:
                result = await self._pay(context, decision.amount, "policy", Outcome.FAST_TRACKED)
            else:
                result = await self._ask(context)
        except asyncio.CancelledError:
            # A cancelled case must not leave money moved: undo what was done, then say so.
            self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))
            raise
        return await self.complete(result)

    # -- the agents ---------------------------------------------------------------------------

    async def _consult(self, policy: InsuranceClaimPolicy, claim: Claim) -> AgentRegionResult:
        directory = self._directory
        assert directory is not None
        region_id = f"{workflow.info().workflow_id}-agent"
        self._facts["agent_region"] = region_id
        result = await run_region(
            self,
            region_input(
                COORDINATOR_AGENT,
                policy.agents,
                context=coordinator_context(claim),
                requested_by=self._requested_by,
                directory=directory,
                agents=SPECIALISTS,
            ),
            region_id=region_id,
            summary=f"{CLAIMS_COORDINATOR} on claim {claim.claim_id}",
        )
        self._facts.update(agent=result.outcome.value, agent_models=", ".join(result.models))
        return result

    async def _benchmarks(self, claim: Claim) -> list[Benchmark]:
        codes = sorted({line.item_code for line in claim.estimate_lines})
        if not codes:
            return []
        benchmarks: list[Benchmark] = await self.call_tool(
            RepairCostActivities.get_benchmarks,
            BenchmarkLookup(vehicle_class=claim.vehicle_class, item_codes=codes),
        )
        return benchmarks

    # -- people -------------------------------------------------------------------------------

    async def _ask(self, context: _Context) -> InsuranceClaimResult:
        policy, claim, decision = context.policy, context.claim, context.decision
        assert decision.tier is not None
        investigating = decision.route is ClaimRoute.INVESTIGATE
        tiers = policy.special_investigations.tiers if investigating else policy.approval_tiers
        what = "Special investigation" if investigating else "Claim payout"
        outcome = await self.request_approval(
            ApprovalRequest(
                title=f"{what} {claim.claim_id}: {money(decision.amount)} {claim.currency}",
                summary=f"{claim.peril} on {claim.loss_date}: {claim.description}. Needs a "
                "person because: " + "; ".join(decision.reasons),
                evidence={
                    "estimate_total": str(claim.estimate_total),
                    "payable_at_most": str(decision.payable),
                    "policy_number": claim.policy_number,
                },
                amount=decision.amount,
                currency=claim.currency,
                tiers=tiers,
                start_tier=decision.tier,
                escalate=policy.escalation.to_next_tier_on_sla,
                limits=AmountLimits(currency=policy.currency, maximum=decision.payable),
            )
        )
        human = outcome.decision
        if human is None:
            ending = await self.put_on_hold(
                "no decision in time at any tier",
                notify_roles=policy.final_timeout.notify_roles,
                subject=f"Insurance claim {claim.claim_id} timed out",
                tell_submitter=f"Insurance claim {claim.claim_id} on hold",
            )
            return self._result(context, Outcome.TIMED_OUT, ending)
        if human.action == DecisionAction.REJECT:
            why = f"{human.approver} decided against paying: {human.comment or 'no comment'}"
            return await self._deny(
                context,
                Outcome.DENIED_AFTER_INVESTIGATION
                if investigating
                else Outcome.REJECTED_BY_ADJUSTER,
                human.approver,
                [why],
            )
        amount = decision.amount if human.amount is None else human.amount
        return await self._pay(
            context,
            amount,
            human.approver,
            Outcome.CLEARED_BY_INVESTIGATION if investigating else Outcome.ADJUSTER_APPROVED,
        )

    # -- writes -------------------------------------------------------------------------------

    async def _deny(
        self,
        context: _Context,
        outcome: Outcome,
        decided_by: str,
        reasons: list[str] | None = None,
    ) -> InsuranceClaimResult:
        claim = context.claim
        why = reasons if reasons is not None else context.decision.reasons
        self.set_status(ClaimStatus.DENIED)
        await self._register(claim, "denied", None, f"denied by {decided_by}: " + "; ".join(why))
        await self._write(
            claim,
            f"Your claim {claim.claim_id} is not paid",
            "We have looked at your claim and cannot pay it, because:\n"
            + "\n".join(f"- {reason}" for reason in why),
            "denial",
        )
        ending = Ending(
            status=ClaimStatus.DENIED,
            message=f"denied by {decided_by}: " + "; ".join(why),
        )
        return self._result(context, outcome, ending, decided_by, reasons=why)

    async def _pay(
        self, context: _Context, amount: Decimal, decided_by: str, outcome: Outcome
    ) -> InsuranceClaimResult:
        claim = context.claim
        if amount <= 0:
            return await self._deny(
                context, Outcome.NOTHING_PAYABLE, decided_by, ["the records bear no amount to pay"]
            )
        self.set_status(CaseStatus.EXECUTING, amount=amount)
        try:
            # The key is the case's: a retried or replayed payout pays once.
            payout: Payout = await self.call_tool(
                ClaimsActivities.pay,
                PayoutRequest(
                    claim_id=claim.claim_id,
                    payee_id=claim.claimant_id,
                    amount=amount,
                    currency=claim.currency,
                    reference=f"claim {claim.claim_id}",
                    idempotency_key=self.idempotency_key("payout"),
                ),
            )
        except ActivityError as error:
            # Every answer may have been lost while the payout went through: the ledger says.
            made, readable = await self._payout_made(claim)
            if made is None:
                unknown = "" if readable else "; the payouts could not be read: check the ledger"
                ending = await self.put_on_hold(
                    f"the payout of {money(amount)} {claim.currency} was refused: "
                    f"{failure_message(error)}{unknown}",
                    notify_roles=context.policy.final_timeout.notify_roles,
                    subject=f"Insurance claim {claim.claim_id}: payout refused",
                    step="payout-refused",
                )
                return self._result(context, Outcome.PAYOUT_REFUSED, ending, decided_by)
            payout = made
        self._saga.add(
            f"payout {payout.payout_id} reversed",
            lambda: self.call_tool(
                ClaimsActivities.reverse_payout,
                PayoutReversal(
                    payout_id=payout.payout_id,
                    reason=f"case {workflow.info().workflow_id}: {self._undo_reason}",
                    idempotency_key=self.idempotency_key("payout-reversal"),
                ),
                retry_policy=COMPENSATION_RETRY,
            ),
        )
        try:
            await self._register(
                claim, "paid", amount, f"payout {payout.payout_id}, decided by {decided_by}"
            )
        except ActivityError as error:
            ending = await self.fail_compensated(
                self._saga,
                error,
                failed=f"closing claim {claim.claim_id} on policy {claim.policy_number}",
                reason="closing the claim failed",
            )
            return self._result(context, Outcome.FAILED_COMPENSATED, ending, decided_by)
        self._saga.add(
            f"claim {claim.claim_id} reopened on policy {claim.policy_number}",
            lambda: self._register(
                claim, "reopened", None, f"recovery: {self._undo_reason}", "reopen-claim"
            ),
        )
        self.set_status(ClaimStatus.PAID, amount=amount)
        await self._write(
            claim,
            f"Your claim {claim.claim_id} is paid",
            f"We are paying you {money(amount)} {claim.currency} (payout {payout.payout_id}).",
            "paid",
        )
        return await self._watch(context, payout, decided_by, outcome)

    async def _payout_made(self, claim: Claim) -> tuple[Payout | None, bool]:
        """The payout made under this case's own key, if the claims system holds one; and
        whether its payouts could be read at all."""
        try:
            payouts: list[Payout] = await self.call_tool(
                ClaimsActivities.list_payouts,
                PayoutsLookup(claim_id=claim.claim_id),
                retry_policy=COMPENSATION_RETRY,
                summary=f"looked up the payouts of {claim.claim_id} after the payout failed",
            )
        except ActivityError:
            return None, False
        key = self.idempotency_key("payout")
        return next(
            (p for p in payouts if p.idempotency_key == key and p.status == "paid"), None
        ), True

    async def _watch(
        self, context: _Context, payout: Payout, decided_by: str, outcome: Outcome
    ) -> InsuranceClaimResult:
        """Keep the case open for the recovery window; a confirmed fraud finding in it recovers
        the payout."""
        window = context.policy.recovery.watch
        self._watch_until = workflow.now() + window
        self._facts["recovery_watch_until"] = self._watch_until
        self.record(
            AuditKind.POLICY_DECISION,
            f"policy {context.ref}: watching for a fraud finding until "
            f"{self._watch_until.isoformat()} ({format_duration(window)})",
            recovery_watch_until=self._watch_until,
        )
        finding: FraudFinding | None = None
        ended_early = False
        try:
            finding = await self._confirmed_finding()
        except asyncio.CancelledError:
            # The money went out on a sound decision: cancelling the case ends the watch; only a
            # fraud finding claws the payout back.
            ended_early = True
        self._watch_until = None
        self._facts.pop("recovery_watch_until", None)
        paid = f"paid {money(payout.amount)} {payout.currency} ({payout.payout_id})"
        if finding is not None:
            return await self._recover(context, payout, decided_by, finding)
        ending = Ending(
            status=ClaimStatus.PAID,
            message=f"{paid}, decided by {decided_by}; "
            + (
                "recovery watch ended early: the case was cancelled"
                if ended_early
                else f"no fraud finding within {format_duration(window)}"
            ),
        )
        return self._result(
            context, outcome, ending, decided_by, amount_paid=payout.amount, payout=payout
        )

    async def _confirmed_finding(self) -> FraudFinding | None:
        """Each finding received, read back from the claim history until one holds; None when
        the watch ends first."""
        assert self._watch_until is not None
        while True:
            remaining = self._watch_until - workflow.now()
            if remaining.total_seconds() <= 0 or not await wait_within(
                lambda: bool(self._findings), remaining
            ):
                return None
            notice = self._findings.pop(0)
            try:
                finding: FraudFinding = await self.call_tool(
                    ClaimHistoryActivities.get_fraud_finding,
                    FraudFindingLookup(finding_id=notice.finding_id),
                )
            except ActivityError as error:
                self.ignore_signal(
                    "a fraud finding",
                    "special investigations",
                    [
                        f"the claim history does not confirm {notice.finding_id}: "
                        + failure_message(error)
                    ],
                    notice=notice,
                )
                continue
            if finding.claim_id != self._claim_id:
                self.ignore_signal(
                    "a fraud finding",
                    finding.source,
                    [f"{finding.finding_id} is about claim {finding.claim_id}"],
                    notice=notice,
                )
                continue
            return finding

    async def _recover(
        self, context: _Context, payout: Payout, decided_by: str, finding: FraudFinding
    ) -> InsuranceClaimResult:
        claim = context.claim
        why = f"fraud finding {finding.finding_id} from {finding.source}: {finding.reason}"
        self._undo_reason = why
        report = await self.compensate(self._saga, why)
        ending = Ending.after_compensation(
            report,
            f"paid {money(payout.amount)} {payout.currency} ({payout.payout_id}), decided by "
            f"{decided_by}; recovered after {why}; {compensation_summary(report)}",
        )
        if report.complete:
            ending.status = ClaimStatus.RECOVERED
        self.set_status(ending.status)
        await self._write(
            claim,
            f"Your claim {claim.claim_id}: we are recovering the payout",
            f"Special investigations found the claim fraudulent ({finding.reason}). The payout "
            f"{payout.payout_id} of {money(payout.amount)} {payout.currency} is reversed.",
            "recovery",
        )
        for role in context.policy.recovery.notify_roles:
            await self.notify_role(
                role,
                f"Claim {claim.claim_id} recovered after a fraud finding",
                ending.message,
                "recovery",
            )
        return self._result(
            context,
            Outcome.RECOVERED_AFTER_FRAUD_FINDING,
            ending,
            decided_by,
            reasons=[why],
            payout=payout,
        )

    async def _register(
        self,
        claim: Claim,
        status: str,
        amount: Decimal | None,
        note: str,
        step: str = "close-claim",
    ) -> None:
        await self.call_tool(
            PolicyAdminActivities.set_claim_status,
            ClaimStatusChange(
                policy_number=claim.policy_number,
                claim_id=claim.claim_id,
                status=status,
                amount_paid=amount,
                note=note,
                idempotency_key=self.idempotency_key(step),
            ),
            summary=f"claim {claim.claim_id} {status} on policy {claim.policy_number}",
        )

    async def _write(self, claim: Claim, subject: str, body: str, step: str) -> None:
        await self.call_tool(
            ClaimsActivities.write_to_claimant,
            LetterRequest(
                claim_id=claim.claim_id,
                subject=subject,
                body=body,
                idempotency_key=self.idempotency_key(f"letter:{step}"),
            ),
            summary=f"wrote to the claimant: {subject}",
        )

    def _result(
        self,
        context: _Context,
        outcome: Outcome,
        ending: Ending,
        decided_by: str | None = None,
        *,
        reasons: list[str] | None = None,
        amount_paid: Decimal | None = None,
        payout: Payout | None = None,
    ) -> InsuranceClaimResult:
        return InsuranceClaimResult(
            case_id=workflow.info().workflow_id,
            claim_id=context.claim.claim_id,
            outcome=outcome,
            route=context.decision.route,
            decided_by=decided_by,
            reasons=reasons if reasons is not None else context.decision.reasons,
            amount_paid=amount_paid,
            payout_id=payout.payout_id if payout is not None else None,
            agent_outcome=context.region.outcome,
            specialists={r.name: r.result.outcome.value for r in context.region.specialists},
            policy=context.ref,
            **ending.result_fields(),
        )

    # -- messages from outside ----------------------------------------------------------------

    @workflow.signal(name=FRAUD_FINDING)
    def fraud_finding(self, *payloads: Any) -> None:
        notice = self.signal_input("fraud finding", FraudFindingNotice, payloads)
        if notice is None:
            return
        if self.ignore_signal(
            "a fraud finding",
            "special investigations",
            [f"it is for claim {notice.claim_id}, this case is for {self._claim_id}"]
            if notice.claim_id != self._claim_id
            else [],
            notice=notice,
        ):
            return
        self.record(
            AuditKind.MESSAGE_RECEIVED,
            f"received fraud finding {notice.finding_id}; it counts once the claim history "
            "confirms it",
            confirming=True,
            message=notice,
        )
        self._findings.append(notice)

    def waiting_on(self) -> str | None:
        people = super().waiting_on()
        if people or self._watch_until is None:
            return people
        return (
            f"a fraud finding until {self._watch_until:%Y-%m-%d %H:%M} UTC (recovers the payout):"
            f" temporal workflow signal --workflow-id {workflow.info().workflow_id} "
            f"--name {FRAUD_FINDING} --input "
            f'\'{{"claim_id": "{self._claim_id}", "finding_id": "FF-..."}}\''
        )


@dataclass(frozen=True)
class _Context:
    """What every step after the decision works from."""

    policy: InsuranceClaimPolicy
    ref: PolicyRef
    claim: Claim
    insurance: InsurancePolicy
    decision: ClaimRouting
    region: AgentRegionResult
