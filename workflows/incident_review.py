"""Incident review: after a severity-1 incident, an investigator drafts the post-incident review,
the incident manager approves, edits or rejects it, and the approved follow-ups are created.

Flow: load the policy -> read the incident -> the investigator runs in an agent region (child
workflow) with read-only tools: the incident, the affected service's logs, similar incidents,
the configuration item -> the case looks up every piece of evidence the draft cites, and checks
every owner, itself -> the policy says what the manager must know and which follow-ups may be
created -> the incident manager approves, edits (in the signed decision's comment) or rejects,
escalating when the SLA passes, on hold at the final timeout -> each follow-up is created once in
the ITSM and linked to the incident by a comment; if linking fails for good, the follow-ups are
cancelled and the case says so.

Started by ticket triage when it concludes on a severity-1 incident (it does not wait), or by
hand: ``casework start incident-review --input '{"incident_id": "INC-1"}'``.
"""

from __future__ import annotations

import asyncio
import re
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from activities.agents.incident_review import (
        INVESTIGATOR,
        INVESTIGATOR_AGENT,
        SHA,
        CitedLog,
        Evidence,
        FollowUpAction,
        IncidentReviewDraft,
        check_draft,
        shown_commit,
    )
    from activities.deployments import (
        DeploymentActivities,
        DeploymentsLookup,
        DeploymentsRepository,
    )
    from activities.itsm import ItsmActivities, Ticket, TicketCommentRequest, TicketLookup
    from activities.itsm_followups import (
        FollowUpActivities,
        FollowUpCancellation,
        FollowUpRequest,
        FollowUpTask,
    )
    from activities.logs import LogActivities, LogEntry, LogEntryLookup
    from casework.agents.checks import ProposalChecks
    from casework.agents.messages import McpCallRequest, McpCallResult
    from casework.agents.region import (
        AgentRegionInput,
        AgentRegionResult,
        AgentRegionWorkflow,
        RegionOutcome,
    )
    from casework.audit import AuditKind
    from casework.case import (
        COMPENSATION_RETRY,
        TOOL_RETRY,
        TOOL_TIMEOUT,
        ApprovalRequest,
        CaseStatus,
        CaseWorkflow,
        Ending,
        Saga,
        failure_message,
    )
    from casework.case.tasks import DecisionAction, TaskDecision
    from casework.governance.models import Directory, McpServerSettings, PolicyRef
    from policies.incident_review import (
        IncidentReviewPolicy,
        ReviewDecision,
        decide_review,
        known_owners,
        not_reviewed,
        owner_problems,
    )

AUTHOR = "casework"


class Deployments(BaseModel):
    """The deployments repository as this case reads it: through the policy's MCP server,
    confined to the repository the worker knows."""

    server: str
    settings: McpServerSettings
    path: str
    max_commits: int

    def tool(self, name: str) -> str:
        """The model's name for one of the server's tools (as the agent region names them)."""
        return f"{self.server}__{name}"


class IncidentReviewInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    submitted_by: str = Field(
        default="erin", min_length=1, description="Directory user who opened the review."
    )
    triage_case: str | None = Field(
        default=None, description="The ticket-triage case that started this review, if any."
    )


class ReviewStatus(StrEnum):
    """Where a case of this process can stand besides the framework's ``CaseStatus``."""

    FOLLOW_UPS_CREATED = "follow_ups_created"


class Outcome(StrEnum):
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    NOT_REVIEWED = "not_reviewed"
    """The policy does not review incidents of this severity."""


class ReviewEdit(BaseModel):
    """What the incident manager changed, written in the signed decision's comment:
    ``cause: <text>`` replaces the probable cause, and ``follow-up: <title> | <owner> | <days>``
    lines replace the draft's follow-ups (all of them, when there is at least one)."""

    probable_cause: str | None = None
    follow_ups: list[FollowUpAction] | None = None

    @property
    def empty(self) -> bool:
        return self.probable_cause is None and self.follow_ups is None


EDIT_LINE = re.compile(r"^\s*(cause|follow-up)\s*:\s*(.+?)\s*$", re.IGNORECASE)


