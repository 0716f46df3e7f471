"""Case commands: start, show, approve, reject, inbox, audit. Each returns an exit code."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from casework import backlog
from casework import search_attributes as sa
from casework.audit import AuditChainError, AuditEvent, export_lines, verify_lines
from casework.cli.output import table, web_ui_link
from casework.config import Settings
from casework.converter import describe_validation_error
from casework.decisions import DecisionError, send_decision
from casework.policies.loader import load_policy
from casework.policies.models import Directory
from casework.processes import PROCESSES
from casework.signing import sign_decision
from casework.signing_keys import SigningKeyError, load_signing_key, signing_keys_dir
from casework.tasks import DecisionReceipt, HumanTask, TaskAnswer, TaskDecision, TaskKind
from casework.workflows.case import CaseState
from casework.workflows.ticket_triage import Acknowledgement


class CommandError(Exception):
    """A problem the user can fix; its message is printed as-is, with exit code 1."""


def read_input(raw: str) -> dict[str, Any]:
    """``--input`` is JSON, or ``@path`` to a JSON file."""
    source = "--input"
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.is_file():
            raise CommandError(f"--input file {path} does not exist")
        source, raw = str(path), path.read_text()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise CommandError(f"{source} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise CommandError(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


def link(settings: Settings, client: Client, case_id: str) -> str:
    return web_ui_link(settings.ui_url, client.namespace, case_id)


def validate_input(process_name: str, raw_input: str) -> BaseModel:
    """Check the input before anything is started, naming each field that is wrong."""
    try:
        return PROCESSES[process_name].input_model.model_validate(read_input(raw_input))
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error


async def start(
    client: Client,
    settings: Settings,
    process_name: str,
    request: BaseModel,
    case_id: str | None,
    wait: bool,
) -> int:
    process = PROCESSES[process_name]
    case_id = case_id or process.case_id(request)
    try:
        handle = await client.start_workflow(
            process.workflow_type,
            request,
            id=case_id,
            task_queue=settings.task_queue,
            # The ID is the business key: a running or finished case for the same object is
            # refused; only a failed one may be started again.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.CASE_TYPE, process.name)]
            ),
        )
    except WorkflowAlreadyStartedError as error:
        raise CommandError(
            f"case {case_id} already exists (a case per business object); "
            f"see it with: casework show {case_id}"
        ) from error
    print(f"started {case_id}")
    print(f"  Web UI: {link(settings, client, case_id)}")
    if wait:
        return await follow(client, handle)
    print(f"  follow: casework show {case_id}")
    return 0


async def follow(client: Client, handle: WorkflowHandle, timeout_seconds: float = 300) -> int:
    """Print status changes until the case finishes or waits for a person."""
    deadline = time.monotonic() + timeout_seconds
    last = ""
    while time.monotonic() < deadline:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return await print_outcome(handle, description.status)
        state = await handle.query("state", result_type=CaseState)
        if state.status != last:
            print(f"  ... {state.status}")
            last = state.status
        if state.open_task and state.open_task.kind is TaskKind.APPROVAL:
            task = state.open_task
            print(f"  waiting for {task.role} (due {task.due_at:%Y-%m-%d %H:%M} UTC):")
            print(f"    casework approve {handle.id} --as {eligible_users(task)}")
            return 0
        waiting_on = state.waiting_on or await _agent_waiting_on(client, state)
        if waiting_on:
            print(f"  waiting for {waiting_on}")
            return 0
        await asyncio.sleep(0.5)
    print(
        f"  still {last} after {timeout_seconds:.0f}s; check later with: casework show {handle.id}"
    )
    return 0


def directory_users(roles: Collection[str]) -> list[str]:
    """People holding any of ``roles``, from the directory this machine reads (for hints only:
    the case itself judges who may decide)."""
    directory = Directory.model_validate(load_policy("directory").content)
    return [name for name, user in directory.users.items() if user.role in roles]


def eligible_users(task: HumanTask) -> str:
    return "|".join(directory_users(task.eligible_roles)) or f"<{task.role}>"


async def drive_case(
    handle: WorkflowHandle,
    respond: Callable[[WorkflowHandle, CaseState], Awaitable[bool]],
    deadline_seconds: float = 180,
) -> None:
    """Play people's part in a case, printing its progress, until it ends or ``respond`` stops.

    ``respond`` is called whenever the case waits for people: it acts and returns True to go
    on, or returns False to leave the case waiting.
    """
    deadline = time.monotonic() + deadline_seconds
    last = ""
    while time.monotonic() < deadline:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            print(f"  {handle.id}: finished")
            return
        state = await handle.query("state", result_type=CaseState)
        if state.status != last:
            print(f"  {handle.id}: {state.status}")
            last = state.status
        if (state.open_task is not None or state.waiting_on) and not await respond(handle, state):
            return
        await asyncio.sleep(0.3)
    raise CommandError(
        f"{handle.id} did not progress within {deadline_seconds:.0f}s; "
        f"is the worker running? see: casework status, casework show {handle.id}"
    )


async def _agent_waiting_on(client: Client, state: CaseState) -> str | None:
    """A question the case's agent region is asking, if it is asking one."""
    region_id = state.facts.get("agent_region")
    if not region_id:
        return None
    region = client.get_workflow_handle(str(region_id))
    try:
        region_state = await region.query("state", result_type=CaseState)
    except RPCError:
        return None
    return region_state.waiting_on


