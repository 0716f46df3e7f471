"""Why a person's decision or answer may not be accepted: the rules every human task shares.

Used by the update validators (refused before the decision reaches history) and by the signal
handlers (recorded in the audit trail and ignored), so both paths enforce the same rules. Pure:
no I/O, no clock.
"""

from __future__ import annotations

from decimal import Decimal

from casework.amounts import decimal_places, exact, minor_unit, money, size_problem
from casework.case.tasks import (
    DecisionAction,
    HumanTask,
    TaskAct,
    TaskActKind,
    TaskAnswer,
    TaskDecision,
    TaskKind,
    TaskStatus,
)
from casework.governance.models import ApprovalTier, Directory


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
    if problem := _assigned_elsewhere(directory, task, decision.approver):
        return [*reasons, problem]
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
    elif problem := _assigned_elsewhere(directory, task, answer.responder):
        reasons.append(problem)
    return reasons


def _assigned_elsewhere(directory: Directory, task: HumanTask, person: str) -> str | None:
    """Once a task is handed to a person, others of that tier leave it to them; a higher tier
    may still act on it."""
    if task.assignee is None or task.assignee == person:
        return None
    user = directory.users.get(person)
    tiers = task.eligible_roles
    higher_tier = (
        user is not None
        and user.role in tiers
        and task.role in tiers
        and tiers.index(user.role) > tiers.index(task.role)
    )
    if higher_tier:
        return None
    return f"task {task.task_id} is assigned to {task.assignee}"


def holds(directory: Directory, task: HumanTask, person: str) -> bool:
    """Whether ``person`` holds ``task``: it was handed to them, or it waits on their role."""
    if task.assignee is not None:
        return task.assignee == person
    user = directory.users.get(person)
    return user is not None and user.role == task.role


def act_refusal_reasons(
    directory: Directory,
    task: HumanTask | None,
    kind: TaskActKind,
    act: TaskAct,
    *,
    submitter_may_decide: bool = False,
) -> list[str]:
    """Why a reassignment, delegation or escalation may not be carried out; empty when it may.

    Reassign: someone who may act on the task hands it to another person or role eligible for
    it. Delegate: the person holding the task hands it to another eligible person. Escalate:
    someone who may act on an approval moves it to the next tier now. Each needs a reason.
    Never raises, whatever the act holds (signal handlers call it)."""
    if task is None:
        return ["there is no open task for this in the case"]
    if task.status is not TaskStatus.OPEN:
        return [f"task {task.task_id} is no longer open (it is {task.status.value})"]
    actor = directory.users.get(act.actor)
    if actor is None:
        return [f"unknown person {act.actor!r}"]
    reasons: list[str] = []
    if not act.reason.strip():
        reasons.append(f"a {kind.value} needs a reason saying why")
    if kind is TaskActKind.DELEGATE:
        if not holds(directory, task, act.actor):
            holder = task.assignee or f"the {task.role} role"
            reasons.append(
                f"{act.actor} does not hold task {task.task_id} (it is with {holder}), so "
                "cannot delegate it"
            )
    elif actor.role not in task.eligible_roles and task.assignee != act.actor:
        reasons.append(
            f"{act.actor} ({actor.role}) may not act on task {task.task_id}; it needs one of: "
            + ", ".join(task.eligible_roles)
        )
    if kind is TaskActKind.ESCALATE:
        if act.to_user is not None or act.to_role is not None:
            reasons.append("an escalation goes to the next tier: name no person or role")
        elif task.escalates_to is None:
            reasons.append(
                f"task {task.task_id} cannot be escalated: "
                + (
                    "a question has no tiers"
                    if task.kind is TaskKind.QUESTION
                    else "it is at the last tier its policy escalates to"
                )
            )
        return reasons
    return reasons + _handover_problems(
        directory, task, kind, act, submitter_may_decide=submitter_may_decide
    )


def _handover_problems(
    directory: Directory,
    task: HumanTask,
    kind: TaskActKind,
    act: TaskAct,
    *,
    submitter_may_decide: bool,
) -> list[str]:
    """Why the person or role a task is handed to may not take it."""
    if (act.to_user is None) == (act.to_role is None):
        if kind is TaskActKind.DELEGATE:
            return ["a delegation names the person it goes to (to_user) and no role"]
        return ["name either the person (to_user) or the role (to_role) it goes to"]
    if act.to_role is not None:
        if kind is TaskActKind.DELEGATE:
            return ["a delegation goes to a person, not a role: name to_user"]
        if act.to_role not in task.eligible_roles:
            return [
                f"role {act.to_role!r} may not act on task {task.task_id}; eligible: "
                + ", ".join(task.eligible_roles)
            ]
        if act.to_role == task.role and task.assignee is None:
            return [f"task {task.task_id} is already with the {task.role} role"]
        return []
    assert act.to_user is not None
    target = directory.users.get(act.to_user)
    if target is None:
        return [f"unknown person {act.to_user!r}"]
    if act.to_user == act.actor:
        return [f"{act.actor} cannot hand task {task.task_id} to themselves"]
    if act.to_user == task.assignee:
        return [f"task {task.task_id} is already assigned to {act.to_user}"]
    if target.role not in task.eligible_roles:
        return [
            f"{act.to_user} ({target.role}) is not eligible for task {task.task_id}; it needs "
            "one of: " + ", ".join(task.eligible_roles)
        ]
    if act.to_user == task.requested_by and not submitter_may_decide:
        return [f"{act.to_user} submitted this case and may not decide it (segregation of duties)"]
    return []
