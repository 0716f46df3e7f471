"""The case base: what every casework process is made of, whatever it does.

A case is one Temporal workflow whose ID is its business key. This module holds what every case
keeps and says about itself: its declarations (``casework.case.workflow``), its typed audit trail,
its status (a search attribute), the queries people read it through, the governance it decides
under, its tool calls and notifications, and how a signal's input is taken without ever failing
a workflow task. Human tasks (``casework.case.human``), agents (``casework.case.agents``) and
endings (``casework.case.endings``) build on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
    from casework.audit import (
        AuditEvent,
        AuditKind,
    )
    from casework.case.patches import (
        BASELINES,
        EDITED_AMOUNT_RULES,
        GOVERNANCE_LOADED_TOGETHER,
        SIGNED_DECISIONS,
    )
    from casework.case.saga import CompensationReport, Saga
    from casework.case.tasks import (
        HumanTask,
        OpenPage,
        TaskKind,
        TaskStatus,
    )
    from casework.converter import INVALID_INPUT, describe_validation_error
    from casework.governance.activity import PolicyLookup
    from casework.governance.activity import load as load_policy
    from casework.governance.decisions import RoutedDecision
    from casework.governance.models import (
        DIRECTORY_ID,
        ApprovalPolicy,
        Directory,
        PolicyModel,
        PolicyRef,
        parsed_once,
    )
    from casework.metrics import CaseMetrics
    from casework.systems.notifications import NotificationActivities, NotificationRequest

M = TypeVar("M", bound=BaseModel)

P = TypeVar("P", bound=PolicyModel)
# What a lookup after a failed write finds: the record the write made.
T = TypeVar("T")


async def at_once_or_in_turn(together: bool, *steps: Callable[[], Awaitable[Any]]) -> list[Any]:
    """The results of ``steps``, in order: run at once, or one after the other for cases started
    before the ``workflow.patched()`` that ``together`` comes from (their histories replay that)."""
    if together:
        return list(await asyncio.gather(*(step() for step in steps)))
    return [await step() for step in steps]


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

# Undoing a write matters more than making it: keep trying much longer before giving up.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=10,
)


class CaseStatus(StrEnum):
    """Where any case can stand; a process adds statuses of its own (``CaseBase.statuses``)."""

    STARTED = "started"
    ANALYSING = "analysing"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_INPUT = "awaiting_input"
    EXECUTING = "executing"
    REJECTED = "rejected"
    ON_HOLD = "on_hold"
    FAILED_COMPENSATED = "failed_compensated"
    FAILED_NEEDS_ATTENTION = "failed_needs_attention"
    CANCELLED_COMPENSATED = "cancelled_compensated"
    AWAITING_EXTERNAL = "awaiting_external"
    """Waiting for someone outside the company: a customer, a vendor, a credit bureau."""
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
    open_pages: list[OpenPage] = []
    """Pages waiting for an acknowledgement (a process that pages people says so)."""


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


class CaseBase:
    """State and behaviour every case shares; processes subclass ``CaseWorkflow``."""

    # -- declarations: what a process says about itself; the catalogue wires the rest --------

    case_type: ClassVar[str]
    """The process's name (``casework start <case_type>``) and the prefix of its case IDs."""
    description: ClassVar[str] = ""
    """What the process does, in one line for people (CLI help, the review queue)."""
    input_model: ClassVar[type[BaseModel]]
    """What a case starts from: an invalid input fails the case at start, naming the field."""
    business_key: ClassVar[str]
    """The field of ``input_model`` naming the business object. A case's ID is
    ``<case_type>-<value>``, so Temporal itself refuses a second open case for one object."""
    statuses: ClassVar[type[StrEnum] | None] = None
    """The process's own statuses (``paid``, ``resolved`` ...), beside ``CaseStatus``."""
    counts_as_case: ClassVar[bool] = True
    """False for helper workflows (the agent region) whose outcome and spend their parent case
    reports: they are then not counted as cases of their own by metrics and the KPI report."""

    @classmethod
    def case_id(cls, key: str) -> str:
        """The case ID of the business object ``key``."""
        return f"{cls.case_type}-{key}"

    @classmethod
    def case_id_for(cls, request: BaseModel) -> str:
        """The case ID a case started with ``request`` gets."""
        return cls.case_id(str(getattr(request, cls.business_key)))

    def __init__(self) -> None:
        # Each event as its JSON: a waiting case keeps its trail in a tenth of the memory the
        # models take; it is read back only when someone queries it.
        self._audit: list[str] = []
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
        self._baseline_patches: frozenset[str] | None = None

    def patched(self, patch_id: str) -> bool:
        """``workflow.patched(patch_id)``, except that a case started since a patch baseline holds
        the baseline's patches without recording each one (``casework.case.patches``)."""
        if self._baseline_patches is None:
            # Decided at the case's first check; a case started before every baseline records
            # none of them and goes on to check each patch on its own, as it always did.
            self._baseline_patches = next(
                (baseline.patches for baseline in BASELINES if workflow.patched(baseline.id)),
                frozenset(),
            )
        return patch_id in self._baseline_patches or workflow.patched(patch_id)

    def record(self, kind: AuditKind, summary: str, **data: Any) -> None:
        event = AuditEvent(
            seq=len(self._audit) + 1,
            at=workflow.now(),
            kind=kind,
            summary=summary,
            data=to_jsonable_python(data),
        )
        self._audit.append(event.model_dump_json())
        if self._metrics is None:
            self._metrics = CaseMetrics(self.case_type, self.counts_as_case)
        self._metrics.count(
            event,
            self._status,
            decided_automatically=not any(t.kind is TaskKind.APPROVAL for t in self._tasks),
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
        # Who submitted is named here for whoever reads the trail alone (visibility, reports).
        self.record(AuditKind.CASE_STARTED, started, input=request, submitted_by=submitted_by)

    def record_decision(self, decision: RoutedDecision[Any]) -> None:
        """Record what the policy decided, why, and under which text; its route is a fact."""
        self.record(AuditKind.POLICY_DECISION, decision.describe(), decision=decision)
        self._facts["route"] = decision.route.value

    def idempotency_key(self, step: str) -> str:
        """Derived from the business key, so a retried or replayed write happens once."""
        return f"{workflow.info().workflow_id}:{step}"

    @workflow.query(name="audit")
    def audit_trail(self) -> list[AuditEvent]:
        return [AuditEvent.model_validate_json(event) for event in self._audit]

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
            open_pages=self.open_pages(),
        )

    def open_pages(self) -> list[OpenPage]:
        """Pages waiting for an acknowledgement; a process that pages people overrides this."""
        return []

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

    async def load_governance(self, model: type[P]) -> tuple[P, PolicyRef]:
        """Load the case's policy (the document ``model.policy_id`` names, as ``model``) and the
        directory, through activities: the exact text decided under is then in the history, and
        the case keeps it for its whole life. The
        directory brings its users' public keys, which every decision's signature is checked
        against; an approval policy says whether the submitter may decide."""
        self._decisions_signed = self.patched(SIGNED_DECISIONS)
        self._strict_amounts = self.patched(EDITED_AMOUNT_RULES)
        policy_id = model.policy_id
        policy_lookup = PolicyLookup(policy_id=policy_id)
        directory_lookup = PolicyLookup(policy_id=DIRECTORY_ID)
        document, directory = await at_once_or_in_turn(
            self.patched(GOVERNANCE_LOADED_TOGETHER),
            lambda: self.call_tool(
                load_policy, policy_lookup, summary=f"loaded policy {policy_id}"
            ),
            lambda: self.call_tool(load_policy, directory_lookup, summary="loaded the directory"),
        )
        self._directory = parsed_once(Directory, directory.content)
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
        policy = parsed_once(model, document.content)
        if isinstance(policy, ApprovalPolicy):
            self._submitter_may_approve = policy.segregation_of_duties.submitter_may_approve
        return policy, document.ref

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

    async def made_anyway(
        self,
        lookup: Callable[..., Any],
        arg: Any,
        *,
        write: str,
        idempotency_key: str,
        pick: Callable[[Any], T | None],
        retry_policy: RetryPolicy = TOOL_RETRY,
        summary: str,
    ) -> T | None:
        """After the write ``write`` failed for good, whether its system made it anyway: every
        answer may have been lost after the system applied it. ``lookup`` is a read-only tool
        activity; ``pick`` finds in its answer the record the write made under
        ``idempotency_key`` (the case's own, so nothing else can have made it), or None. The
        audit trail says what was found. An ``ActivityError`` from the lookup is raised: what a
        system that cannot be read means is the process's to say."""
        answer = await self.call_tool(lookup, arg, retry_policy=retry_policy, summary=summary)
        found = pick(answer)
        self.record(
            AuditKind.WRITE_LOOKED_UP,
            f"{write} failed, yet {activity_name(lookup)} found it made under "
            f"{idempotency_key}: taken as made"
            if found is not None
            else f"{write} failed, and {activity_name(lookup)} found nothing made under "
            f"{idempotency_key}: taken as not made",
            activity=activity_name(lookup),
            idempotency_key=idempotency_key,
            found=found is not None,
        )
        return found

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