def parse_edit(comment: str | None) -> tuple[ReviewEdit, list[str]]:
    """The edit a decision's comment carries, and what is wrong with its lines."""
    cause: str | None = None
    follow_ups: list[FollowUpAction] = []
    problems: list[str] = []
    for line in (comment or "").splitlines():
        match = EDIT_LINE.match(line)
        if match is None:
            continue
        what, text = match.group(1).lower(), match.group(2)
        if what == "cause":
            cause = text
            continue
        parts = [part.strip() for part in text.split("|")]
        if len(parts) not in (2, 3):
            problems.append(f"follow-up line {text!r}: write 'follow-up: title | owner | days'")
            continue
        try:
            follow_ups.append(
                FollowUpAction(
                    title=parts[0],
                    owner=parts[1],
                    **({"due_in_days": int(parts[2])} if len(parts) == 3 else {}),
                )
            )
        except (ValueError, ValidationError) as error:
            problems.append(f"follow-up line {text!r}: {error}".splitlines()[0])
    return ReviewEdit(probable_cause=cause, follow_ups=follow_ups or None), problems


class ReviewedDraft(BaseModel):
    """The review as the incident manager approved it."""

    probable_cause: str
    follow_ups: list[FollowUpAction]


class IncidentReviewResult(BaseModel):
    case_id: str
    incident_id: str
    status: str
    outcome: Outcome
    message: str
    decided_by: str | None = None
    agent_outcome: RegionOutcome | None
    """None when no investigator ran (an incident the policy does not review)."""
    unverified: list[str] = []
    """What the draft claimed that the records did not bear out, as the manager was told."""
    review: ReviewedDraft | None = None
    follow_ups: list[FollowUpTask] = []
    compensated: list[str] = []
    compensation_failed: list[str] = []
    policy: PolicyRef


