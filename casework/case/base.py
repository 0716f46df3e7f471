"""What every casework process shares: audit trail, status, tool calls and human tasks.

A process workflow subclasses ``CaseWorkflow``; the ``decide`` update and signal and the
``audit``, ``open_task``, ``open_tasks`` and ``state`` queries come with it, so every process is
approved and inspected the same way. A case may hold several open tasks at once (parallel
reviews); a decision names its task, or goes to the one open task its sender may decide.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError
    from pydantic_core import to_jsonable_python

    from casework import search_attributes as sa
    from casework.agents.checks import ProposalChecks
    from casework.agents.messages import AgentRequest, AgentResult, AgentUsage
    from casework.amounts import exact
    from casework.audit import (
        CONFIDENCE,
        MODEL_USAGE,
        RECOMMENDED_ACTION,
        AuditEvent,
        AuditKind,
        ModelUsage,
    )
    from casework.case.saga import CompensationReport, Saga
    from casework.case.tasks import (
        DecisionAction,
        DecisionReceipt,
        HumanTask,
        TaskAnswer,
        TaskDecision,
        TaskKind,
        TaskStatus,
    )
    from casework.converter import INVALID_INPUT, describe_validation_error
    from casework.governance.activity import PolicyLookup
    from casework.governance.activity import load as load_policy
    from casework.governance.models import (
        DIRECTORY_ID,
        ApprovalPolicy,
        ApprovalTier,
        Directory,
        PolicyModel,
        PolicyRef,
    )
    from casework.governance.rules import (
        answer_refusal_reasons,
        eligible_roles,
        refusal_reasons,
    )
    from casework.metrics import CaseMetrics
    from casework.signing import signature_refusal
    from casework.systems.notifications import NotificationActivities, NotificationRequest

M = TypeVar("M", bound=BaseModel)
P = TypeVar("P", bound=PolicyModel)

SIGNED_DECISIONS = "signed-decisions"
"""Patch ID: cases started before decisions were signed keep accepting unsigned ones."""
EDITED_AMOUNT_RULES = "edited-amount-rules"
"""Patch ID: an edited amount must fit its currency's decimals and the policy's bounds, and an
approval limit covers only its own currency. Cases started before keep judging *signals* the old
way, since a signal's verdict is recomputed on replay; updates are judged by the validator, which
replay does not run, so every case applies the rules to them."""
PROPOSALS_CHECKED = "agent-proposals-checked"
"""Patch ID: a case that took its decision on an unchecked proposal replays that decision."""


class CaseResult(Protocol):
    """What every process's result says: how the case ended, in words for people."""

    @property
    def outcome(self) -> StrEnum: ...

    @property
    def message(self) -> str: ...


R = TypeVar("R", bound=CaseResult)

DECISION_REFUSED = "DecisionRefused"

TOOL_TIMEOUT = timedelta(seconds=30)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)
AGENT_TIMEOUT = timedelta(minutes=2)
# A few attempts only: an agent that keeps answering badly is left out and a person or the
# policy goes on without it, rather than retried forever. Auth and bad-request errors are
# non-retryable and skip straight to that.
AGENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)
# Undoing a write matters more than making it: keep trying much longer before giving up.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
)


class CaseStatus(StrEnum):
    STARTED = "started"
    ANALYSING = "analysing"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_INPUT = "awaiting_input"
    EXECUTING = "executing"
    PAID = "paid"
    REJECTED = "rejected"
    ON_HOLD = "on_hold"
    FAILED_COMPENSATED = "failed_compensated"
    FAILED_NEEDS_ATTENTION = "failed_needs_attention"
    CANCELLED_COMPENSATED = "cancelled_compensated"
    RESOLVED = "resolved"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    AWAITING_EXTERNAL = "awaiting_external"
    """Waiting for someone outside the company: a customer, a vendor, a credit bureau."""
    REFUNDED = "refunded"
    ONBOARDED = "onboarded"
    DISBURSED = "disbursed"
    ROUTED = "routed"
    SUPERSEDED = "superseded"
    """Someone else (a person, another case) acted on the business object while the case
    waited; the case wrote nothing over it."""


