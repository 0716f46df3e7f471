"""Sending a person's decision to a case: the one path the CLI and the review queue share.

Decisions go as the validated ``decide`` update, so a refused one never reaches the case's
history and the sender learns why at once. It is signed here with the approver's key (the case
refuses unsigned ones), so every way of deciding signs the same way. Every other act a person
sends (answer, acknowledge, reassign, delegate, escalate) goes the same way: :func:`send_act`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from casework.case.tasks import DecisionReceipt, TaskDecision
from casework.signing import sign_act, sign_decision

R = TypeVar("R")


class DecisionError(Exception):
    """The decision was not recorded; ``reasons`` says why, one reason per entry."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or [message]


class CaseNotFound(DecisionError):
    pass


class CaseClosed(DecisionError):
    pass


class DecisionRefused(DecisionError):
    """The case refused the decision (wrong role, over the limit, the submitter, task closed)."""


async def running_case(client: Client, case_id: str) -> WorkflowHandle:
    handle = client.get_workflow_handle(case_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CaseNotFound(
                f"no case {case_id!r}; list waiting cases with: casework inbox"
            ) from error
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise CaseClosed(f"case {case_id} is no longer running; nothing to decide")
    return handle


async def send_decision(
    client: Client, case_id: str, decision: TaskDecision, key: Ed25519PrivateKey
) -> DecisionReceipt:
    """Sign ``decision`` with the approver's ``key`` and send it to the case as the ``decide``
    update; raise :class:`DecisionError` if it is not recorded."""
    return await decide_on(await running_case(client, case_id), decision, key)


async def decide_on(
    handle: WorkflowHandle, decision: TaskDecision, key: Ed25519PrivateKey
) -> DecisionReceipt:
    """:func:`send_decision` to a case the caller already holds a handle on."""
    signed = sign_decision(decision, handle.id, key)
    try:
        return await handle.execute_update("decide", signed, result_type=DecisionReceipt)
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(*refusal(error)) from error


async def send_act(
    client: Client,
    case_id: str,
    act_name: str,
    act: BaseModel,
    key: Ed25519PrivateKey,
    result_type: type[R] = DecisionReceipt,  # type: ignore[assignment]
) -> R:
    """Sign ``act`` with its sender's ``key`` for the ``act_name`` step of a running case and
    send it as that update; raise :class:`DecisionError` if it is not carried out."""
    handle = await running_case(client, case_id)
    return await act_on(handle, act_name, act, key, result_type)


async def act_on(
    handle: WorkflowHandle,
    act_name: str,
    act: BaseModel,
    key: Ed25519PrivateKey,
    result_type: type[Any] = DecisionReceipt,
) -> Any:
    """:func:`send_act` to a case the caller already holds a handle on."""
    signed = sign_act(act_name, act, handle.id, key)
    try:
        return await handle.execute_update(act_name, signed, result_type=result_type)
    except WorkflowUpdateFailedError as error:
        raise DecisionRefused(*refusal(error)) from error


def refusal(error: BaseException) -> tuple[str, list[str]]:
    """The message and the separate reasons of a refused update."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, ApplicationError):
        details = list(error.details)
        reasons = [str(r) for r in details[0]] if details and isinstance(details[0], list) else []
        return error.message, reasons or [error.message]
    return str(error), [str(error)]