async def print_outcome(handle: WorkflowHandle, status: WorkflowExecutionStatus | None) -> int:
    if status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        print(f"  {result['status']}: {result['message']}")
        return 0
    name = status.name.lower() if status else "unknown"
    print(f"  the case ended {name}; see: casework show {handle.id}")
    return 1


async def _describe(client: Client, case_id: str) -> tuple[WorkflowHandle, Any]:
    handle = client.get_workflow_handle(case_id)
    try:
        return handle, await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no case {case_id!r}; list waiting cases with: casework inbox"
            ) from error
        raise


async def show(client: Client, settings: Settings, case_id: str, as_json: bool) -> int:
    handle, description = await _describe(client, case_id)
    state = await handle.query("state", result_type=CaseState)
    result: Any = None
    failure: str | None = None
    if description.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
    elif description.status == WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except Exception as error:
            failure = _root_message(error)
    if as_json:
        print(
            json.dumps(
                {
                    "case_id": case_id,
                    "execution_status": description.status.name if description.status else None,
                    "state": state.model_dump(mode="json"),
                    "result": result,
                    "failure": failure,
                    "web_ui": link(settings, client, case_id),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    execution = description.status.name.lower() if description.status else "unknown"
    print(f"{state.title or case_id}  [{case_id}]")
    print(f"  case status:   {state.status} (workflow {execution})")
    for key, value in state.facts.items():
        print(f"  {key + ':':<14} {value}")
    open_tasks = state.open_tasks or ([state.open_task] if state.open_task else [])
    for task in open_tasks:
        # With parallel reviews open, a decision has to say which task it is for.
        task_flag = f" --task {task.task_id}" if len(open_tasks) > 1 else ""
        print(f"  open task:     {task.task_id}")
        print(f"    assigned to: {task.role} (may decide: {', '.join(task.eligible_roles)})")
        print(f"    due:         {task.due_at:%Y-%m-%d %H:%M} UTC")
        print("    summary:")
        for line in task.summary.splitlines():
            print(f"      {line}")
        if task.kind is TaskKind.QUESTION:
            print(f'    answer:      casework answer {case_id} --as <user>{task_flag} --text "..."')
        else:
            print(
                f"    decide:      casework approve {case_id} --as <user>{task_flag} "
                "[--comment ...]"
            )
    if result is not None:
        print(f"  result:        {result['message']}")
    if failure:
        print(f"  failed:        {failure}")
    print(f"  Web UI:        {link(settings, client, case_id)}")
    return 0


def _root_message(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error.message if isinstance(error, ApplicationError) else error)


def decision_of(
    approver: str, action: str, comment: str | None, amount: Decimal | None, task_id: str | None
) -> TaskDecision:
    try:
        return TaskDecision(
            approver=approver, action=action, comment=comment, amount=amount, task_id=task_id
        )
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error


def signing_key(settings: Settings, user: str) -> Ed25519PrivateKey:
    try:
        return load_signing_key(user, signing_keys_dir(settings.state_dir))
    except SigningKeyError as error:
        raise CommandError(str(error)) from error


def sign(settings: Settings, case_id: str, decision: TaskDecision) -> int:
    """Print ``decision`` signed for ``case_id``: the payload for ``temporal workflow signal``."""
    signed = sign_decision(decision, case_id, signing_key(settings, decision.approver))
    print(signed.model_dump_json(exclude_none=True))
    return 0


async def decide(client: Client, settings: Settings, case_id: str, decision: TaskDecision) -> int:
    key = signing_key(settings, decision.approver)
    try:
        receipt = await send_decision(client, case_id, decision, key)
    except DecisionError as error:
        raise CommandError(str(error)) from error
    print(receipt.message)
    return 0


async def answer(
    client: Client, case_id: str, responder: str, text: str, task_id: str | None = None
) -> int:
    """Answer the question an agent asked; CASE may be the case or its agent region."""
    handle, description = await _describe(client, case_id)
    state = await handle.query("state", result_type=CaseState)
    region_id = state.facts.get("agent_region")
    if (state.open_task is None or state.open_task.kind is not TaskKind.QUESTION) and region_id:
        handle, description = await _describe(client, str(region_id))
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise CommandError(f"case {case_id} has no question waiting for an answer")
    try:
        reply = TaskAnswer(responder=responder, text=text, task_id=task_id)
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error
    try:
        receipt = await handle.execute_update("answer", reply, result_type=DecisionReceipt)
    except WorkflowUpdateFailedError as error:
        raise CommandError(_root_message(error)) from error
    print(receipt.message)
    return 0


async def acknowledge(client: Client, case_id: str, responder: str) -> int:
    handle, description = await _describe(client, case_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise CommandError(f"case {case_id} is no longer running; nothing to acknowledge")
    try:
        message = await handle.execute_update(
            "acknowledge", Acknowledgement(responder=responder), result_type=str
        )
    except WorkflowUpdateFailedError as error:
        raise CommandError(_root_message(error)) from error
    print(message)
    return 0


async def inbox(client: Client, settings: Settings, role: str | None, as_json: bool) -> int:
    tasks = [
        item.task
        for item in await backlog.open_tasks(client)
        if role is None or item.task.role == role
    ]
    if as_json:
        print(json.dumps([task.model_dump(mode="json") for task in tasks], indent=2))
        return 0
    if not tasks:
        print("no cases awaiting approval" + (f" for {role}" if role else ""))
        return 0
    now = datetime.now(UTC)
    rows = [
        [
            task.case_id,
            task.kind.value,
            task.role,
            f"{task.amount:,.2f} {task.currency}" if task.currency else "-",
            f"{task.due_at:%Y-%m-%d %H:%M}",
            backlog.sla_state(task, now).value,
            task.requested_by,
        ]
        for task in tasks
    ]
    headers = ["case", "task", "assigned to", "amount", "due (UTC)", "SLA", "submitted by"]
    print(table(headers, rows))
    print(
        "\napprovals: casework approve CASE --as USER  |  casework reject CASE --as USER "
        '--comment ...\nquestions: casework answer CASE --as USER --text "..."'
    )
    return 0


def verify_audit(path: Path) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from error
    try:
        end = verify_lines(lines)
    except AuditChainError as error:
        raise CommandError(f"{path} does not verify: {error}") from error
    print(f"{path}: {end.count} events of {end.case_id} verified; chain head {end.hash}")
    return 0


async def audit(client: Client, case_id: str, as_jsonl: bool) -> int:
    handle, _ = await _describe(client, case_id)
    events = await handle.query("audit", result_type=list[AuditEvent])
    if as_jsonl:
        for line in export_lines(case_id, events):
            sys.stdout.write(line + "\n")
        return 0
    rows = [[str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.kind.value, e.summary] for e in events]
    print(table(["#", "at (UTC)", "kind", "summary"], rows))
    return 0


async def report(client: Client, as_json: bool) -> int:
    from casework.report import build, render_text

    result = await build(client)
    print(result.model_dump_json(indent=2) if as_json else render_text(result))
    return 0