@workflow.defn(name="IncidentReview")
class IncidentReviewWorkflow(CaseWorkflow):
    case_type = "incident-review"
    description = "an agent drafts a severity-1 post-incident review; the incident manager decides"
    input_model = IncidentReviewInput
    business_key = "incident_id"
    statuses = ReviewStatus

    def __init__(self) -> None:
        super().__init__()
        self._saga = Saga()
        self._owners: dict[str, str] = {}

    @workflow.run
    async def run(self, request: IncidentReviewInput) -> IncidentReviewResult:
        self.begin(
            request,
            request.submitted_by,
            f"Incident review {request.incident_id}",
            f"{request.submitted_by} opened the review of {request.incident_id}"
            + (f" (from {request.triage_case})" if request.triage_case else ""),
        )
        policy, ref = await self.load_governance(IncidentReviewPolicy)
        directory = self._directory
        assert directory is not None
        self._owners = known_owners(
            policy, {user: person.name for user, person in directory.users.items()}
        )
        incident: Ticket = await self.call_tool(
            ItsmActivities.get_ticket, TicketLookup(ticket_id=request.incident_id)
        )
        self._facts.update(ticket_id=incident.ticket_id, title=incident.title)
        if why := not_reviewed(policy, incident.severity):
            # Decided before anything else is read or asked: no agent, no person, no write.
            ending = await self.close_rejected(f"{incident.ticket_id} is not reviewed: {why}")
            return await self.complete(
                IncidentReviewResult(
                    case_id=workflow.info().workflow_id,
                    incident_id=incident.ticket_id,
                    outcome=Outcome.NOT_REVIEWED,
                    agent_outcome=None,
                    policy=ref,
                    **ending.result_fields(),
                )
            )

        deployments = await self._deployments(policy)
        region = await self._investigate(policy, directory, incident, deployments)
        draft = (
            IncidentReviewDraft.model_validate(region.output)
            if region.outcome is RegionOutcome.ANSWERED and region.output is not None
            else None
        )
        checks: ProposalChecks | None = None
        if draft is not None:
            self.record_proposal(
                INVESTIGATOR,
                f"{INVESTIGATOR} {draft.headline()}",
                recommended_action=draft.recommended_action(),
                confidence=draft.confidence,
                proposal=draft,
            )
            evidence = await self._evidence(incident, draft, deployments)
            checks = self.check_proposal(check_draft(draft, evidence, self._owners))
        decision = decide_review(
            policy, ref, draft, checks, no_draft_reason=f"{region.outcome.value}: {region.reason}"
        )
        self.record_decision(decision)
        try:
            result = await self._review(policy, ref, incident, region, draft, checks, decision)
        except asyncio.CancelledError:
            # A cancelled case must not leave follow-ups behind that nobody approved to stand.
            self.record_cancellation(await self.compensate(self._saga, "the case was cancelled"))
            raise
        return await self.complete(result)

    # -- steps ------------------------------------------------------------------------------

    async def _deployments(self, policy: IncidentReviewPolicy) -> Deployments | None:
        """The deployments repository, and the policy's git MCP server confined to it; None when
        the policy names no server or the worker has no repository (the review goes without)."""
        server = policy.deployments.mcp_server
        if server is None:
            return None
        settings = policy.agents[INVESTIGATOR].mcp_servers[server]
        found: DeploymentsRepository = await self.call_tool(
            DeploymentActivities.locate,
            DeploymentsLookup(command=settings.command),
            summary="located the deployments repository",
        )
        if not found.exists:
            self.record(
                AuditKind.TOOL_FAILED,
                f"no deployments repository at {found.path}: the review goes without deployments",
                activity="deployments.locate",
            )
            return None
        return confined_deployments(policy, found)

    async def _investigate(
        self,
        policy: IncidentReviewPolicy,
        directory: Directory,
        incident: Ticket,
        deployments: Deployments | None,
    ) -> AgentRegionResult:
        agent = policy.agents[INVESTIGATOR]
        context = investigator_context(incident, deployments)
        region_id = f"{workflow.info().workflow_id}-agent"
        self._facts["agent_region"] = region_id
        result = await workflow.execute_child_workflow(
            AgentRegionWorkflow.run,
            AgentRegionInput(
                agent=INVESTIGATOR,
                output=INVESTIGATOR_AGENT.output,
                system_prompt=INVESTIGATOR_AGENT.system_prompt,
                task=INVESTIGATOR_AGENT.task,
                context=context,
                allowed_tools=agent.allowed_tools,
                budget=agent.budget,
                model=agent.model,
                fallback_models=agent.fallback_models,
                max_tokens_per_call=agent.max_tokens_per_call,
                requested_by=self._requested_by,
                directory=directory,
                human_roles=agent.human_roles,
                human_sla=agent.human_sla,
                mcp_servers={deployments.server: deployments.settings} if deployments else {},
            ),
            id=region_id,
            static_summary=f"{INVESTIGATOR} investigating {incident.ticket_id}",
        )
        self.record_agent_region(
            f"{INVESTIGATOR} {result.outcome.value}: {result.reason} ({result.model_calls} model "
            f"calls, {result.tool_calls} tool calls, {result.refused_tool_calls} refused, "
            f"on {', '.join(result.models) or 'no model'})",
            outcome=result.outcome.value,
            model_usage=result.model_usage(INVESTIGATOR),
            region=result,
        )
        self._facts.update(agent=result.outcome.value)
        return result

    async def _evidence(
        self, incident: Ticket, draft: IncidentReviewDraft, deployments: Deployments | None
    ) -> Evidence:
        """What the records hold for each citation, looked up by the case: the agent's word
        that it saw a line, a commit or an incident is not taken."""
        evidence = Evidence(
            service=incident.ci_id or "",
            incident_id=incident.ticket_id,
            commits_read=deployments is not None,
        )
        for citation in draft.citations():
            if citation.kind == "commit" and deployments is not None:
                shown = await self._show_commit(deployments, citation.ref)
                if shown is not None:
                    evidence.commits[shown[0]] = shown[1]
            if citation.kind == "log":
                line = await self._lookup(
                    LogActivities.get_entry, LogEntryLookup(entry_id=citation.ref)
                )
                if isinstance(line, LogEntry):
                    evidence.logs[line.entry_id] = CitedLog(
                        entry_id=line.entry_id,
                        service=line.service,
                        at=line.at,
                        message=line.message,
                    )
            elif citation.kind == "incident" and citation.ref != incident.ticket_id:
                ticket = await self._lookup(
                    ItsmActivities.get_ticket, TicketLookup(ticket_id=citation.ref)
                )
                if isinstance(ticket, Ticket):
                    evidence.incidents.append(ticket.ticket_id)
        return evidence

    async def _show_commit(self, deployments: Deployments, ref: str) -> tuple[str, str] | None:
        """The cited commit's full SHA and subject, as the git MCP server shows it from the
        deployments repository; None when it has no such commit."""
        if not SHA.match(ref.lower()):
            return None  # not a commit SHA (a branch, "HEAD", an option): never sent
        try:
            shown: McpCallResult = await workflow.execute_activity(
                "mcp.call_tool",
                McpCallRequest(
                    server=deployments.server,
                    settings=deployments.settings,
                    tool="git_show",
                    arguments={"repo_path": deployments.path, "revision": ref.lower()},
                ),
                result_type=McpCallResult,
                start_to_close_timeout=TOOL_TIMEOUT,
                retry_policy=TOOL_RETRY,
                summary=f"checked a cited commit: git_show {ref} on {deployments.server}",
            )
        except ActivityError as error:
            self.record(
                AuditKind.TOOL_FAILED,
                f"git_show {ref} failed: {failure_message(error)}",
                activity="mcp.call_tool",
            )
            return None
        self.record(
            AuditKind.TOOL_CALL,
            f"checked a cited commit: git_show {ref} on MCP server {deployments.server}",
            activity="mcp.call_tool",
        )
        return None if shown.is_error else shown_commit(shown.content)

    async def _lookup(self, fn: Any, arg: BaseModel) -> Any:
        try:
            return await self.call_tool(fn, arg, summary=f"checked a citation: {arg}")
        except ActivityError:
            # Not on record (or unreadable): the citation stays unverified, and says so.
            return None

    async def _review(
        self,
        policy: IncidentReviewPolicy,
        ref: PolicyRef,
        incident: Ticket,
        region: AgentRegionResult,
        draft: IncidentReviewDraft | None,
        checks: ProposalChecks | None,
        decision: ReviewDecision,
    ) -> IncidentReviewResult:
        unverified = checks.reasons() if checks is not None else []
        outcome = await self.request_approval(
            ApprovalRequest(
                title=f"Post-incident review of {incident.ticket_id}: {incident.title}",
                summary=_summary(incident, draft, decision),
                evidence={
                    "draft": draft.model_dump(mode="json") if draft else None,
                    "unverified": unverified,
                },
                amount=0,
                currency="",
                tiers=policy.review.tiers,
                start_tier=0,
            )
        )

        def result(outcome: Outcome, ending: Ending, **fields: Any) -> IncidentReviewResult:
            return IncidentReviewResult(
                case_id=workflow.info().workflow_id,
                incident_id=incident.ticket_id,
                outcome=outcome,
                agent_outcome=region.outcome,
                unverified=unverified,
                policy=ref,
                **ending.result_fields(),
                **fields,
            )

        human = outcome.decision
        if human is None:
            ending = await self.put_on_hold(
                f"nobody decided the review of {incident.ticket_id} in time",
                notify_roles=policy.review.final_timeout.notify_roles,
                subject=f"Post-incident review of {incident.ticket_id} is on hold",
            )
            return result(Outcome.TIMED_OUT, ending)
        if human.action == DecisionAction.REJECT:
            ending = await self.close_rejected(
                f"{human.approver} rejected the review of {incident.ticket_id}"
                + (f": {human.comment}" if human.comment else ""),
            )
            return result(Outcome.REJECTED, ending, decided_by=human.approver)

        edit, _ = parse_edit(human.comment)
        drafted = [
            action
            for index, action in enumerate(draft.follow_ups if draft else [])
            if index in decision.creatable
        ]
        reviewed = ReviewedDraft(
            probable_cause=edit.probable_cause
            or (draft.probable_cause if draft else "not established"),
            follow_ups=edit.follow_ups if edit.follow_ups is not None else drafted,
        )
        kind = Outcome.APPROVED if edit.empty else Outcome.EDITED
        tasks, ending = await self._create_follow_ups(incident, reviewed, human.approver, kind)
        return result(kind, ending, decided_by=human.approver, review=reviewed, follow_ups=tasks)

    async def _create_follow_ups(
        self, incident: Ticket, reviewed: ReviewedDraft, approver: str, kind: Outcome
    ) -> tuple[list[FollowUpTask], Ending]:
        self.set_status(CaseStatus.EXECUTING)
        created: list[FollowUpTask] = []
        try:
            for index, action in enumerate(reviewed.follow_ups, start=1):
                task: FollowUpTask = await self.call_tool(
                    FollowUpActivities.create_follow_up,
                    FollowUpRequest(
                        incident_id=incident.ticket_id,
                        title=action.title,
                        owner=action.owner,
                        due_in_days=action.due_in_days,
                        idempotency_key=self.idempotency_key(f"follow-up-{index}"),
                    ),
                    summary=f"follow-up {index} for {action.owner}: {action.title}",
                )
                created.append(task)
                # Each follow-up registers how to undo it, should linking them fail for good.
                self._saga.add(
                    f"follow-up {task.task_id} cancelled",
                    lambda task=task: self.call_tool(
                        FollowUpActivities.cancel_follow_up,
                        FollowUpCancellation(
                            task_id=task.task_id,
                            reason=f"the review of {incident.ticket_id} could not be completed",
                            idempotency_key=self.idempotency_key(f"cancel-{task.task_id}"),
                        ),
                        retry_policy=COMPENSATION_RETRY,
                    ),
                )
            await self.call_tool(
                ItsmActivities.comment_on_ticket,
                TicketCommentRequest(
                    ticket_id=incident.ticket_id,
                    author=AUTHOR,
                    body=_link_comment(reviewed, created, approver, kind),
                    idempotency_key=self.idempotency_key("review-comment"),
                ),
                summary=f"linked {len(created)} follow-ups to {incident.ticket_id}",
            )
        except ActivityError as error:
            ending = await self.fail_compensated(
                self._saga,
                error,
                failed=f"recording the review's follow-ups on {incident.ticket_id}",
                reason="the review's follow-ups could not all be recorded",
            )
            return [], ending
        self.set_status(ReviewStatus.FOLLOW_UPS_CREATED)
        return created, Ending(
            status=ReviewStatus.FOLLOW_UPS_CREATED,
            message=f"review of {incident.ticket_id} {kind.value} by {approver}; "
            f"{len(created)} follow-ups created: "
            + (", ".join(f"{t.task_id} ({t.owner})" for t in created) or "none"),
        )

    # -- the manager's edit is checked before it is accepted -----------------------------------

    def _refusals(self, decision: TaskDecision, *, strict_amounts: bool = True) -> list[str]:
        reasons = super()._refusals(decision, strict_amounts=strict_amounts)
        if reasons or decision.action != DecisionAction.APPROVE:
            return reasons
        edit, problems = parse_edit(decision.comment)
        return problems + owner_problems(edit.follow_ups or [], self._owners)


