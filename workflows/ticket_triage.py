"""IT ticket triage: an agent looks around and proposes; the policy decides; the workflow writes.

Flow: load policy -> read the ticket -> the triage agent runs in an agent region (child
workflow) with read-only tools -> the policy decides: auto-resolve (low-risk category, cited
article, confident agent), assign, escalate, or a person reviews first -> the workflow classifies
and resolves/assigns the ticket. Severity-1 incidents page the affected item's on-call owner at
once, escalating level by level until someone acknowledges. Only this ticket is ever written,
and only as the policy decided, whatever the ticket's text asks for.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from activities.agents.ticket_triage import (
        SYSTEM_PROMPT,
        TASK,
        TRIAGE_AGENT,
        TRIAGE_PROPOSAL,
        TriageProposal,
        check_proposal,
    )
    from activities.itsm import (
        ConfigurationItem,
        ConfigurationItemLookup,
        ItsmActivities,
        KbArticle,
        KbArticleLookup,
        Ticket,
        TicketAssignment,
        TicketClassification,
        TicketCommentRequest,
        TicketLookup,
        TicketResolution,
    )
    from casework.agents.checks import ProposalChecks
    from casework.agents.region import (
        AgentRegionInput,
        AgentRegionResult,
        AgentRegionWorkflow,
        RegionOutcome,
    )
    from casework.audit import AuditKind
    from casework.case import (
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        refuse_update,
        wait_within,
    )
    from casework.case.tasks import DecisionAction, OpenPage, PageAcknowledgement
    from casework.governance.models import Directory, PolicyRef
    from policies.ticket_triage import (
        TicketTriagePolicy,
        TriageDecision,
        TriageRoute,
        decide_triage,
    )

from workflows.incident_review import IncidentReviewInput, IncidentReviewWorkflow

AUTHOR = "casework"
REREAD_BEFORE_WRITING = "ticket-reread-before-writing"
"""Patch ID: before its first write the case reads the ticket again, and writes nothing over a
ticket someone changed meanwhile. Cases started before wrote over it."""
STARTS_INCIDENT_REVIEW = "triage-starts-incident-review"
"""Patch ID: a case that concludes on a severity-1 incident starts its post-incident review (a
child it does not wait for). Cases started before started none."""
SIGNED_ACKNOWLEDGEMENTS = "signed-acknowledgements"
"""Patch ID: pages sent since then take signed acknowledgements only."""
# What a triage writes, and so what it must not write over.
TRIAGED_FIELDS = (
    "status",
    "category",
    "severity",
    "team",
    "assignee",
    "resolution",
    "kb_article_id",
)


class TicketTriageInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    submitted_by: str = Field(
        default="erin", min_length=1, description="Directory user who opened the case."
    )


class Acknowledgement(PageAcknowledgement):
    """Signed by the person paged, like a decision (since ``signed-acknowledgements``)."""


class PageOutcome(BaseModel):
    acknowledged_by: str | None
    paged: list[str]
    """Everyone paged, in order."""


class TriageStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    RESOLVED = "resolved"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"


class TicketTriageResult(BaseModel):
    case_id: str
    ticket_id: str
    status: CaseStatus | TriageStatus
    route: TriageRoute
    message: str
    decided_by: str
    category: str | None = None
    severity: int | None = None
    team: str | None = None
    kb_article_id: str | None = None
    agent_outcome: RegionOutcome
    page: PageOutcome | None = None
    incident_review: str | None = None
    """The post-incident review case a severity-1 incident's triage started."""
    policy: PolicyRef


class _Page(BaseModel):
    level: str
    paged: list[str]
    acknowledged_by: str | None = None


def agent_context(ticket: Ticket) -> dict[str, Any]:
    """What the triage agent is shown before it looks around with its tools. Also what its
    evaluation on labelled tickets shows it (``evals/ticket_triage.py``)."""
    return {"ticket": ticket.model_dump(mode="json")}