class CaseState(BaseModel):
    case_id: str
    case_type: str
    status: str
    title: str
    open_task: HumanTask | None
    """The first open task; ``open_tasks`` lists them all when reviews run in parallel."""
    open_tasks: list[HumanTask] = []
    waiting_on: str | None = None
    """What the case waits for from people, with the command that gives it; None if nothing."""
    facts: dict[str, Any]
    """Process-specific summary for people: amounts, the agent's proposal, the outcome."""


class AmountLimits(BaseModel):
    """A policy's bounds on the amount a person may approve instead of the one asked for."""

    currency: str | None
    """The policy's currency: the bounds say nothing about an amount in another one (None: a
    policy written before policies named one, whose bounds apply in any)."""
    minimum: Decimal | None = None
    maximum: Decimal | None = None


class ApprovalRequest(BaseModel):
    title: str
    summary: str
    evidence: dict[str, Any] = {}
    amount: Decimal
    currency: str
    """Empty when the task carries no amount (a review); ``amount`` is then 0."""
    tiers: list[ApprovalTier]
    start_tier: int
    escalate: bool = True
    limits: AmountLimits | None = None
    """What the policy allows an edited amount to be, besides at most ``amount`` and no more
    decimals than ``currency`` has."""


class ApprovalOutcome(BaseModel):
    task: HumanTask
    decision: TaskDecision | None
    """None when the last tier's SLA passed without a decision."""


async def wait_within(condition: Callable[[], bool], timeout: timedelta) -> bool:
    """Wait durably until ``condition`` holds; False when ``timeout`` passes first."""
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except TimeoutError:
        return False
    return True


def activity_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__temporal_activity_definition").name


def failure_message(error: BaseException) -> str:
    """What the activity or child reported, without Temporal's wrappers around it.

    Only the wrappers are peeled off: an activity's own error says what it was doing, which the
    library error it was raised from does not.
    """
    while isinstance(error, ActivityError | ChildWorkflowError) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, ApplicationError) and error.type:
        return f"{error.type}: {error.message}"
    return str(error)


def refuse_update(what: str, reasons: list[str]) -> None:
    """For update validators: a refused update is rejected before it reaches history."""
    if reasons:
        # The reasons travel as the error's details too, so a client (the CLI, the review
        # queue) can show them one by one.
        raise ApplicationError(
            f"{what} refused: " + "; ".join(reasons),
            reasons,
            type=DECISION_REFUSED,
            non_retryable=True,
        )


def usage_of_call(agent: str, usage: AgentUsage) -> ModelUsage:
    """The spend of one model call, as the audit trail's ``model_usage`` convention counts it."""
    return ModelUsage(
        agent=agent,
        model_calls=1,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd or 0.0,
        models=[usage.model],
    )


