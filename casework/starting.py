"""Starting a case, the same way from the CLI, the intake service and a schedule.

A case's input is checked before anything starts (naming each field that is wrong, and whether
who submits is in the directory), and a case is started under its business key with the same
ID policies and search attributes wherever it comes from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from casework import search_attributes as sa
from casework.catalogue import Process
from casework.converter import describe_validation_error
from casework.governance.loader import load_policy
from casework.governance.models import Directory


class InputProblem(ValueError):
    """A case input that cannot start a case; the message names the field."""


def directory() -> Directory:
    """The approval directory as this machine reads it (the worker reads the same files)."""
    return Directory.model_validate(load_policy("directory").content)


def case_input(process: Process, payload: Any) -> BaseModel:
    """``payload`` as ``process``'s input, or ``InputProblem`` naming each field that is wrong.
    Who submits must be in the directory: the case checks that too, but only after it started."""
    model = process.input_model
    try:
        request = model.model_validate(payload)
    except ValidationError as error:
        raise InputProblem(describe_validation_error(error)) from error
    submitter = getattr(request, "submitted_by", None)
    users = directory().users
    if submitter is not None and submitter not in users:
        raise InputProblem(
            f"invalid {model.__name__}: submitted_by: {submitter!r} is not in the approval "
            f"directory (users: {', '.join(sorted(users))})"
        )
    return request


def case_search_attributes(process: Process) -> TypedSearchAttributes:
    """What a case carries from its start, so the inbox and lists find it before it runs."""
    return TypedSearchAttributes([SearchAttributePair(sa.CASE_TYPE, process.name)])


async def start_case(
    client: Client, process: Process, request: BaseModel, case_id: str, task_queue: str
) -> WorkflowHandle[Any, Any]:
    """Start a case; ``WorkflowAlreadyStartedError`` when its business object has one."""
    return await client.start_workflow(
        process.workflow_type,
        request,
        id=case_id,
        task_queue=task_queue,
        # The ID is the business key. A case still running is never started twice (FAIL),
        # and one that ended is started again only if its last run did not complete: a
        # failed, terminated, cancelled or timed-out run is retried by starting anew, but a
        # completed one (paid, rejected, even failed_compensated, which a person must look
        # at) is not repeated by accident.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=case_search_attributes(process),
    )