@workflow.defn(name="TicketTriage")
class TicketTriageWorkflow(CaseWorkflow):
    case_type = "ticket-triage"
    description = "an agent triages an IT ticket; policy decides; severity 1 pages on-call"
    input_model = TicketTriageInput
    business_key = "ticket_id"
    statuses = TriageStatus

    def __init__(self) -> None:
        super().__init__()
        self._page: _Page | None = None
        self._paged: list[str] = []
        self._acks_signed = False

    @workflow.run
    async def run(self, request: TicketTriageInput) -> TicketTriageResult:
        self.begin(
            request,
            request.submitted_by,
            f"Ticket triage {request.ticket_id}",
            f"{request.submitted_by} opened triage for {request.ticket_id}",
        )
        policy, policy_ref = await self.load_governance(TicketTriagePolicy)
        directory = self._directory
        assert directory is not None
        ticket: Ticket = await self.call_tool(
            ItsmActivities.get_ticket, TicketLookup(ticket_id=request.ticket_id)
        )
        if ticket.status == "resolved":
            raise ApplicationError(
                f"ticket {ticket.ticket_id} is already resolved; nothing to triage",
                type="TicketAlreadyResolved",
                non_retryable=True,
            )
        self._facts.update(ticket_id=ticket.ticket_id, title=ticket.title)

        region = await self._run_agent(policy, directory, ticket)
        proposal = (
            TriageProposal.model_validate(region.output)
            if region.outcome is RegionOutcome.ANSWERED and region.output is not None
            else None
        )
        if proposal is not None:
            self.record_proposal(
                TRIAGE_AGENT,
                f"{TRIAGE_AGENT} proposes {proposal.action.value} ({proposal.category}, severity "
                f"{proposal.severity}) with confidence {proposal.confidence:.2f}",
                # A review approves the proposal as it stands: approving follows the agent.
                recommended_action="approve",
                confidence=proposal.confidence,
                proposal=proposal,
            )
        item = await self._affected_item(ticket)
        article = (
            await self._article(proposal.kb_article_id)
            if proposal is not None and proposal.kb_article_id
            else None
        )
        checks = (
            self.check_proposal(
                check_proposal(proposal, ticket, item, article, list(policy.categories))
            )
            if proposal is not None
            else None
        )
        decision = decide_triage(
            policy,
            policy_ref,
            proposal,
            no_proposal_reason=f"{region.outcome.value}: {region.reason}",
            ticket_severity=ticket.severity,
            article_exists=article is not None,
            checks=checks,
        )
        self.record_decision(decision)
        if proposal is not None:
            self._facts["proposed"] = (
                f"{proposal.action.value} ({proposal.category}, severity {proposal.severity}, "
                f"confidence {proposal.confidence:.2f})"
            )

        paging = (
            asyncio.create_task(self._page_until_acknowledged(policy, ticket, item))
            if decision.page
            else None
        )
        decided_by = "policy"
        if decision.route is TriageRoute.HUMAN_REVIEW:
            decision, decided_by = await self._review(
                policy, policy_ref, ticket, proposal, decision, article is not None, checks
            )
        # The ticket's resolution is the article's, not text the agent wrote (that is kept in
        # the comment, as its suggestion).
        resolution = (
            f"Resolved following {article.article_id}: {article.title}"
            if checks is not None and article is not None
            else None
        )
        result = await self._execute(
            ticket, proposal, decision, decided_by, region, policy_ref, resolution
        )
        if paging is not None:
            result.page = await paging
        if (
            result.severity == 1
            and result.status is not CaseStatus.SUPERSEDED
            and workflow.patched(STARTS_INCIDENT_REVIEW)
        ):
            result.incident_review = await self._start_incident_review(ticket)
        self._facts.update(message=result.message)
        self.record(AuditKind.CASE_COMPLETED, result.message, result=result)
        await self.finish_handlers()
        return result

    # -- steps ------------------------------------------------------------------------------

    async def _run_agent(
        self, policy: TicketTriagePolicy, directory: Directory, ticket: Ticket
    ) -> AgentRegionResult:
        agent = policy.agents[TRIAGE_AGENT]
        region_id = f"{workflow.info().workflow_id}-agent"
        # Lets people (and the CLI) find a question the agent asks while it works.
        self._facts["agent_region"] = region_id
        result = await workflow.execute_child_workflow(
            AgentRegionWorkflow.run,
            AgentRegionInput(
                agent=TRIAGE_AGENT,
                output=TRIAGE_PROPOSAL,
                system_prompt=SYSTEM_PROMPT,
                task=TASK,
                context=agent_context(ticket),
                allowed_tools=agent.allowed_tools,
                budget=agent.budget,
                model=agent.model,
                fallback_models=agent.fallback_models,
                max_tokens_per_call=agent.max_tokens_per_call,
                requested_by=self._requested_by,
                directory=directory,
                human_roles=agent.human_roles,
                human_sla=agent.human_sla,
            ),
            id=region_id,
            static_summary=f"{TRIAGE_AGENT} triaging {ticket.ticket_id}",
        )
        self.record_agent_region(
            f"{TRIAGE_AGENT} {result.outcome.value}: {result.reason} ({result.model_calls} model "
            f"calls, {result.tool_calls} tool calls, {result.refused_tool_calls} refused, "
            f"{result.prompt_tokens + result.completion_tokens} tokens, "
            f"${result.cost_usd:.4f}, on {', '.join(result.models) or 'no model'})",
            outcome=result.outcome.value,
            model_usage=result.model_usage(TRIAGE_AGENT),
            region=result,
        )
        self._facts.update(agent=result.outcome.value, agent_models=", ".join(result.models))
        return result

    async def _affected_item(self, ticket: Ticket) -> ConfigurationItem | None:
        # Only the CI the ticket itself records decides whom to page: the agent's view of the
        # affected item comes from text anyone can write, and must not pick who is woken up.
        ci_id = ticket.ci_id
        if not ci_id:
            return None
        try:
            return await self.call_tool(
                ItsmActivities.get_configuration_item, ConfigurationItemLookup(ci_id=ci_id)
            )
        except ActivityError:
            return None

    async def _article(self, article_id: str) -> KbArticle | None:
        """The cited article as the knowledge base holds it; None when it has none by that ID."""
        try:
            article: KbArticle = await self.call_tool(
                ItsmActivities.get_kb_article, KbArticleLookup(article_id=article_id)
            )
        except ActivityError:
            return None
        return article

    async def _review(
        self,
        policy: TicketTriagePolicy,
        policy_ref: PolicyRef,
        ticket: Ticket,
        proposal: TriageProposal | None,
        decision: TriageDecision,
        article_exists: bool,
        checks: ProposalChecks | None,
    ) -> tuple[TriageDecision, str]:
        """A person approves the proposal as it stands, or rejects it to the fallback team."""
        proposed = (
            f"{proposal.action.value} ({proposal.category}, severity {proposal.severity}, "
            f"confidence {proposal.confidence:.2f})"
            if proposal
            else "no proposal"
        )
        outcome = await self.request_approval(
            ApprovalRequest(
                title=f"Review triage of {ticket.ticket_id}: {ticket.title}",
                summary=(
                    f"Ticket {ticket.ticket_id}: {ticket.title}\nAgent proposes: {proposed}\n"
                    + ("\n".join(f"- {reason}" for reason in proposal.reasons) if proposal else "")
                    + "\nNeeds a person because: "
                    + "; ".join(decision.reasons)
                    + f".\nApprove to apply the proposal; reject to send it to "
                    f"{policy.review.fallback_team}."
                ),
                evidence={"proposal": proposal.model_dump(mode="json") if proposal else None},
                amount=0,
                currency="",
                tiers=policy.review.tiers,
                start_tier=0,
            )
        )
        human = outcome.decision
        fallback = TriageDecision(
            route=TriageRoute.ASSIGN,
            reasons=[],
            policy=policy_ref,
            team=policy.review.fallback_team,
            page=decision.page,
        )
        if human is None:
            fallback.reasons = ["nobody reviewed in time"]
            return fallback, "policy (review timed out)"
        if human.action == DecisionAction.REJECT or proposal is None:
            fallback.reasons = [f"{human.approver} chose {human.action}: {human.comment or ''}"]
            return fallback, human.approver
        approved = decide_triage(
            policy.model_copy(update={"min_confidence": 0.0}),
            policy_ref,
            proposal,
            ticket_severity=ticket.severity,
            article_exists=article_exists,
            checks=checks,
        )
        if approved.route is TriageRoute.HUMAN_REVIEW:
            # The reviewer vouched for the confidence, not for breaking the policy's other rules
            # (an unknown team, a high-risk auto-resolve) or for values the ticket and the
            # service desk's records contradict: those still go to the fallback team.
            fallback.reasons = [f"approved by {human.approver}, but " + "; ".join(approved.reasons)]
            return fallback, human.approver
        return approved, human.approver

    async def _execute(
        self,
        ticket: Ticket,
        proposal: TriageProposal | None,
        decision: TriageDecision,
        decided_by: str,
        region: AgentRegionResult,
        policy_ref: PolicyRef,
        resolution: str | None,
    ) -> TicketTriageResult:
        self.set_status(CaseStatus.EXECUTING)
        if workflow.patched(REREAD_BEFORE_WRITING):
            changed = await self._changed_since_read(ticket)
            if changed:
                return self._left_as_changed(
                    ticket, decision, decided_by, region, policy_ref, changed
                )
        accepted = proposal if decision.follows_proposal else None
        severity = _severity(ticket, accepted)
        if accepted is not None and severity is not None:
            await self.call_tool(
                ItsmActivities.classify_ticket,
                TicketClassification(
                    ticket_id=ticket.ticket_id,
                    category=accepted.category,
                    severity=severity,
                    idempotency_key=self.idempotency_key("classify"),
                ),
            )
        rationale = "; ".join(decision.reasons)
        if decision.route is TriageRoute.AUTO_RESOLVE:
            assert proposal is not None and decision.kb_article_id is not None
            await self.call_tool(
                ItsmActivities.resolve_ticket,
                TicketResolution(
                    ticket_id=ticket.ticket_id,
                    resolution=resolution
                    or proposal.suggested_resolution
                    or f"Resolved following {decision.kb_article_id}",
                    kb_article_id=decision.kb_article_id,
                    idempotency_key=self.idempotency_key("resolve"),
                ),
            )
            status, message = TriageStatus.RESOLVED, f"resolved with {decision.kb_article_id}"
        else:
            assert decision.team is not None
            await self.call_tool(
                ItsmActivities.assign_ticket,
                TicketAssignment(
                    ticket_id=ticket.ticket_id,
                    team=decision.team,
                    note=rationale,
                    idempotency_key=self.idempotency_key("assign"),
                ),
            )
            status = (
                TriageStatus.ESCALATED
                if decision.route is TriageRoute.ESCALATE
                else TriageStatus.ASSIGNED
            )
            message = f"{status.value} to {decision.team}"
        message += f" (decided by {decided_by})"
        await self.call_tool(
            ItsmActivities.comment_on_ticket,
            TicketCommentRequest(
                ticket_id=ticket.ticket_id,
                author=AUTHOR,
                body=_comment(proposal, decision, decided_by),
                idempotency_key=self.idempotency_key("comment"),
            ),
        )
        self.set_status(status)
        return TicketTriageResult(
            case_id=workflow.info().workflow_id,
            ticket_id=ticket.ticket_id,
            status=status,
            route=decision.route,
            message=message,
            decided_by=decided_by,
            category=accepted.category if accepted else ticket.category,
            severity=severity,
            team=decision.team,
            kb_article_id=decision.kb_article_id,
            agent_outcome=region.outcome,
            policy=policy_ref,
        )

    async def _changed_since_read(self, ticket: Ticket) -> list[str]:
        """What someone else changed on the ticket since the case read it, field by field."""
        now: Ticket = await self.call_tool(
            ItsmActivities.get_ticket,
            TicketLookup(ticket_id=ticket.ticket_id),
            summary=f"re-read {ticket.ticket_id} before writing to it",
        )
        return [
            f"{name} {getattr(ticket, name)!r} -> {getattr(now, name)!r}"
            for name in TRIAGED_FIELDS
            if getattr(ticket, name) != getattr(now, name)
        ]

    def _left_as_changed(
        self,
        ticket: Ticket,
        decision: TriageDecision,
        decided_by: str,
        region: AgentRegionResult,
        policy_ref: PolicyRef,
        changed: list[str],
    ) -> TicketTriageResult:
        """Someone (a person, another case) changed the ticket while the case worked or waited:
        their change stands, and the case writes nothing over it."""
        message = (
            f"not written: {ticket.ticket_id} was changed while the case waited ("
            + "; ".join(changed)
            + f"); the {decision.route.value} decided by {decided_by} was not applied"
        )
        self.record(AuditKind.POLICY_DECISION, message, changed=changed)
        self.set_status(CaseStatus.SUPERSEDED)
        return TicketTriageResult(
            case_id=workflow.info().workflow_id,
            ticket_id=ticket.ticket_id,
            status=CaseStatus.SUPERSEDED,
            route=decision.route,
            message=message,
            decided_by=decided_by,
            agent_outcome=region.outcome,
            policy=policy_ref,
        )

    async def _start_incident_review(self, ticket: Ticket) -> str:
        """Start the incident's post-incident review and go on without waiting for it: the
        review outlives this case (``ABANDON``), and takes days where triage takes minutes."""
        review_id = IncidentReviewWorkflow.case_id(ticket.ticket_id)
        try:
            await workflow.start_child_workflow(
                IncidentReviewWorkflow.run,
                IncidentReviewInput(
                    incident_id=ticket.ticket_id,
                    submitted_by=self._requested_by,
                    triage_case=workflow.info().workflow_id,
                ),
                id=review_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"post-incident review of severity-1 {ticket.ticket_id}",
            )
        except WorkflowAlreadyStartedError:
            self.record(
                AuditKind.TOOL_CALL,
                f"the post-incident review {review_id} was already started; not started again",
                case=review_id,
            )
            return review_id
        self.record(
            AuditKind.TOOL_CALL,
            f"started the post-incident review {review_id} (not waited for)",
            case=review_id,
        )
        return review_id

    # -- severity-1 paging ------------------------------------------------------------------

    async def _page_until_acknowledged(
        self, policy: TicketTriagePolicy, ticket: Ticket, item: ConfigurationItem | None
    ) -> PageOutcome:
        directory = self._directory
        assert directory is not None
        self._acks_signed = workflow.patched(SIGNED_ACKNOWLEDGEMENTS)
        sla = policy.severity_1.ack_sla
        for level in policy.severity_1.levels:
            if level == "ci_oncall":
                people = [item.oncall] if item is not None and item.oncall else []
            else:
                people = sorted(u for u, user in directory.users.items() if user.role == level)
            if not people:
                continue
            self._page = _Page(level=level, paged=people)
            self._paged += people
            self.record(
                AuditKind.PAGE_SENT,
                f"paged {', '.join(people)} ({level}) for severity-1 {ticket.ticket_id}; "
                f"acknowledge within {sla}",
                level=level,
                paged=people,
            )
            for person in people:
                await self.notify(
                    person,
                    f"PAGE severity 1: {ticket.ticket_id} {ticket.title}",
                    f"Acknowledge with: casework acknowledge {workflow.info().workflow_id} "
                    f"--as {person}",
                    step=f"page-{level}",
                )
            page = self._page
            if not await wait_within(lambda page=page: page.acknowledged_by is not None, sla):
                self.record(
                    AuditKind.TASK_ESCALATED,
                    f"no acknowledgement from {', '.join(people)} within {sla}; paging next level",
                    level=level,
                )
                continue
            return PageOutcome(acknowledged_by=page.acknowledged_by, paged=list(self._paged))
        self._page = None
        self.record(AuditKind.TASK_TIMED_OUT, "nobody acknowledged the severity-1 page")
        return PageOutcome(acknowledged_by=None, paged=list(self._paged))

    def waiting_on(self) -> str | None:
        if self._page is not None and self._page.acknowledged_by is None:
            return (
                f"acknowledgement of the severity-1 page from {', '.join(self._page.paged)}: "
                f"casework acknowledge {workflow.info().workflow_id} --as USER"
            )
        return super().waiting_on()

    def _ack_refusals(self, ack: Acknowledgement) -> list[str]:
        if self._page is None or self._page.acknowledged_by is not None:
            return ["there is no open page to acknowledge in this case"]
        if self._acks_signed and (
            unproven := self.act_signature_refusals("acknowledge", ack, ack.responder)
        ):
            return unproven
        if ack.responder not in self._paged:
            return [f"{ack.responder} was not paged; paged so far: {', '.join(self._paged)}"]
        return []

    def open_pages(self) -> list[OpenPage]:
        if self._page is None or self._page.acknowledged_by is not None:
            return []
        return [OpenPage(level=self._page.level, paged=list(self._page.paged))]

    def _accept_ack(self, ack: Acknowledgement) -> None:
        assert self._page is not None
        self._page.acknowledged_by = ack.responder
        if ack.nonce:
            self._used_nonces.add(ack.nonce)
        self.record(
            AuditKind.PAGE_ACKNOWLEDGED,
            f"{ack.responder} acknowledged the page",
            responder=ack.responder,
            signed=bool(ack.signature),
        )

    @workflow.update(name="acknowledge")
    async def acknowledge(self, ack: Acknowledgement) -> str:
        self._accept_ack(ack)
        return f"{ack.responder} acknowledged the page for {workflow.info().workflow_id}"

    @acknowledge.validator
    def validate_acknowledge(self, ack: Acknowledgement) -> None:
        refuse_update("acknowledgement", self._ack_refusals(ack))

    @workflow.signal(name="acknowledge")
    def acknowledge_by_signal(self, *payloads: Any) -> None:
        ack = self.signal_input("acknowledgement", Acknowledgement, payloads)
        if ack is None:
            return
        if not self.ignore_signal("acknowledgement", ack.responder, self._ack_refusals(ack)):
            self._accept_ack(ack)


def _severity(ticket: Ticket, accepted: TriageProposal | None) -> int | None:
    """The agent may raise a ticket's severity, never lower what the ticket itself says."""
    candidates = [s for s in (ticket.severity, accepted.severity if accepted else None) if s]
    return min(candidates, default=None)


def _comment(proposal: TriageProposal | None, decision: TriageDecision, decided_by: str) -> str:
    lines = [f"Triage: {decision.route.value}, decided by {decided_by}."]
    lines += [f"- {reason}" for reason in decision.reasons]
    if proposal is not None:
        lines.append(
            f"Agent proposal ({proposal.confidence:.2f}): {proposal.action.value}, "
            f"{proposal.category}, severity {proposal.severity}"
        )
        if proposal.suggested_resolution:
            lines.append(f"Suggested resolution: {proposal.suggested_resolution}")
    return "\n".join(lines)
