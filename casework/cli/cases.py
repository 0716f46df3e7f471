"""Case commands: start, show, approve, reject, signal, inbox, audit. Each returns an exit code."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import time
import unicodedata
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from casework import backlog
from casework import search_attributes as sa
from casework.audit import AuditChainError, AuditEvent, AuditKind, export_lines, verify_lines
from casework.backlog import (
    QUERY_TIMEOUT,
    UNREADABLE_ERRORS,
    execution_word,
    failure_text,
    shown_status,
    unreadable_reason,
)
from casework.case import CaseState
from casework.case.tasks import TaskAnswer, TaskDecision, TaskKind
from casework.catalogue import discover, workflow_type_of
from casework.cli.output import table, web_ui_link
from casework.config import Settings
from casework.converter import describe_validation_error
from casework.decisions import DecisionError, act_on, send_decision
from casework.signing import sign_decision
from casework.signing_keys import SigningKeyError, load_signing_key, signing_keys_dir
from casework.starting import InputProblem, case_input, directory, start_case

MAX_CASE_ID_BYTES = 1000
"""Temporal's default limit on a workflow ID (the server's ``limit.maxIDLength``)."""
_CASE_ID_FORBIDDEN = set("'\"`\\")
"""Quotes and backslashes: they would need escaping in visibility queries and shells alike."""


class CommandError(Exception):
    """A problem the user can fix; its message is printed as-is, with exit code 1."""


def command(*words: str) -> str:
    """A command line to print for people to copy: each word shell-quoted where it needs it."""
    return " ".join(shlex.quote(word) for word in words)


def check_case_id(case_id: str, source: str = "--id") -> str:
    """A case ID Temporal will take and every command can name: refused up front otherwise."""
    if not case_id:
        raise CommandError(f"{source} is empty")
    size = len(case_id.encode())
    if size > MAX_CASE_ID_BYTES:
        raise CommandError(
            f"{source} is {size:,} bytes long; a case ID is at most {MAX_CASE_ID_BYTES:,}"
        )
    bad = sorted(
        {
            char
            for char in case_id
            if char.isspace()
            or unicodedata.category(char).startswith("C")
            or char in _CASE_ID_FORBIDDEN
        }
    )
    if bad:
        raise CommandError(
            f"{source} {case_id[:60]!r} contains {', '.join(repr(char) for char in bad)}: a case "
            "ID has no spaces, control characters, quotes or backslashes"
        )
    return case_id


def read_input(raw: str) -> dict[str, Any]:
    """``--input`` is JSON, or ``@path`` to a JSON file."""
    source = "--input"
    if raw.startswith("@"):
        if not raw[1:]:
            raise CommandError("--input @ needs a file name after the @, e.g. --input @case.json")
        path = Path(raw[1:])
        if path.is_dir():
            raise CommandError(f"--input file {path} is a directory, not a JSON file")
        if not path.exists():
            raise CommandError(f"--input file {path} does not exist")
        try:
            source, raw = str(path), path.read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot read --input file {path}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise CommandError(f"--input file {path} is not UTF-8 text: {error}") from error
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
        return case_input(discover().process(process_name), read_input(raw_input))
    except InputProblem as error:
        raise CommandError(str(error)) from error


def case_id_of(process_name: str, request: BaseModel, given: str | None) -> str:
    """The case ID: ``--id`` if given, else the business key; checked before anything starts."""
    if given is not None:
        return check_case_id(given)
    return check_case_id(discover().process(process_name).case_id(request), "the derived case ID")


async def start(
    client: Client,
    settings: Settings,
    process_name: str,
    request: BaseModel,
    case_id: str,
    wait: bool,
) -> int:
    process = discover().process(process_name)
    try:
        handle = await start_case(client, process, request, case_id, settings.task_queue)
    except WorkflowAlreadyStartedError as error:
        raise CommandError(await _already_exists(client, case_id)) from error
    print(f"started {case_id}")
    print(f"  Web UI: {link(settings, client, case_id)}")
    if wait:
        return await follow(client, handle)
    print(f"  follow: {command('casework', 'show', case_id)}")
    return 0


async def _already_exists(client: Client, case_id: str) -> str:
    show = command("casework", "show", case_id)
    try:
        description = await client.get_workflow_handle(case_id).describe()
    except RPCError:
        return f"case {case_id} already exists (a case per business object); see: {show}"
    execution = execution_word(description.status)
    status = shown_status(description.typed_search_attributes.get(sa.CASE_STATUS), execution)
    if execution == "running":
        return f"case {case_id} already exists and is running ({status}); see: {show}"
    return (
        f"case {case_id} already exists and ended {status} (workflow {execution}): a business "
        f"object gets one case, and only a run that did not complete is started again. See: "
        f"{show}; for another case on the same object, give it its own --id"
    )


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
            users = directory_users(task.eligible_roles)
            print(f"    {command('casework', 'approve', handle.id, '--as', 'USER')}")
            print(
                f"    (USER: one of {', '.join(users)})" if users else f"    (USER: a {task.role})"
            )
            return 0
        waiting_on = state.waiting_on or await _agent_waiting_on(client, state)
        if waiting_on:
            print(f"  waiting for {waiting_on}")
            return 0
        await asyncio.sleep(0.5)
    print(
        f"  still {last} after {timeout_seconds:.0f}s; check later with: "
        + command("casework", "show", handle.id)
    )
    return 0


def directory_users(roles: Collection[str]) -> list[str]:
    """People holding any of ``roles``, from the directory this machine reads (for hints only:
    the case itself judges who may decide)."""
    return [name for name, user in directory().users.items() if user.role in roles]


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
        f"is the worker running? see: casework status, {command('casework', 'show', handle.id)}"
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
        print(f"  {result_summary(result)}")
        return 0
    print(
        f"  the case ended {execution_word(status)}; see: " + command("casework", "show", handle.id)
    )
    return 1


def result_summary(result: Any) -> str:
    """A case's result in one line: ``status: message`` for a case; an agent region, whose
    result has no message, by its outcome and reason."""
    if not isinstance(result, dict):
        return str(result)
    status = result.get("status") or result.get("outcome")
    message = result.get("message") or result.get("reason") or ""
    return f"{status}: {message}" if status else message


class CaseRuns:
    """The runs under one case ID (workflow ID), newest first."""

    def __init__(self, runs: list[WorkflowExecution]) -> None:
        self.runs = runs

    @classmethod
    async def of(cls, client: Client, case_id: str) -> CaseRuns:
        try:
            runs = [run async for run in client.list_workflows(f"WorkflowId = '{case_id}'")]
        except RPCError:
            runs = []
        runs.sort(key=lambda run: run.start_time, reverse=True)
        return cls(runs)

    def describe(self, run: WorkflowExecution) -> str:
        execution = execution_word(run.status)
        status = shown_status(run.typed_search_attributes.get(sa.CASE_STATUS), execution)
        return f"{run.run_id} started {run.start_time:%Y-%m-%d %H:%M:%S} UTC: {status}"

    def note(self, case_id: str, run_id: str | None, verb: str) -> list[str]:
        """Lines saying this case ID has several runs, and how to see the others."""
        others = [run for run in self.runs if run.run_id != run_id]
        if not others:
            return []
        latest = self.runs[0].run_id == run_id
        lines = [
            f"{len(self.runs)} runs under this case ID; shown: "
            + ("the latest" if latest else f"run {run_id}")
            + ". The others:"
        ]
        lines += [f"  {self.describe(run)}" for run in others]
        lines.append(f"  see one with: {command('casework', verb, case_id, '--run', 'RUN_ID')}")
        return lines


async def _describe(
    client: Client, case_id: str, run_id: str | None = None
) -> tuple[WorkflowHandle, WorkflowExecutionDescription]:
    handle = client.get_workflow_handle(case_id, run_id=run_id)
    try:
        return handle, await handle.describe()
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            what = f"run {run_id} of case {case_id!r}" if run_id else f"case {case_id!r}"
            raise CommandError(f"no {what}; list waiting cases with: casework inbox") from error
        raise


async def _ending(handle: WorkflowHandle, execution: str) -> tuple[Any, str | None]:
    """(result, None) for a completed case; (None, why) for one that ended otherwise."""
    if execution == "running":
        return None, None
    try:
        result = await handle.result(follow_runs=False)
    except WorkflowFailureError as error:
        return None, failure_text(error)
    except WorkflowContinuedAsNewError as error:
        return None, f"continued as run {error.new_execution_run_id}"
    except UNREADABLE_ERRORS as error:
        return None, f"(its result cannot be read: {unreadable_reason(error)})"
    return result, None


async def show(
    client: Client, settings: Settings, case_id: str, as_json: bool, run_id: str | None = None
) -> int:
    handle, description = await _describe(client, case_id, run_id)
    runs = await CaseRuns.of(client, case_id)
    execution = execution_word(description.status)
    running = execution == "running"
    case_status = description.typed_search_attributes.get(sa.CASE_STATUS)
    state: CaseState | None = None
    unreadable: str | None = None
    try:
        state = await handle.query("state", result_type=CaseState, rpc_timeout=QUERY_TIMEOUT)
        case_status = state.status
    except UNREADABLE_ERRORS as error:
        unreadable = unreadable_reason(error)
    status = shown_status(case_status, execution)
    result, ending = await _ending(handle, execution)
    # A case that ended before it could answer (its input failed to decode) is explained by
    # its ending; one that cannot answer otherwise is named unreadable.
    unexplained = unreadable if running or not ending else None
    # A closed case has no open task, whatever it was waiting for when it ended.
    listed = (state.open_tasks or [t for t in [state.open_task] if t]) if state else []
    open_tasks = listed if running else []
    if as_json:
        print(
            json.dumps(
                {
                    "case_id": case_id,
                    "run_id": description.run_id,
                    "execution_status": description.status.name if description.status else None,
                    "status": status,
                    "state": state.model_dump(mode="json") if state else None,
                    "open_tasks": [task.model_dump(mode="json") for task in open_tasks],
                    "result": result,
                    "failure": ending,
                    "unreadable": unexplained,
                    "runs": [
                        {
                            "run_id": run.run_id,
                            "execution_status": execution_word(run.status),
                            "started_at": run.start_time.isoformat(),
                        }
                        for run in runs.runs
                    ],
                    "web_ui": link(settings, client, case_id),
                },
                indent=2,
                default=str,
            )
        )
        return 1 if unexplained else 0
    title = state.title if state and state.title else description.workflow_type
    print(f"{title}  [{case_id}]")
    if status == case_status or not case_status:
        print(f"  case status:   {status} (workflow {execution})")
    else:
        ended = f"was {execution}" if execution in ("terminated", "cancelled") else execution
        print(f"  case status:   {status} (it was {case_status} when its workflow {ended})")
    for line in runs.note(case_id, description.run_id, "show"):
        print(f"  {line}")
    for key, value in (state.facts if state else {}).items():
        print(f"  {key + ':':<14} {value}")
    for task in [] if running else listed:
        print(
            f"  task {task.task_id} ({task.role}) was open when the case ended; nothing to decide"
        )
    for task in open_tasks:
        # With parallel reviews open, a decision has to say which task it is for.
        task_flag = ["--task", task.task_id] if len(open_tasks) > 1 else []
        print(f"  open task:     {task.task_id}")
        print(f"    assigned to: {task.role} (may decide: {', '.join(task.eligible_roles)})")
        print(f"    due:         {task.due_at:%Y-%m-%d %H:%M} UTC")
        print("    summary:")
        for line in task.summary.splitlines():
            print(f"      {line}")
        if task.kind is TaskKind.QUESTION:
            answer = command("casework", "answer", case_id, "--as", "USER", *task_flag)
            print(f'    answer:      {answer} --text "..."')
        else:
            decide = command("casework", "approve", case_id, "--as", "USER", *task_flag)
            print(f"    decide:      {decide} [--comment ...]")
    if result is not None:
        print(f"  result:        {result_summary(result)}")
    if ending:
        print(f"  {execution + ':':<14} {ending}")
    if unexplained:
        print(f"  unreadable:    the case cannot answer queries: {unexplained}")
    print(f"  Web UI:        {link(settings, client, case_id)}")
    return 1 if unexplained else 0


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
    client: Client,
    settings: Settings,
    case_id: str,
    responder: str,
    text: str,
    task_id: str | None = None,
) -> int:
    """Answer the question an agent asked, signed with the responder's key; CASE may be the
    case or its agent region."""
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
    key = signing_key(settings, responder)
    try:
        receipt = await act_on(handle, "answer", reply, key)
    except DecisionError as error:
        raise CommandError(str(error)) from error
    print(receipt.message)
    return 0


def handlers_of(case_id: str, workflow_type: str) -> workflow._Definition:
    """The signals, updates and queries of the case's workflow, as its class in the catalogue
    declares them: found by the workflow type the case runs, never imported by name."""
    catalogue = discover()
    for cls in catalogue.workflows:
        if workflow_type_of(cls) == workflow_type:
            return workflow._Definition.must_from_class(cls)
    raise CommandError(
        f"case {case_id} runs workflow {workflow_type}, which this installation's catalogue "
        f"({', '.join(catalogue.packages)}) does not define; run casework where its process is "
        "installed"
    )


async def _running(
    client: Client, case_id: str, refusal: str
) -> tuple[WorkflowHandle, WorkflowExecutionDescription]:
    """A running case; ``refusal`` says what a closed one cannot take."""
    handle, description = await _describe(client, case_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise CommandError(f"case {case_id} is no longer running; {refusal}")
    return handle, description


async def acknowledge(client: Client, settings: Settings, case_id: str, responder: str) -> int:
    """Acknowledge a page through the case's ``acknowledge`` update, whatever its process: its
    input is the model the update declares, with ``responder`` the person acknowledging, who
    signs it with their key."""
    handle, description = await _running(client, case_id, "nothing to acknowledge")
    workflow_type = description.workflow_type
    updates = handlers_of(case_id, workflow_type).updates
    update = updates.get("acknowledge")
    if update is None:
        steps = sorted(name for name in updates if name)
        raise CommandError(
            f"case {case_id} ({workflow_type}) has no acknowledge step: nobody was "
            f"paged by it. Its process takes: {', '.join(steps)}"
        )
    model = update.arg_types[0] if update.arg_types and len(update.arg_types) == 1 else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise CommandError(
            f"the acknowledge step of {workflow_type} does not take one pydantic model "
            f"(it takes {update.arg_types}); acknowledge it with `temporal workflow update`"
        )
    try:
        acknowledgement = model.model_validate({"responder": responder})
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error
    key = signing_key(settings, responder)
    try:
        message = await act_on(handle, "acknowledge", acknowledgement, key, update.ret_type)
    except DecisionError as error:
        raise CommandError(str(error)) from error
    print(message)
    return 0


SIGNAL_VERDICT_SECONDS = 15.0
"""How long ``casework signal`` waits for the case to record what it made of a signal."""
_CONFIRMING = "confirming"
"""Marks a message the case still checks with its source: its verdict follows."""
_ACCEPTED = "accepted"
"""False on a message the case recorded and ignored."""


async def signal(
    client: Client,
    case_id: str,
    name: str,
    payload: dict[str, Any],
    timeout_seconds: float = SIGNAL_VERDICT_SECONDS,
) -> int:
    """Send the signal ``name`` to a running case and print what the case recorded of it.

    Only a signal the case's workflow defines is sent. The case judges the payload itself: one
    it cannot use is recorded and ignored, which is reported as an error here."""
    handle, description = await _running(client, case_id, "it takes no signals")
    workflow_type = description.workflow_type
    signals = handlers_of(case_id, workflow_type).signals
    if name not in signals and None not in signals:
        raise CommandError(
            f"case {case_id} ({workflow_type}) has no signal {name!r}; it takes: "
            + ", ".join(sorted(defined for defined in signals if defined))
        )
    try:
        before = await handle.query(
            "audit", result_type=list[AuditEvent], rpc_timeout=QUERY_TIMEOUT
        )
        unreadable = None
    except UNREADABLE_ERRORS as error:
        before, unreadable = [], unreadable_reason(error)
    await handle.signal(name, payload)
    print(f"sent {name} to {case_id}")
    follow = command("casework", "audit", case_id)
    if unreadable is not None:
        print(f"  the case cannot answer queries now ({unreadable}); later, see: {follow}")
        return 0
    seen = before[-1].seq if before else 0
    recorded = await _recorded_since(handle, seen, timeout_seconds)
    for event in recorded:
        print(f"  recorded: {event.kind.value}: {event.summary}")
    ignored = [
        event
        for event in recorded
        if event.kind is AuditKind.DECISION_REFUSED or event.data.get(_ACCEPTED) is False
    ]
    if ignored:
        raise CommandError(f"{case_id} ignored the {name} signal: {ignored[0].summary}")
    if not recorded:
        print(f"  the case has recorded nothing of it within {timeout_seconds:.0f}s; see: {follow}")
    elif recorded[-1].data.get(_CONFIRMING):
        print(f"  it counts once confirmed with its source; follow: {follow}")
    return 0


async def _recorded_since(
    handle: WorkflowHandle, seq: int, timeout_seconds: float
) -> list[AuditEvent]:
    """The audit events after ``seq``, once the newest is a verdict rather than a message still
    being confirmed; what there is when ``timeout_seconds`` run out."""
    deadline = time.monotonic() + timeout_seconds
    new: list[AuditEvent] = []
    while True:
        try:
            events = await handle.query(
                "audit", result_type=list[AuditEvent], rpc_timeout=QUERY_TIMEOUT
            )
        except UNREADABLE_ERRORS:
            return new
        new = [event for event in events if event.seq > seq]
        if (new and not new[-1].data.get(_CONFIRMING)) or time.monotonic() >= deadline:
            return new
        await asyncio.sleep(0.2)


async def inbox(client: Client, settings: Settings, role: str | None, as_json: bool) -> int:
    roles = backlog.known_roles(directory())
    if role is not None and role not in roles:
        raise CommandError(f"no role {role!r} in the directory; roles: {', '.join(sorted(roles))}")
    found = await backlog.open_tasks(client)
    tasks = [
        item.task for item in (found.tasks if role is None else backlog.for_role(role, found.tasks))
    ]
    for case_id, reason in sorted(found.unreadable.items()):
        print(
            f"casework: left out {case_id}, which cannot be read: {reason} "
            f"(see: {command('casework', 'show', case_id)})",
            file=sys.stderr,
        )
    if as_json:
        print(json.dumps([task.model_dump(mode="json") for task in tasks], indent=2))
        return 0
    if not tasks:
        print("no cases awaiting approval" + (f" that {role} may decide" if role else ""))
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


def verify_audit(path: Path, case_id: str | None = None) -> int:
    """Check an exported trail; with ``case_id``, also that it is that case's trail."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from error
    try:
        end = verify_lines(lines)
    except AuditChainError as error:
        raise CommandError(f"{path} does not verify: {error}") from error
    if case_id is not None and end.case_id != case_id:
        raise CommandError(
            f"{path} is the audit trail of {end.case_id}, not of {case_id} "
            f"(its own chain is intact: {end.count} events, chain head {end.hash})"
        )
    print(f"{path}: {end.count} events of {end.case_id} verified; chain head {end.hash}")
    return 0


async def audit(client: Client, case_id: str, as_jsonl: bool, run_id: str | None = None) -> int:
    handle, description = await _describe(client, case_id, run_id)
    try:
        events = await handle.query(
            "audit", result_type=list[AuditEvent], rpc_timeout=QUERY_TIMEOUT
        )
    except UNREADABLE_ERRORS as error:
        raise CommandError(
            f"the audit trail of {case_id} cannot be read: {unreadable_reason(error)}; "
            f"see: {command('casework', 'show', case_id)}"
        ) from error
    note = (await CaseRuns.of(client, case_id)).note(case_id, description.run_id, "audit")
    if as_jsonl:
        for line in note:
            # On stderr: the export itself stays one chained trail, of this run.
            print(f"casework: {line}", file=sys.stderr)
        for line in export_lines(case_id, events):
            sys.stdout.write(line + "\n")
        return 0
    for line in note:
        print(line)
    rows = [[str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.kind.value, e.summary] for e in events]
    print(table(["#", "at (UTC)", "kind", "summary"], rows))
    return 0


async def report(client: Client, as_json: bool) -> int:
    from casework.report import build, render_text

    result = await build(client)
    print(result.model_dump_json(indent=2) if as_json else render_text(result))
    return 0