class CaseWorkflow:
    case_type: ClassVar[str]
    counts_as_case: ClassVar[bool] = True
    """False for helper workflows (the agent region) whose outcome and spend their parent case
    reports: they are then not counted as cases of their own by metrics and the KPI report."""

    def __init__(self) -> None:
        self._audit: list[AuditEvent] = []
        self._status: str = CaseStatus.STARTED
        self._title = ""
        self._facts: dict[str, Any] = {}
        self._tasks: list[HumanTask] = []
        self._directory: Directory | None = None
        self._decisions_signed = False
        self._strict_amounts = False
        self._used_nonces: set[str] = set()
        self._requested_by = ""
        self._input_name = ""
        self._submitter_may_approve = False
        self._metrics: CaseMetrics | None = None

    # -- audit and status -------------------------------------------------------------------

    def record(self, kind: AuditKind, summary: str, **data: Any) -> None:
        event = AuditEvent(
            seq=len(self._audit) + 1,
            at=workflow.now(),
            kind=kind,
            summary=summary,
            data=to_jsonable_python(data),
        )
        self._audit.append(event)
        if self._metrics is None:
            self._metrics = CaseMetrics(self.case_type, self.counts_as_case)
        self._metrics.count(
            event,
            self._status,
            decided_automatically=not any(t.kind is TaskKind.APPROVAL for t in self._tasks),
        )

    def record_proposal(
        self,
        agent: str,
        summary: str,
        *,
        recommended_action: str | None,
        confidence: float | None,
        usage: AgentUsage | None = None,
        **data: Any,
    ) -> None:
        """Record what an agent proposed, in the terms every process's KPIs share.

        ``recommended_action`` is what the proposal means for a human task that may follow:
        ``approve`` when approving the task does what the agent proposes, ``reject`` when the
        agent advises against what approval would do (an invoice agent recommending reject or
        hold), None when neither reading fits. A person deciding otherwise overrides the agent.
        ``usage`` is the model call behind this proposal (from :meth:`propose`): its spend is
        recorded with it and its model becomes the case's ``agent_model`` fact. A proposal whose
        calls are recorded elsewhere (an agent region's) passes none.
        """
        if recommended_action not in (None, "approve", "reject"):
            raise ValueError(
                f"recommended_action must be approve, reject or None, not {recommended_action!r}"
            )
        spend = {} if usage is None else {MODEL_USAGE: usage_of_call(agent, usage)}
        self.record(
            AuditKind.AGENT_PROPOSAL,
            summary,
            agent=agent,
            **{RECOMMENDED_ACTION: recommended_action, CONFIDENCE: confidence},
            **spend,
            **data,
            **({} if usage is None else {"usage": usage}),
        )
        if usage is not None:
            self._facts["agent_model"] = usage.label

    def check_proposal(self, checks: ProposalChecks) -> ProposalChecks | None:
        """Record how each value of an agent's proposal was checked, and hand the checks to the
        rules, which use only what is verified.

        None in a case that decided before proposals were checked, while it replays that
        decision: its rules then decide as they did (``PROPOSALS_CHECKED``). A case that reaches
        this point afresh always gets its checks.
        """
        if not workflow.patched(PROPOSALS_CHECKED):
            return None
        self.record(
            AuditKind.PROPOSAL_CHECKED,
            checks.summary(),
            agent=checks.agent,
            unverified=len(checks.unverified),
            checks=checks.checks,
        )
        return checks

    def record_agent_region(
        self, summary: str, *, outcome: str, model_usage: ModelUsage, **data: Any
    ) -> None:
        """Record that an agent region (a child workflow) ended: its outcome, and the spend of
        all its model calls, which the case pays for."""
        self.record(
            AuditKind.AGENT_REGION_ENDED, summary, outcome=outcome, model_usage=model_usage, **data
        )

    def record_compensation(self, step: str, why: str, error: BaseException | None) -> None:
        """Record one saga compensation: what was undone, or that undoing it failed."""
        if error is None:
            self.record(AuditKind.COMPENSATION, f"compensated: {step} ({why})", step=step, ok=True)
        else:
            self.record(
                AuditKind.COMPENSATION,
                f"compensation FAILED, needs a person: {step}: {failure_message(error)}",
                step=step,
                ok=False,
                error=failure_message(error),
            )

    async def compensate(self, saga: Saga, why: str) -> CompensationReport:
        """Undo ``saga``'s writes, newest first, recording each through ``record_compensation``
        so every process's compensations count alike; ``why`` goes into each entry."""

        def on_step(step: str, error: BaseException | None) -> None:
            self.record_compensation(step, why, error)

        return await saga.compensate(on_step)

    def record_cancellation(self, report: CompensationReport) -> None:
        """Close a cancelled case saying what its compensation undid; a task still open is
        withdrawn, so nobody is left deciding for a case that has ended."""
        self.withdraw_open_tasks("the case was cancelled")
        self.set_status(CaseStatus.CANCELLED_COMPENSATED)
        self.record(
            AuditKind.CASE_COMPLETED,
            "cancelled; compensated: " + (", ".join(report.compensated) or "nothing to undo"),
            report=report,
        )

    async def complete(self, result: R) -> R:
        """Close the case with ``result``: its outcome in the facts and the trail, then let
        in-flight update handlers finish."""
        self._facts.update(outcome=result.outcome.value, message=result.message)
        self.record(AuditKind.CASE_COMPLETED, result.message, result=result)
        await self.finish_handlers()
        return result

    def set_status(
        self, status: str, *, approver_role: str | None = None, amount: Decimal | None = None
    ) -> None:
        self._status = status
        updates = [
            sa.CASE_TYPE.value_set(self.case_type),
            sa.CASE_STATUS.value_set(status),
            sa.APPROVER_ROLE.value_set(approver_role)
            if approver_role
            else sa.APPROVER_ROLE.value_unset(),
        ]
        if amount is not None:
            updates.append(sa.CASE_AMOUNT.value_set(float(amount)))
        workflow.upsert_search_attributes(updates)

    def begin(self, request: BaseModel, submitted_by: str, title: str, started: str) -> None:
        """Open the case: who asked, what it is called, the first audit entry."""
        self._requested_by = submitted_by
        self._input_name = type(request).__name__
        self._title = title
        self.set_status(CaseStatus.ANALYSING)
        self.record(AuditKind.CASE_STARTED, started, input=request)

    def idempotency_key(self, step: str) -> str:
        """Derived from the business key, so a retried or replayed write happens once."""
        return f"{workflow.info().workflow_id}:{step}"

    @workflow.query(name="audit")
    def audit_trail(self) -> list[AuditEvent]:
        return self._audit

    @workflow.query(name="open_task")
    def open_task(self) -> HumanTask | None:
        return next(iter(self.open_tasks()), None)

    @workflow.query(name="open_tasks")
    def open_tasks(self) -> list[HumanTask]:
        return [task for task in self._tasks if task.status is TaskStatus.OPEN]

    @workflow.query(name="state")
    def state(self) -> CaseState:
        return CaseState(
            case_id=workflow.info().workflow_id,
            case_type=self.case_type,
            status=self._status,
            title=self._title,
            open_task=self.open_task(),
            open_tasks=self.open_tasks(),
            waiting_on=self.waiting_on(),
            facts=self._facts,
        )

    def waiting_on(self) -> str | None:
        tasks = self.open_tasks()
        if not tasks:
            return None
        # With parallel reviews a decision must say which task it is for.
        name_task = len(tasks) > 1
        waits = []
        for task in tasks:
            flag = f" --task {task.task_id}" if name_task else ""
            if task.kind is TaskKind.QUESTION:
                waits.append(
                    f"an answer from {', '.join(task.eligible_roles)}: "
                    f'casework answer {task.case_id} --as USER{flag} --text "..."'
                )
            else:
                waits.append(
                    f"a decision by {task.role}: "
                    f"casework approve|reject {task.case_id} --as USER{flag}"
                )
        return "; ".join(waits)

    async def load_governance(self, policy_id: str, model: type[P]) -> tuple[P, PolicyRef]:
        """Load the case's policy (as ``model``) and the directory, through activities: the exact
        text decided under is then in the history, and the case keeps it for its whole life. The
        directory brings its users' public keys, which every decision's signature is checked
        against; an approval policy says whether the submitter may decide."""
        self._decisions_signed = workflow.patched(SIGNED_DECISIONS)
        self._strict_amounts = workflow.patched(EDITED_AMOUNT_RULES)
        document = await self.call_tool(
            load_policy, PolicyLookup(policy_id=policy_id), summary=f"loaded policy {policy_id}"
        )
        directory = await self.call_tool(
            load_policy, PolicyLookup(policy_id=DIRECTORY_ID), summary="loaded the directory"
        )
        self._directory = Directory.model_validate(directory.content)
        if self._requested_by not in self._directory.users:
            # Only knowable once the directory is loaded, so it is checked here, not by the
            # converter; it fails the case the same way, naming the field.
            raise ApplicationError(
                f"invalid {self._input_name}: submitted_by: {self._requested_by!r} is not in "
                "the approval directory",
                type=INVALID_INPUT,
                non_retryable=True,
            )
        self.record(
            AuditKind.POLICY_LOADED,
            f"deciding under {document.ref} with directory {directory.ref}",
            policy=document.ref,
            directory=directory.ref,
        )
        self._facts["policy"] = str(document.ref)
        policy = model.model_validate(document.content)
        if isinstance(policy, ApprovalPolicy):
            self._submitter_may_approve = policy.segregation_of_duties.submitter_may_approve
        return policy, document.ref

    # -- tools ------------------------------------------------------------------------------

    async def propose(
        self,
        request: AgentRequest,
        *,
        failure: str,
        summary: str | None = None,
        **failure_data: Any,
    ) -> tuple[AgentResult | None, str]:
        """Ask an agent for a proposal (``llm.propose``), with the timeout and retries every
        agent gets. An agent only advises: when it gives none, ``"<failure>: <why>"`` is
        recorded (with ``failure_data``) and ``(None, why)`` returned, and the case carries on."""
        try:
            result: AgentResult = await workflow.execute_activity(
                "llm.propose",
                request,
                result_type=AgentResult,
                start_to_close_timeout=AGENT_TIMEOUT,
                retry_policy=AGENT_RETRY,
                summary=summary,
            )
        except ActivityError as error:
            reason = failure_message(error)
            self.record(AuditKind.AGENT_FAILED, f"{failure}: {reason}", **failure_data)
            return None, reason
        return result, ""

    async def call_tool(
        self,
        fn: Callable[..., Any],
        arg: Any,
        *,
        retry_policy: RetryPolicy = TOOL_RETRY,
        summary: str | None = None,
    ) -> Any:
        """Run a tool activity and record the call, or its final failure, in the audit trail."""
        name = activity_name(fn)
        try:
            result = await workflow.execute_activity_method(
                fn, arg, start_to_close_timeout=TOOL_TIMEOUT, retry_policy=retry_policy
            )
        except ActivityError as error:
            self.record(
                AuditKind.TOOL_FAILED,
                f"{name} failed: {failure_message(error)}",
                activity=name,
                input=arg,
            )
            raise
        self.record(AuditKind.TOOL_CALL, summary or name, activity=name, input=arg)
        return result

    async def notify(self, user: str, subject: str, body: str, step: str) -> None:
        assert self._directory is not None
        person = self._directory.users.get(user)
        if person is None:
            return
        await self.call_tool(
            NotificationActivities.send,
            NotificationRequest(
                to=person.email,
                subject=subject,
                body=body,
                case_id=workflow.info().workflow_id,
                idempotency_key=self.idempotency_key(f"notify:{step}:{user}"),
            ),
            summary=f"notified {user}: {subject}",
        )

    async def notify_role(self, role: str, subject: str, body: str, step: str) -> None:
        assert self._directory is not None
        for user_id, user in sorted(self._directory.users.items()):
            if user.role == role:
                await self.notify(user_id, subject, body, step)

    # -- human tasks ------------------------------------------------------------------------

    async def request_approval(self, request: ApprovalRequest) -> ApprovalOutcome:
        """Open a task for the starting tier; escalate tier by tier as SLAs pass.

        Waiting is a durable timer: it costs nothing however long the approver takes.
        """
        tier = request.start_tier
        while True:
            task = self._open_task(request, tier)
            self.set_status(
                CaseStatus.AWAITING_APPROVAL, approver_role=task.role, amount=request.amount
            )
            await self.notify_role(
                task.role,
                f"Approval needed: {request.title}",
                f"{task.summary}\n\nDecide by {task.due_at.isoformat()} with:\n"
                f"  casework approve {task.case_id} --as <you>",
                step=task.task_id,
            )
            decided = await wait_within(
                lambda task=task: task.decision is not None, request.tiers[tier].sla
            )
            if decided:
                return ApprovalOutcome(task=task, decision=task.decision)
            if request.escalate and tier + 1 < len(request.tiers):
                task.status = TaskStatus.ESCALATED
                self.record(
                    AuditKind.TASK_ESCALATED,
                    f"no decision from {task.role} within {request.tiers[tier].sla}; "
                    f"escalated to {request.tiers[tier + 1].role}",
                    task_id=task.task_id,
                    from_role=task.role,
                    to_role=request.tiers[tier + 1].role,
                )
                tier += 1
                continue
            task.status = TaskStatus.TIMED_OUT
            self.record(
                AuditKind.TASK_TIMED_OUT,
                f"no decision from {task.role} within {request.tiers[tier].sla}; "
                "final timeout reached",
                task_id=task.task_id,
            )
            return ApprovalOutcome(task=task, decision=None)

    def withdraw_open_tasks(self, why: str) -> list[HumanTask]:
        """Close every open task undecided, because an event (a fraud alert, say) has settled
        the case: a decision sent for one of them later is refused, the task being no longer
        open. Returns the tasks withdrawn, so their people can be told."""
        withdrawn = self.open_tasks()
        for task in withdrawn:
            task.status = TaskStatus.WITHDRAWN
            self.record(
                AuditKind.POLICY_DECISION,
                f"withdrew task {task.task_id} of {task.role} undecided: {why}",
                task_id=task.task_id,
                role=task.role,
            )
        return withdrawn

    def _new_task(self, kind: TaskKind, sla: timedelta, **fields: Any) -> HumanTask:
        """A new open task: numbered per case, due ``sla`` from now."""
        now = workflow.now()
        case_id = workflow.info().workflow_id
        task = HumanTask(
            task_id=f"{case_id}/{kind.value}-{len(self._tasks) + 1}",
            case_id=case_id,
            kind=kind,
            requested_by=self._requested_by,
            opened_at=now,
            due_at=now + sla,
            submitter_may_decide=self._submitter_may_approve,
            **fields,
        )
        self._tasks.append(task)
        return task

    def _task_for(
        self, kind: TaskKind, task_id: str | None, person: str
    ) -> tuple[HumanTask | None, list[str]]:
        """The task a decision or answer is meant for, or why that cannot be told.

        A named task is looked up among all tasks, so a late decision is told the task closed.
        Unnamed, it goes to the one open task of its kind the sender's role may act on; when
        that is ambiguous it is refused rather than guessed.
        """
        if task_id:
            named = next((task for task in self._tasks if task.task_id == task_id), None)
            if named is None:
                return None, [f"this case has no task {task_id}"]
            return named, []
        open_tasks = self.open_tasks()
        of_kind = [task for task in open_tasks if task.kind is kind]
        role = self._directory.users[person].role if person in self._directory.users else None
        if not of_kind:
            # Let the evaluator explain: an open task of the other kind, or else the sender's
            # own latest task (with parallel reviews the case's last task may be another
            # reviewer's), or the last one closed.
            own = [task for task in self._tasks if role in task.eligible_roles]
            return (open_tasks or own or self._tasks or [None])[-1], []
        eligible = [task for task in of_kind if role in task.eligible_roles]
        if len(eligible) > 1:
            return None, [
                "several open tasks could be meant; name one with task_id: "
                + ", ".join(task.task_id for task in eligible)
            ]
        return (eligible or of_kind)[0], []

    def _open_task(self, request: ApprovalRequest, tier: int) -> HumanTask:
        limits = request.limits
        if limits is not None and limits.currency not in (None, request.currency):
            limits = None
        task = self._new_task(
            TaskKind.APPROVAL,
            request.tiers[tier].sla,
            title=request.title,
            role=request.tiers[tier].role,
            eligible_roles=eligible_roles(request.tiers, tier),
            amount=request.amount,
            currency=request.currency,
            min_amount=limits.minimum if limits else None,
            max_amount=limits.maximum if limits else None,
            tier=tier,
            summary=request.summary,
            evidence=request.evidence,
        )
        self.record(
            AuditKind.TASK_OPENED,
            f"approval task assigned to {task.role}, due {task.due_at.isoformat()}",
            task_id=task.task_id,
            task_kind=task.kind,
            role=task.role,
            eligible_roles=task.eligible_roles,
            amount=task.amount,
            due_at=task.due_at,
        )
        return task

    def _signature_refusals(self, decision: TaskDecision) -> list[str]:
        """Who sent a decision is proven before what they may decide is considered."""
        if not self._decisions_signed or self._directory is None:
            return []
        case_id = workflow.info().workflow_id
        # cryptography imports its exception classes from Rust on the first failed check; in the
        # sandbox that import must be passed through, or the worker aborts.
        with workflow.unsafe.imports_passed_through():
            reason = signature_refusal(case_id, decision, self._directory.public_keys)
        if reason:
            return [reason]
        if decision.nonce in self._used_nonces:
            return ["this signed decision was already used on this case (a replay); sign a new one"]
        return []

    def _refusals(self, decision: TaskDecision, *, strict_amounts: bool = True) -> list[str]:
        if self._directory is None:
            return ["the case has not loaded its approval directory yet"]
        if unproven := self._signature_refusals(decision):
            return unproven
        task, ambiguity = self._task_for(TaskKind.APPROVAL, decision.task_id, decision.approver)
        return ambiguity or refusal_reasons(
            self._directory,
            task,
            decision,
            submitter_may_approve=self._submitter_may_approve,
            strict_amounts=strict_amounts,
        )

    def _accept(self, decision: TaskDecision) -> DecisionReceipt:
        task, _ = self._task_for(TaskKind.APPROVAL, decision.task_id, decision.approver)
        assert task is not None
        task.decision = decision
        task.status = TaskStatus.DECIDED
        if decision.nonce:
            self._used_nonces.add(decision.nonce)
        amount_note = "" if decision.amount is None else f" for {decision.amount} {task.currency}"
        self.record(
            AuditKind.HUMAN_DECISION,
            f"{decision.approver} chose {decision.action}{amount_note}"
            + (f": {decision.comment}" if decision.comment else ""),
            task_id=task.task_id,
            decision=decision,
        )
        approved = decision.action == DecisionAction.APPROVE and task.carries_amount
        amount = (task.amount if decision.amount is None else decision.amount) if approved else None
        what = f" of {exact(amount)} {task.currency}" if amount is not None else ""
        return DecisionReceipt(
            task_id=task.task_id,
            action=decision.action,
            approver=decision.approver,
            message=f"{decision.action}{what} by {decision.approver} recorded for {task.case_id}",
            amount=amount,
            currency=task.currency if amount is not None else "",
        )

    @workflow.update(name="decide")
    async def decide(self, decision: TaskDecision) -> DecisionReceipt:
        return self._accept(decision)

    @decide.validator
    def validate_decision(self, decision: TaskDecision) -> None:
        refuse_update("decision", self._refusals(decision))

    @workflow.signal(name="decide")
    def decide_by_signal(self, *payloads: Any) -> None:
        decision = self.signal_input("decision", TaskDecision, payloads)
        if decision is None:
            return
        reasons = self._refusals(decision, strict_amounts=self._strict_amounts)
        if not self.ignore_signal("decision", decision.approver, reasons, decision=decision):
            self._accept(decision)

    async def ask(
        self, question: str, roles: list[str], sla: timedelta, title: str
    ) -> TaskAnswer | None:
        """Put a question to people holding ``roles``; None when nobody answers within ``sla``."""
        task = self._new_task(
            TaskKind.QUESTION,
            sla,
            title=title,
            role=roles[0],
            eligible_roles=roles,
            tier=0,
            summary=question,
            question=question,
        )
        case_id = task.case_id
        previous_status = self._status
        self.set_status(CaseStatus.AWAITING_INPUT, approver_role=task.role)
        self.record(
            AuditKind.TASK_OPENED,
            f"question for {', '.join(roles)}, due {task.due_at.isoformat()}: {question}",
            task_id=task.task_id,
            task_kind=task.kind,
            role=task.role,
            eligible_roles=roles,
            due_at=task.due_at,
        )
        for role in roles:
            await self.notify_role(
                role,
                f"Question: {title}",
                f"{question}\n\nAnswer by {task.due_at.isoformat()} with:\n"
                f'  casework answer {case_id} --as <you> --text "..."',
                step=task.task_id,
            )
        if not await wait_within(lambda: task.answer is not None, sla):
            task.status = TaskStatus.TIMED_OUT
            self.record(
                AuditKind.TASK_TIMED_OUT,
                f"nobody answered within {sla}",
                task_id=task.task_id,
            )
        self.set_status(previous_status)
        return task.answer

    def _answer_refusals(self, answer: TaskAnswer) -> list[str]:
        if self._directory is None:
            return ["the case has not loaded its directory yet"]
        task, ambiguity = self._task_for(TaskKind.QUESTION, answer.task_id, answer.responder)
        return ambiguity or answer_refusal_reasons(self._directory, task, answer)

    def _accept_answer(self, answer: TaskAnswer) -> DecisionReceipt:
        task, _ = self._task_for(TaskKind.QUESTION, answer.task_id, answer.responder)
        assert task is not None
        task.answer = answer
        task.status = TaskStatus.DECIDED
        self.record(
            AuditKind.HUMAN_ANSWER,
            f"{answer.responder} answered: {answer.text}",
            task_id=task.task_id,
            answer=answer,
        )
        return DecisionReceipt(
            task_id=task.task_id,
            action="answer",
            approver=answer.responder,
            message=f"answer from {answer.responder} recorded for {task.case_id}",
        )

    @workflow.update(name="answer")
    async def answer(self, answer: TaskAnswer) -> DecisionReceipt:
        return self._accept_answer(answer)

    @answer.validator
    def validate_answer(self, answer: TaskAnswer) -> None:
        refuse_update("answer", self._answer_refusals(answer))

    @workflow.signal(name="answer")
    def answer_by_signal(self, *payloads: Any) -> None:
        answer = self.signal_input("answer", TaskAnswer, payloads)
        if answer is None:
            return
        reasons = self._answer_refusals(answer)
        if not self.ignore_signal("answer", answer.responder, reasons, answer=answer):
            self._accept_answer(answer)

    def signal_input(self, what: str, model: type[M], payloads: tuple[Any, ...]) -> M | None:
        """A signal's input, validated here rather than by the data converter.

        Decoded by the converter, a malformed signal would be dropped unseen, and one sent with
        no payload at all would fail every workflow task of the case (the handler's argument is
        missing), leaving it stuck. So signal handlers take whatever was sent; anything but one
        valid payload is recorded in the audit trail and ignored, like any invalid signal.
        """
        if len(payloads) == 1:
            try:
                return model.model_validate(payloads[0])
            except ValidationError as error:
                problem = describe_validation_error(error)
        else:
            problem = f"expected one {model.__name__}, got {len(payloads)} payloads"
        self.record(
            AuditKind.DECISION_REFUSED,
            f"ignored a malformed {what} signal: {problem}",
            reasons=[problem],
        )
        return None

    def ignore_signal(self, what: str, sender: str, reasons: list[str], **data: Any) -> bool:
        """Signals cannot be refused to the sender: an invalid one is recorded and ignored.

        Returns whether it was ignored."""
        if not reasons:
            return False
        self.record(
            AuditKind.DECISION_REFUSED,
            f"ignored {what} from {sender}: " + "; ".join(reasons),
            reasons=reasons,
            **data,
        )
        return True

    async def finish_handlers(self) -> None:
        """Let in-flight update handlers complete before the case closes."""
        await workflow.wait_condition(workflow.all_handlers_finished)
