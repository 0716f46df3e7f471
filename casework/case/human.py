"""Human tasks: approvals by tier with SLA escalation, questions to people, signed decisions.

Waiting for a person is a durable wait: it costs nothing however long they take. A decision
arrives as the ``decide`` update (validated before it reaches history) or signal (recorded and
ignored when invalid); an answer to an agent's question as ``answer``. A case may hold several
open tasks at once (parallel reviews); a decision names its task, or goes to the one open task
its sender may decide. Besides deciding, people hand a task on (``reassign``, ``delegate``) or
escalate it now (``escalate``). Everything a person sends is signed and checked here, by the
case, before what they may do is considered.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from casework.amounts import exact
    from casework.audit import (
        AuditKind,
    )
    from casework.case.refusals import (
        act_refusal_reasons,
        answer_refusal_reasons,
        eligible_roles,
        refusal_reasons,
    )
    from casework.case.tasks import (
        DecisionAction,
        DecisionReceipt,
        HumanTask,
        TaskAct,
        TaskActKind,
        TaskAnswer,
        TaskDecision,
        TaskKind,
        TaskStatus,
    )
    from casework.governance.models import (
        ApprovalTier,
    )
    from casework.signing import act_signature_refusal, signature_refusal


from casework.case.base import (
    CaseBase,
    CaseStatus,
    refuse_update,
    wait_within,
)
from casework.case.patches import SIGNED_ANSWERS, TASK_ACTS


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


class HumanTasks(CaseBase):
    """Opening tasks for people, and taking their decisions and answers."""

    def __init__(self) -> None:
        super().__init__()
        self._task_acts = False
        self._signed_questions: set[str] = set()
        self._escalated_now: set[str] = set()

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
            # An escalation sent by a person ends the wait early; only tasks opened since
            # ``task-acts`` accept one, so older cases wait exactly as they did.
            decided = await wait_within(
                lambda task=task: task.decision is not None or task.task_id in self._escalated_now,
                request.tiers[tier].sla,
            )
            if decided and task.decision is not None:
                return ApprovalOutcome(task=task, decision=task.decision)
            if decided:
                tier += 1
                continue
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

    def _new_task(self, kind: TaskKind, sla: timedelta, **fields: Any) -> HumanTask:
        """A new open task: numbered per case, due ``sla`` from now."""
        now = workflow.now()
        case_id = workflow.info().workflow_id
        self._task_acts = self.patched(TASK_ACTS)
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
        if self._task_acts and request.escalate and tier + 1 < len(request.tiers):
            task.escalates_to = request.tiers[tier + 1].role
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

    def act_signature_refusals(self, act_name: str, act: Any, signer: str) -> list[str]:
        """Why ``act`` (an answer, acknowledgement, reassignment ...) is not provably
        ``signer``'s for this case and step, or was already used; empty when it is both."""
        if self._directory is None:
            return ["the case has not loaded its directory yet"]
        case_id = workflow.info().workflow_id
        # As for decisions: cryptography's exceptions must be importable in the sandbox.
        with workflow.unsafe.imports_passed_through():
            reason = act_signature_refusal(
                act_name, case_id, act, signer, self._directory.public_keys
            )
        if reason:
            return [reason]
        if act.nonce in self._used_nonces:
            return [f"this signed {act_name} was already used on this case (a replay)"]
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
        signed = self.patched(SIGNED_ANSWERS)
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
        if signed:
            self._signed_questions.add(task.task_id)
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
        signed = task is not None and task.task_id in self._signed_questions
        if signed and (unproven := self.act_signature_refusals("answer", answer, answer.responder)):
            return unproven
        return ambiguity or answer_refusal_reasons(self._directory, task, answer)

    def _accept_answer(self, answer: TaskAnswer) -> DecisionReceipt:
        task, _ = self._task_for(TaskKind.QUESTION, answer.task_id, answer.responder)
        assert task is not None
        task.answer = answer
        task.status = TaskStatus.DECIDED
        if answer.nonce:
            self._used_nonces.add(answer.nonce)
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

    # -- handing a task on, escalating it now --------------------------------------------------

    def _act_task(self, act: TaskAct) -> tuple[HumanTask | None, list[str]]:
        """The task ``act`` is for: the one it names, or the one open task its actor may act on."""
        if act.task_id:
            named = next((task for task in self._tasks if task.task_id == act.task_id), None)
            return named, [] if named else [f"this case has no task {act.task_id}"]
        assert self._directory is not None
        user = self._directory.users.get(act.actor)
        mine = [
            task
            for task in self.open_tasks()
            if user is not None and (user.role in task.eligible_roles or task.assignee == act.actor)
        ]
        if len(mine) == 1:
            return mine[0], []
        if not mine:
            return None, [f"{act.actor} may act on no open task of this case"]
        return None, [
            "several open tasks could be meant; name one with task_id: "
            + ", ".join(task.task_id for task in mine)
        ]

    def _act_refusals(self, kind: TaskActKind, act: TaskAct) -> list[str]:
        if self._directory is None:
            return ["the case has not loaded its directory yet"]
        if not self._task_acts:
            return [
                f"this case opened its tasks before they could be handed on or escalated from "
                f"the queue: it takes decisions only, so `{kind.value}` is refused"
            ]
        if unproven := self.act_signature_refusals(kind.value, act, act.actor):
            return unproven
        task, ambiguity = self._act_task(act)
        return ambiguity or act_refusal_reasons(
            self._directory,
            task,
            kind,
            act,
            submitter_may_decide=self._submitter_may_approve,
        )

    async def _accept_act(self, kind: TaskActKind, act: TaskAct) -> DecisionReceipt:
        task, _ = self._act_task(act)
        assert task is not None and self._directory is not None
        if act.nonce:
            self._used_nonces.add(act.nonce)
        why = act.reason.strip()
        if kind is TaskActKind.ESCALATE:
            assert task.escalates_to is not None
            task.status = TaskStatus.ESCALATED
            self._escalated_now.add(task.task_id)
            message = f"{act.actor} escalated {task.task_id} to {task.escalates_to}: {why}"
            self.record(
                AuditKind.TASK_ESCALATED,
                message,
                task_id=task.task_id,
                from_role=task.role,
                to_role=task.escalates_to,
                by=act.actor,
                reason=why,
                act=act,
            )
        else:
            before = task.assignee or task.role
            if act.to_user is not None:
                task.assignee = act.to_user
                task.role = self._directory.users[act.to_user].role
            else:
                assert act.to_role is not None
                task.assignee = None
                task.role = act.to_role
            after = task.assignee or task.role
            verb = "delegated" if kind is TaskActKind.DELEGATE else "reassigned"
            message = f"{act.actor} {verb} {task.task_id} from {before} to {after}: {why}"
            self.record(
                AuditKind.TASK_REASSIGNED,
                message,
                task_id=task.task_id,
                act_kind=kind.value,
                by=act.actor,
                from_assignee=before,
                to_assignee=after,
                role=task.role,
                reason=why,
                act=act,
            )
            self.set_status(self._status, approver_role=task.role)
            await self._tell_new_holder(
                task, message, f"{task.task_id}:{kind.value}-{len(self._audit)}"
            )
        return DecisionReceipt(
            task_id=task.task_id, action=kind.value, approver=act.actor, message=message
        )

    async def _tell_new_holder(self, task: HumanTask, message: str, step: str) -> None:
        """Notify whoever now holds ``task``. Best effort: the handover stands either way (a
        failed notification is in the audit trail, and the task in the queue)."""
        subject, body = f"Task for you: {task.title}", f"{message}\n\n{task.summary}"
        try:
            if task.assignee is not None:
                await self.notify(task.assignee, subject, body, step)
            else:
                await self.notify_role(task.role, subject, body, step)
        except ActivityError:
            pass

    def _act_by_signal(self, kind: TaskActKind, payloads: tuple[Any, ...]) -> TaskAct | None:
        """A signalled act to carry out, or None when it was malformed or refused (recorded)."""
        act = self.signal_input(kind.value, TaskAct, payloads)
        if act is None:
            return None
        reasons = self._act_refusals(kind, act)
        return None if self.ignore_signal(kind.value, act.actor, reasons, act=act) else act

    @workflow.update(name="reassign")
    async def reassign(self, act: TaskAct) -> DecisionReceipt:
        return await self._accept_act(TaskActKind.REASSIGN, act)

    @reassign.validator
    def validate_reassign(self, act: TaskAct) -> None:
        refuse_update("reassignment", self._act_refusals(TaskActKind.REASSIGN, act))

    @workflow.signal(name="reassign")
    async def reassign_by_signal(self, *payloads: Any) -> None:
        if act := self._act_by_signal(TaskActKind.REASSIGN, payloads):
            await self._accept_act(TaskActKind.REASSIGN, act)

    @workflow.update(name="delegate")
    async def delegate(self, act: TaskAct) -> DecisionReceipt:
        return await self._accept_act(TaskActKind.DELEGATE, act)

    @delegate.validator
    def validate_delegate(self, act: TaskAct) -> None:
        refuse_update("delegation", self._act_refusals(TaskActKind.DELEGATE, act))

    @workflow.signal(name="delegate")
    async def delegate_by_signal(self, *payloads: Any) -> None:
        if act := self._act_by_signal(TaskActKind.DELEGATE, payloads):
            await self._accept_act(TaskActKind.DELEGATE, act)

    @workflow.update(name="escalate")
    async def escalate(self, act: TaskAct) -> DecisionReceipt:
        return await self._accept_act(TaskActKind.ESCALATE, act)

    @escalate.validator
    def validate_escalate(self, act: TaskAct) -> None:
        refuse_update("escalation", self._act_refusals(TaskActKind.ESCALATE, act))

    @workflow.signal(name="escalate")
    async def escalate_by_signal(self, *payloads: Any) -> None:
        if act := self._act_by_signal(TaskActKind.ESCALATE, payloads):
            await self._accept_act(TaskActKind.ESCALATE, act)