def confined_deployments(
    policy: IncidentReviewPolicy, found: DeploymentsRepository
) -> Deployments | None:
    """The policy's deployments server confined to the repository the worker found; None when
    the policy names no server."""
    server = policy.deployments.mcp_server
    if server is None:
        return None
    settings = policy.agents[INVESTIGATOR].mcp_servers[server]
    confined = (
        settings.model_copy(
            update={
                "command": found.command,
                "args": [*settings.args, "--repository", found.path],
            }
        )
        if settings.command is not None
        else settings
    )
    return Deployments(
        server=server,
        settings=confined,
        path=found.path,
        max_commits=policy.deployments.max_commits,
    )


def investigator_context(incident: Ticket, deployments: Deployments | None) -> dict[str, Any]:
    """What the investigator is shown: the incident, and where and how to read deployments."""
    context: dict[str, Any] = {"incident": incident.model_dump(mode="json")}
    if deployments is not None:
        context["deployments"] = {
            "repo_path": deployments.path,
            "read_with": [deployments.tool("git_log"), deployments.tool("git_show")],
            "max_commits": deployments.max_commits,
        }
    return context


def _summary(incident: Ticket, draft: IncidentReviewDraft | None, decision: ReviewDecision) -> str:
    lines = [f"Incident {incident.ticket_id} (severity {incident.severity}): {incident.title}"]
    if draft is None:
        lines.append("The investigator gave no usable draft: write the follow-ups, or reject.")
    else:
        lines.append(f"Summary: {draft.summary}")
        lines.append("Timeline:")
        lines += [
            f"- {entry.at.isoformat()} {entry.event} ["
            + (", ".join(c.label() for c in entry.evidence) or "uncited")
            + "]"
            for entry in draft.timeline
        ]
        lines.append(
            f"Probable cause: {draft.probable_cause} ["
            + (", ".join(c.label() for c in draft.cause_evidence) or "uncited")
            + "]"
        )
        lines.append("Follow-ups:")
        lines += [
            f"- {action.title} (owner {action.owner}, due in {action.due_in_days} days)"
            + ("" if index in decision.creatable else " NOT created as drafted: unknown owner")
            for index, action in enumerate(draft.follow_ups)
        ]
    lines.append("Checks: " + "; ".join(decision.reasons))
    lines.append(
        "Approve to adopt it. To edit, approve with comment lines 'cause: <text>' and/or "
        "'follow-up: <title> | <owner> | <days>' (these replace the draft's). Reject to drop it."
    )
    return "\n".join(lines)


def _link_comment(
    reviewed: ReviewedDraft, created: list[FollowUpTask], approver: str, kind: Outcome
) -> str:
    lines = [
        f"Post-incident review {kind.value} by {approver}.",
        f"Probable cause: {reviewed.probable_cause}",
        "Follow-ups:",
    ]
    lines += [f"- {task.task_id}: {task.title} (owner {task.owner})" for task in created]
    return "\n".join(lines)
