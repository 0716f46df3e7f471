"""The bad-input matrix: garbage in, a clear error out, and nothing changed.

Each row sends one bad thing the way a person would (the ``casework`` CLI, the plain
``temporal`` CLI, a policy file edited by hand), records what the person saw, and checks that
nothing changed: the sandbox's ledger for the case, the case's state and open tasks, its history
(the same length for everything refused before it reaches history; for a signal, which cannot be
refused, only the signal and the workflow task that recorded and ignored it), no workflow task
failure, and no case started where none should be.

Rows are generated per process from its input model and its case driver, so a new process gets
its rows by being in ``reliability.drivers.DRIVERS``. Amounts nobody could mean (``1e400``), finer
than the currency (``0.001``) and written the European or American way (``12.600,00``,
``12,600.00``) go through every path: ``casework approve`` and ``sign``, the ``decide`` update and
signal, and the review queue (``casework ui``, driven over HTTP as a browser would).
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import annotated_types
import httpx
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from bench.infra import progress
from casework.amounts import minor_unit
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.case.tasks import MAX_COMMENT_CHARS, HumanTask, TaskDecision
from casework.catalogue import discover
from casework.governance.loader import catalogue_policy_dir
from casework.testing.scripted_llm import ScriptedReply
from casework.testing.signing import signed_as_sent
from casework.testing.stack import free_port
from casework.web.auth import Credentials
from reliability.drivers import DRIVERS
from reliability.drivers.base import CaseDriver, Ledger, PlannedCase, directory
from reliability.stack import NAMESPACE, Stack, running_stack
from reliability.suite import CI, Run

CASEWORK = Path(sys.executable).parent / "casework"
TEMPORAL = Path(sys.executable).parent / "temporal"
COMMAND_TIMEOUT = 90.0
COMMANDS_AT_ONCE = 3
"""CLI and worker processes the matrix runs at a time. Each is mostly start-up (imports), so
more at once is no faster on a small machine; it only starves the stack's worker, whose
workflow tasks then time out (CI saw one after 10 s with every group's commands running)."""
SIGNAL_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}
TASK_TIMED_OUT = EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
OVERSIZED = "x" * (MAX_COMMENT_CHARS + 1)


GROUPS = [
    "invalid case input",
    "unknown process name",
    "unknown IDs",
    "second start",
    "decision (",
    "decision by update",
    "update with a malformed body",
    "malformed signal",
    "refused signal",
    "review queue",
    "signal payload shape",
    "policy file",
]
HUGE = "1e400"
FINER_THAN_A_CENT = "0.001"
EUROPEAN = "12.600,00"
AMERICAN = "12,600.00"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
REFUSED = re.compile(r'<div class="refused"[^>]*>(.*?)</div>', re.S)


@dataclass
class Row:
    group: str
    sent: str
    saw: str = ""
    unchanged: str = ""
    passed: bool = False
    why: str = ""


@dataclass
class Snapshot:
    exists: bool
    events: list[int] = field(default_factory=list)
    status: str = ""
    tasks: list[tuple[str, str]] = field(default_factory=list)
    audit: list[AuditEvent] = field(default_factory=list)
    ledger: Ledger | None = None


def _short(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(argv: list[str]) -> str:
    parts = []
    for arg in argv:
        if len(arg) > 60:
            arg = f"<{len(arg):,} chars>" if arg.count("x") > 1000 else arg[:57] + "..."
        parts.append(f"'{arg}'" if any(c in arg for c in ' {["') else arg)
    return " ".join(parts)


class ReviewQueue:
    """``casework ui`` on the matrix's stack, driven over HTTP as a browser would: each person
    signs in once, and every decision carries the form's CSRF token."""

    def __init__(self, env: dict[str, str], state_dir: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = env | {"CASEWORK_REVIEW_URL": self.url}
        self.credentials = Credentials(state_dir)
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.browsers: dict[str, httpx.AsyncClient] = {}
        self.signing_in = asyncio.Lock()

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(CASEWORK), "ui", env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        deadline = time.monotonic() + COMMAND_TIMEOUT
        async with httpx.AsyncClient(trust_env=False) as http:
            while True:
                try:
                    if (await http.get(f"{self.url}/healthz")).text == "ok":
                        return
                except httpx.TransportError:
                    pass
                if self.process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the review queue did not start: see {self.log}")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for browser in self.browsers.values():
            await browser.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def browser(self, user: str) -> httpx.AsyncClient:
        """A browser signed in as ``user`` (whose password is set here, as `casework ui
        --reset-password` does)."""
        async with self.signing_in:
            if user not in self.browsers:
                browser = httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=60)
                form = await browser.get("/login")
                token = CSRF.search(form.text)
                assert token, f"no sign-in form: {form.text[:200]}"
                signed_in = await browser.post(
                    "/login",
                    data={
                        "user": user,
                        "password": self.credentials.set_password(user),
                        "csrf_token": token.group(1),
                    },
                )
                assert signed_in.status_code == 303, f"{user} could not sign in"
                self.browsers[user] = browser
            return self.browsers[user]

    async def decide(self, user: str, case_id: str, fields: dict[str, str]) -> httpx.Response:
        """``user`` opens the case's page and submits its decision form with ``fields``."""
        browser = await self.browser(user)
        page_url = f"/cases/{quote(case_id, safe='')}"
        page = await browser.get(page_url)
        token = CSRF.search(page.text)
        assert token, f"no form on {page_url}: {page.status_code}"
        return await browser.post(
            f"{page_url}/decide", data={"csrf_token": token.group(1), **fields}
        )


class Matrix:
    def __init__(self, stack: Stack, cases: dict[tuple[str, str], PlannedCase]) -> None:
        self.stack = stack
        self.cases = cases
        """(process, "waiting" | "finished") -> its case."""
        self.rows: list[Row] = []
        self.queue: ReviewQueue | None = None
        self.running = asyncio.Semaphore(COMMANDS_AT_ONCE)
        self.env = (
            {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("CASEWORK_", "TEMPORAL_"))
            }
            | {
                "TEMPORAL_ADDRESS": stack.server.address,
                "TEMPORAL_NAMESPACE": NAMESPACE,
                "CASEWORK_TASK_QUEUE": stack.task_queue,
                "CASEWORK_SANDBOX_URL": stack.sandbox.url,
            }
            | stack.casework_env
        )

    @property
    def client(self) -> Client:
        return self.stack.client

    def signed_as_sent(self, case_id: str, approver: str, amount: str) -> dict[str, Any]:
        """A decision with any ``amount``, signed by ``approver`` as `casework sign` signed
        ``1e400`` before it refused it: the decision model's own check is skipped."""
        keys = Path(self.stack.casework_env["CASEWORK_SIGNING_KEYS_DIR"])
        return signed_as_sent(case_id, approver, amount, keys=keys)

    # -- running commands -------------------------------------------------------------------

    async def command(self, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        async with self.running:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env or self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        return process.returncode or 0, output.decode(errors="replace")

    async def casework(self, *args: str) -> tuple[int, str]:
        return await self.command([str(CASEWORK), *args])

    async def temporal(self, *args: str) -> tuple[int, str]:
        return await self.command(
            [
                str(TEMPORAL),
                *args[:2],
                "--address",
                self.stack.server.address,
                "--namespace",
                NAMESPACE,
                *args[2:],
            ]
        )

    # -- looking ----------------------------------------------------------------------------

    async def snapshot(self, case: PlannedCase | None, case_id: str | None = None) -> Snapshot:
        case_id = case_id or (case.case_id if case else None)
        assert case_id is not None
        handle = self.client.get_workflow_handle(case_id)
        try:
            history = await handle.fetch_history()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return Snapshot(exists=False)
            raise
        state = await handle.query("state", result_type=CaseState)
        return Snapshot(
            exists=True,
            events=[event.event_type for event in history.events],
            status=state.status,
            tasks=[(task.task_id, task.status.value) for task in state.open_tasks],
            audit=await handle.query("audit", result_type=list[AuditEvent]),
            ledger=await case.driver.ledger(self.stack.http, case.key) if case else None,
        )

    async def workflow_count(self) -> int:
        return (await self.client.count_workflows()).count

    # -- rows -------------------------------------------------------------------------------

    async def row(
        self,
        group: str,
        sent: str,
        act: Callable[[], Awaitable[tuple[int, str]]],
        *,
        code: int | None,
        expect: list[str],
        check: Callable[[], Awaitable[str]],
    ) -> None:
        """Run one row: ``act`` returns (exit code, what the user saw); ``check`` says what stayed
        the same, raising AssertionError when something changed."""
        row = Row(group=group, sent=sent)
        self.rows.append(row)
        try:
            exit_code, saw = await act()
            row.saw = f"[exit {exit_code}] {_short(saw)}"
            problems = []
            if code is not None and exit_code != code:
                problems.append(f"exit code {exit_code}, expected {code}")
            problems += [f"output lacks {text!r}" for text in expect if text not in saw]
            row.unchanged = await check()
            row.why = "; ".join(problems)
            row.passed = not problems
        except AssertionError as error:
            row.why = f"something changed: {error}"
        except Exception as error:
            row.why = f"{type(error).__name__}: {error}"

    async def refused(
        self,
        group: str,
        args: list[str],
        expect: list[str],
        *,
        case: PlannedCase | None = None,
        code: int = 1,
        tool: str = "casework",
        absent: str | None = None,
    ) -> None:
        """A command refused before anything happens: the case (if any) is exactly as before;
        ``absent``, a case that must still not exist; neither: no workflow at all was started
        (only while nothing else runs)."""
        before = await self.snapshot(case) if case else None
        count = await self.workflow_count() if case is None and absent is None else 0
        run = self.casework if tool == "casework" else self.temporal

        async def check() -> str:
            if absent is not None:
                assert not (await self.snapshot(None, absent)).exists, f"{absent} exists"
                return f"no case {absent}"
            if case is None:
                return _none_started(await self.workflow_count() - count)
            assert before is not None
            after = await self.snapshot(case)
            same_case(before, after, history_may_grow=False)
            return f"history ({len(after.events)} events), tasks, audit, ledger unchanged"

        await self.row(
            group,
            f"{tool} {_shown(args)}",
            lambda: run(*args),
            code=code,
            expect=expect,
            check=check,
        )

    async def signal(
        self,
        case: PlannedCase,
        inputs: list[str],
        expect: list[str],
        *,
        name: str = "decide",
        group: str = "malformed signal",
    ) -> None:
        """A signal the plain Temporal CLI sends: it cannot be refused to the sender, so it must
        be recorded in the audit trail and ignored, changing nothing else."""
        before = await self.snapshot(case)
        args = ["workflow", "signal", "--workflow-id", case.case_id, "--name", name]
        for value in inputs:
            args += ["--input", value]

        async def act() -> tuple[int, str]:
            code, output = await self.temporal(*args)
            if code != 0:
                return code, output
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                after = await self.snapshot(case)
                if len(after.audit) > len(before.audit):
                    return code, f"{output.strip()}; casework audit: {after.audit[-1].summary}"
                await asyncio.sleep(0.2)
            return code, f"{output.strip()}; nothing in the audit trail"

        async def check() -> str:
            after = await self.snapshot(case)
            retried = same_case(before, after, history_may_grow=True)
            new_audit = after.audit[len(before.audit) :]
            assert [_ignored_kind(e) for e in new_audit] == ["ignored"], (
                f"audit gained {[e.kind.value for e in new_audit]}"
            )
            return (
                f"status, tasks, ledger unchanged; history +signal only{retried}; recorded, ignored"
            )

        await self.row(
            f"{group} (temporal CLI, {case.process})",
            f"temporal {_shown(args)}",
            act,
            code=0,
            expect=expect,
            check=check,
        )

    async def queue_refused(
        self, case: PlannedCase, user: str, fields: dict[str, str], expect: list[str]
    ) -> None:
        """A decision posted in the review queue, refused with the reason on the case's page
        (HTTP 409): nothing reached the case, or the case refused it."""
        assert self.queue is not None
        queue = self.queue
        before = await self.snapshot(case)

        async def act() -> tuple[int, str]:
            response = await queue.decide(user, case.case_id, fields)
            shown = REFUSED.search(response.text)
            reasons = re.findall(r"<li>(.*?)</li>", shown.group(1), re.S) if shown else []
            return response.status_code, "; ".join(html.unescape(r) for r in reasons)

        async def check() -> str:
            same_case(before, await self.snapshot(case), history_may_grow=False)
            return f"history ({len(before.events)} events), tasks, audit, ledger unchanged"

        await self.row(
            f"review queue ({case.process})",
            f"{user} posts {fields} on {case.case_id}",
            act,
            code=409,
            expect=expect,
            check=check,
        )

    async def start_fails(self, driver: CaseDriver, what: str, body: dict[str, Any], say: str):
        """Well-formed input naming what does not exist: the case fails at once, saying what,
        and writes nothing."""
        request = discover().process(driver.process).input_model.model_validate(body)
        case_id = discover().process(driver.process).case_id(request)
        key = next(iter(body.values()))
        args = ["start", driver.process, "--input", json.dumps(body), "--wait"]

        async def act() -> tuple[int, str]:
            code, output = await self.casework(*args)
            _, shown = await self.casework("show", case_id)
            ended = output.strip().splitlines()[-1].strip() if output.strip() else ""
            return code, f"{ended}; casework show: {_failed_line(shown)}"

        async def check() -> str:
            description = await self.client.get_workflow_handle(case_id).describe()
            assert description.status == WorkflowExecutionStatus.FAILED, (
                f"the case is {description.status}"
            )
            ledger = await driver.ledger(self.stack.http, key)
            assert not sum(ledger.writes.values()), f"wrote {ledger.writes}"
            return "no write; the case failed at once (its ID may be started again)"

        await self.row(
            f"unknown IDs ({driver.process})",
            f"casework {_shown(args)}",
            act,
            code=1,
            expect=["ended failed", say],
            check=check,
        )


def _ignored_kind(event: AuditEvent) -> str:
    """``ignored`` for what a case records when it ignores a signal: a refused decision, or a
    message from outside it did not accept."""
    if event.kind is AuditKind.DECISION_REFUSED or (
        event.kind is AuditKind.MESSAGE_RECEIVED and event.data.get("accepted") is False
    ):
        return "ignored"
    return event.kind.value


def _failed_line(shown: str) -> str:
    for line in shown.splitlines():
        if line.strip().startswith("failed:"):
            return line.strip()
    return _short(shown, 100)


def same_case(before: Snapshot, after: Snapshot, *, history_may_grow: bool) -> str:
    """Nothing but the history changed, and that only by a signal when ``history_may_grow``;
    says so if a workflow task timed out on the way (Temporal retried it)."""
    assert after.exists, "the case disappeared"
    assert after.status == before.status, f"status {before.status} -> {after.status}"
    assert after.tasks == before.tasks, f"open tasks {before.tasks} -> {after.tasks}"
    assert after.ledger == before.ledger, f"ledger {before.ledger} -> {after.ledger}"
    new = after.events[len(before.events) :]
    assert after.events[: len(before.events)] == before.events, "history rewritten"
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in new, "a workflow task failed"
    if not history_may_grow:
        assert not new, f"history gained {[EventType.Name(e) for e in new]}"
        assert len(after.audit) == len(before.audit), "the audit trail changed"
        return ""
    # A worker that did not answer a workflow task in time is the machine's doing, not the
    # payload's (a handler that hangs fails its task instead); Temporal retries the task, and
    # the case must have completed it.
    unexpected = [EventType.Name(e) for e in new if e not in SIGNAL_EVENTS | {TASK_TIMED_OUT}]
    assert not unexpected, f"history gained {unexpected}"
    if TASK_TIMED_OUT not in new:
        return ""
    retried = new[len(new) - new[::-1].index(TASK_TIMED_OUT) :]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in retried, (
        "a workflow task timed out and none completed after it"
    )
    return " (a workflow task timed out on the busy worker; its retry completed)"


# -- generating rows ----------------------------------------------------------------------------


def _wrong_value(annotation: Any) -> Any:
    """A JSON value of the wrong type for a field of this annotation."""
    kinds = set(get_args(annotation)) or {annotation}
    if kinds & {int, float, Decimal}:
        return "lots"
    if str in kinds:
        return 12345
    if bool in kinds:
        return "maybe"
    return {"unexpected": "object"}


def _json_number(value: Any) -> int | float | str:
    """A bound as the JSON a person would type: 0, 1.5; a Decimal as its digits."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value  # type: ignore[no-any-return]


def out_of_range(info: FieldInfo) -> list[tuple[str, Any, str]]:
    """(what, a value just outside one of the field's declared bounds, what the refusal says),
    one per bound: lengths, numeric limits, pattern, decimal places and digits. Read from the
    field's own constraints, so a bound added to an input model gets its row."""
    rows: list[tuple[str, Any, str]] = []
    text = str in (set(get_args(info.annotation)) or {info.annotation})
    for bound in info.metadata:
        match bound:
            case annotated_types.MinLen(min_length=n) if text and n > 0:
                rows.append((f"shorter than {n}", "x" * (n - 1), f"at least {n} character"))
            case annotated_types.MaxLen(max_length=n) if text:
                rows.append((f"longer than {n}", "x" * (n + 1), f"at most {n} character"))
            case annotated_types.Gt(gt=limit):
                rows.append((f"not above {limit}", _json_number(limit), f"greater than {limit}"))
            case annotated_types.Ge(ge=limit):
                rows.append(
                    (f"below {limit}", _json_number(limit - 1), f"greater than or equal to {limit}")
                )
            case annotated_types.Lt(lt=limit):
                rows.append((f"not below {limit}", _json_number(limit), f"less than {limit}"))
            case annotated_types.Le(le=limit):
                rows.append(
                    (f"above {limit}", _json_number(limit + 1), f"less than or equal to {limit}")
                )
        if getattr(bound, "pattern", None):
            rows.append(("not matching its pattern", "not valid!", "should match pattern"))
        if (places := getattr(bound, "decimal_places", None)) is not None:
            finer = "1." + "1" * (places + 1)
            rows.append((f"finer than {places} decimal places", finer, "decimal places"))
        if (digits := getattr(bound, "max_digits", None)) is not None:
            rows.append((f"more than {digits} digits", "9" * (digits + 1), "digits in total"))
    return rows


INPUT_ROW_KEY = 99
"""The number in the business key of every invalid-input row's otherwise valid input."""


async def _nothing_sent() -> tuple[int, str]:
    return 0, "(the count of workflows in the namespace before and after)"


def _none_started(started: int) -> str:
    assert started == 0, f"{started} workflow(s) started"
    return "no workflow started"


def input_rows(driver: CaseDriver, tag: str) -> list[tuple[str, dict[str, Any] | str, list[str]]]:
    """Rows from the process's input model: each required field missing, each field of the
    wrong type, each amount negative, each field just outside each of its declared bounds, an
    unknown field, a submitter not in the directory, and input that is not JSON."""
    model: type[BaseModel] = discover().process(driver.process).input_model
    valid = driver.case_input(driver.new_key(tag, INPUT_ROW_KEY)).model_dump(
        mode="json", exclude_none=True
    )
    name = model.__name__
    rows: list[tuple[str, dict[str, Any] | str, list[str]]] = []
    for field_name, info in model.model_fields.items():
        if info.is_required():
            body = {k: v for k, v in valid.items() if k != field_name}
            rows.append((f"{field_name} missing", body, [name, f"{field_name}: Field required"]))
    for field_name, info in model.model_fields.items():
        wrong = _wrong_value(info.annotation)
        rows.append((f"{field_name} of the wrong type", valid | {field_name: wrong}, [field_name]))
        kinds = set(get_args(info.annotation)) or {info.annotation}
        if kinds & {int, float, Decimal}:
            rows.append((f"{field_name} negative", valid | {field_name: -100}, [field_name]))
        for what, value, says in out_of_range(info):
            rows.append((f"{field_name} {what}", valid | {field_name: value}, [field_name, says]))
    rows.append(("an unknown field", valid | {"surprise": 1}, ["surprise", "Extra inputs"]))
    if "submitted_by" in model.model_fields:
        # casework reads the directory too: an unknown submitter never starts a case.
        rows.append(
            (
                "a submitter not in the directory",
                valid | {"submitted_by": "mallory"},
                ["submitted_by: 'mallory' is not in the approval directory"],
            )
        )
    rows.append(("not JSON", "{oops", ["not valid JSON"]))
    return rows


async def matrix_rows(matrix: Matrix, tag: str) -> None:
    drivers = list(DRIVERS.values())
    # 1. Input refused before anything starts (each row a CLI process, a few at a time).
    #    Each row checks that the case its valid input would start does not exist; the
    #    namespace's workflow count around the whole group proves no row started any other.
    count = await matrix.workflow_count()

    async def input_row(
        driver: CaseDriver, what: str, body: dict[str, Any] | str, expect: list[str]
    ) -> None:
        raw = body if isinstance(body, str) else json.dumps(body)
        await matrix.refused(
            f"invalid case input ({driver.process}): {what}",
            ["start", driver.process, "--input", raw],
            expect,
            absent=driver.case_id(driver.new_key(tag, INPUT_ROW_KEY)),
        )

    await asyncio.gather(
        *(input_row(driver, *row) for driver in drivers for row in input_rows(driver, tag))
    )
    await matrix.refused(
        "unknown process name",
        ["start", "refund-everything", "--input", "{}"],
        ["invalid choice: 'refund-everything'"],
        code=2,
    )

    async def none_started_by_the_group() -> str:
        return _none_started(await matrix.workflow_count() - count)

    await matrix.row(
        "invalid case input (every process)",
        "every row above",
        _nothing_sent,
        code=None,
        expect=[],
        check=none_started_by_the_group,
    )
    progress(f"{len(matrix.rows)} rows of invalid input; now decisions, signals and policies")
    # 2. The rest, one group per case at a time, the groups side by side.
    await asyncio.gather(
        *(decision_rows(matrix, driver) for driver in drivers),
        *(signal_then_payload_shape_rows(matrix, driver) for driver in drivers),
        *(unknown_record_rows(matrix, driver, tag) for driver in drivers),
    )
    # 3. Then the policy files: each row starts a whole worker (the catalogue, litellm), which
    #    beside every process's commands outlasted the command timeout on a busy machine.
    await policy_rows(matrix)


async def unknown_record_rows(matrix: Matrix, driver: CaseDriver, tag: str) -> None:
    for what, body, say in driver.unknown_records(tag):
        await matrix.start_fails(driver, what, body, say)


async def waiting_task(matrix: Matrix, case: PlannedCase) -> tuple[HumanTask, str]:
    """The case's open task, and someone other than the submitter who may decide it."""
    state = await matrix.client.get_workflow_handle(case.case_id).query(
        "state", result_type=CaseState
    )
    task = state.open_tasks[0]
    eligible = next(
        name
        for name, user in sorted(directory().users.items())
        if user.role in task.eligible_roles and name != case.driver.submitter
    )
    return task, eligible


def finer_refusal(task: HumanTask) -> str:
    """Why ``FINER_THAN_A_CENT`` may not be approved on ``task``."""
    if not task.carries_amount:
        return "carries no amount, so an amount means nothing here"
    currency, places = task.currency, len(FINER_THAN_A_CENT.split(".")[1])
    return (
        f"edited amount {FINER_THAN_A_CENT} {currency} has {places} decimal places; "
        f"{currency} has {minor_unit(currency)}"
    )


async def decision_rows(matrix: Matrix, driver: CaseDriver) -> None:
    waiting = matrix.cases[(driver.process, "waiting")]
    finished = matrix.cases[(driver.process, "finished")]
    task, eligible = await waiting_task(matrix, waiting)
    people = directory()
    finer = finer_refusal(task)
    outsider = next(
        name
        for name, user in sorted(people.users.items())
        if user.role not in task.eligible_roles and name != driver.submitter
    )
    case_id = waiting.case_id
    group = f"decision ({driver.process})"
    second = f"second start ({driver.process})"
    for case in (waiting, finished):
        body = driver.case_input(case.key).model_dump(mode="json", exclude_none=True)
        await matrix.refused(
            second,
            ["start", driver.process, "--input", json.dumps(body)],
            [f"case {case.case_id} already exists"],
            case=case,
        )
    cases = [
        (["approve", case_id, "--as", "mallory"], ["no signing key for 'mallory'"], 1),
        (["approve", case_id, "--as", outsider], [f"{outsider} (", "may not decide"], 1),
        (["reject", case_id, "--as", eligible, "--comment", ""], ["needs a comment"], 1),
        (["approve", case_id, "--as", eligible, "--amount", "-5"], ["must be above 0"], 2),
        (["approve", case_id, "--as", eligible, "--amount", HUGE], ["not a plain amount"], 2),
        (["approve", case_id, "--as", eligible, "--amount", EUROPEAN], ["has a comma"], 2),
        (["approve", case_id, "--as", eligible, "--amount", AMERICAN], ["has a comma"], 2),
        (["approve", case_id, "--as", eligible, "--amount", FINER_THAN_A_CENT], [finer], 1),
        (
            ["sign", case_id, "--as", eligible, "--action", "approve", "--amount", HUGE],
            ["not a plain amount"],
            2,
        ),
        (
            ["approve", case_id, "--as", eligible, "--comment", OVERSIZED],
            [f"comment: String should have at most {MAX_COMMENT_CHARS} characters"],
            1,
        ),
        (["approve", finished.case_id, "--as", eligible], ["no longer running"], 1),
        (["approve", f"{driver.process}-NO-SUCH-CASE", "--as", eligible], ["no case"], 1),
    ]
    if not task.submitter_may_decide:  # segregation of duties, where the policy asks for it
        cases.append((["approve", case_id, "--as", driver.submitter], ["submitted this case"], 1))
    for args, expect, code in cases:
        target = finished if finished.case_id in args else waiting
        if "NO-SUCH-CASE" in args[1]:
            await matrix.refused(group, args, expect, code=code, absent=args[1])
        else:
            await matrix.refused(group, args, expect, case=target, code=code)

    def signed(**fields: Any) -> dict[str, Any]:
        decision = matrix.stack.sign(case_id, TaskDecision(**fields))
        return decision.model_dump(mode="json", exclude_none=True)

    update = ["workflow", "update", "execute", "--workflow-id", case_id, "--name", "decide"]
    negative = "edited amount -5" if task.carries_amount else "carries no amount"
    for body, expect in (
        ({"approver": eligible, "action": "approve"}, ["the decision is not signed"]),
        (signed(approver=eligible, action="aprove"), ["action must be one of"]),
        (signed(approver=eligible, action="approve", amount=-5), [negative]),
        (signed(approver=eligible, action="approve", amount=Decimal(FINER_THAN_A_CENT)), [finer]),
        (
            matrix.signed_as_sent(case_id, eligible, "1E+400"),
            ["amount: Value error, 1E+400 has more than 15 digits before the decimal point"],
        ),
        # A JSON number, as a person types it on the command line.
        (
            {"approver": eligible, "action": "approve", "amount": 1e30},
            ["amount: Value error", "more than 15 digits before the decimal point"],
        ),
        (
            {"approver": eligible, "action": "approve", "amount": EUROPEAN},
            ["amount: Input should be a valid decimal"],
        ),
        (
            signed(approver=outsider, action="approve") | {"approver": eligible},
            [f"the signature is not {eligible}'s"],
        ),
        ({"approver": 5, "action": "approve"}, ["approver: Input should be a valid string"]),
        # Refused by the SDK before the validator runs; nothing reaches the case.
        (None, ["missing 1 required positional argument: 'decision'"]),
    ):
        args = update + (["--input", json.dumps(body)] if body is not None else [])
        await matrix.refused(
            f"decision by update (temporal CLI, {driver.process})",
            args,
            expect,
            case=waiting,
            tool="temporal",
        )
    for name in update_names(driver.process):
        # Each update of the process, with a body of the wrong shape: refused by the SDK's
        # converter (or the validator) naming the fields, before anything reaches history.
        for body in ("{}", "[1, 2]"):
            await matrix.refused(
                f"update with a malformed body (temporal CLI, {driver.process}): {name}",
                [*update[:3], "--workflow-id", case_id, "--name", name, "--input", body],
                ["Field required"] if body == "{}" else ["Input should be an object"],
                case=waiting,
                tool="temporal",
            )
    for typed, expect in (
        (EUROPEAN, ["has a comma"]),
        (AMERICAN, ["has a comma"]),
        (HUGE, ["not a plain amount"]),
        (FINER_THAN_A_CENT, [finer]),
    ):
        fields = {"action": "approve", "amount": typed, "task_id": task.task_id}
        await matrix.queue_refused(waiting, eligible, fields, expect)


async def signal_rows(matrix: Matrix, driver: CaseDriver) -> None:
    """Malformed signals, on a waiting case of their own (they run beside the decisions):
    recorded in the audit trail and ignored."""
    waiting = matrix.cases[(driver.process, "signalled")]
    case_id = waiting.case_id
    # Who is named does not matter: these fail before anyone's role is looked at.
    eligible = "bob"
    carols = matrix.stack.sign(case_id, TaskDecision(approver="carol", action="approve"))
    forged = carols.model_dump(mode="json", exclude_none=True) | {"approver": eligible}
    for inputs, expect in (
        ([], ["expected one TaskDecision, got 0 payloads"]),
        (['{"approver": 5, "action": "approve"}'], ["approver: Input should be a valid string"]),
        (["{}"], ["approver: Field required", "action: Field required"]),
        (["[1, 2]"], ["valid dictionary"]),
        ([json.dumps({"approver": eligible, "action": "approve", "amount": "lots"})], ["amount"]),
        ([json.dumps({"approver": eligible, "action": "approve"}), "{}"], ["got 2 payloads"]),
        (
            [json.dumps({"approver": eligible, "action": "approve", "comment": OVERSIZED})],
            [f"at most {MAX_COMMENT_CHARS} characters"],
        ),
        (['{"approver": "mallory", "action": "approve"}'], ["the decision is not signed"]),
        ([json.dumps(forged)], ["the signature is not bob's"]),
    ):
        await matrix.signal(waiting, inputs, expect)
    task, deciding = await waiting_task(matrix, waiting)
    for body, expect in (
        (
            matrix.signed_as_sent(case_id, deciding, "1E+400"),
            ["amount: Value error, 1E+400 has more than 15 digits before the decimal point"],
        ),
        (
            {"approver": deciding, "action": "approve", "amount": EUROPEAN},
            ["amount: Input should be a valid decimal"],
        ),
    ):
        await matrix.signal(waiting, [json.dumps(body)], expect)
    finer = matrix.stack.sign(
        case_id,
        TaskDecision(approver=deciding, action="approve", amount=Decimal(FINER_THAN_A_CENT)),
    )
    await matrix.signal(
        waiting,
        [finer.model_dump_json(exclude_none=True)],
        [f"ignored decision from {deciding}: ", finer_refusal(task)],
        group="refused signal",
    )
    await matrix.refused(
        f"malformed signal (temporal CLI, {driver.process})",
        ["workflow", "signal", "--workflow-id", case_id, "--name", "decide", "--input", "{oops"],
        ["not valid JSON"],
        case=waiting,
        tool="temporal",
    )


# -- signal payload shapes (issue 21) ----------------------------------------------------------
# Every signal of every process the matrix runs, sent with no input and with two: either used to
# fail every workflow task of the case for good. Recorded and ignored instead, nothing else
# changed. (Processes without a case driver get the same shapes, and garbage, on the dev server
# in tests/test_signal_payloads.py.)


def _definition(process: str) -> workflow._Definition:
    workflow_type = discover().process(process).workflow_type
    (definition,) = [
        definition
        for definition in map(workflow._Definition.must_from_class, discover().workflows)
        if definition.name == workflow_type
    ]
    return definition


def signal_names(process: str) -> list[str]:
    """The process's signal handlers, from its workflow's definition: a handler added later
    gets its rows without an edit here."""
    return sorted(name for name in _definition(process).signals if name)


def update_names(process: str) -> list[str]:
    """The process's update handlers, found the same way."""
    return sorted(name for name in _definition(process).updates if name)


async def signal_then_payload_shape_rows(matrix: Matrix, driver: CaseDriver) -> None:
    # Both groups signal the same case: one after the other, so each row sees only its own.
    await signal_rows(matrix, driver)
    await payload_shape_rows(matrix, driver)


async def payload_shape_rows(matrix: Matrix, driver: CaseDriver) -> None:
    waiting = matrix.cases[(driver.process, "signalled")]
    for name in signal_names(driver.process):
        for inputs, expect in (
            ([], ["got 0 payloads"]),
            (["{}", "{}"], ["got 2 payloads"]),
            (["{}"], ["Field required"]),
        ):
            await matrix.signal(
                waiting, inputs, expect, name=name, group=f"signal payload shape: {name}"
            )


# -- policy files -------------------------------------------------------------------------------

PolicyEdit = tuple[str, str, Callable[[str], str], list[str]]


def policy_edits() -> list[PolicyEdit]:
    """(file, what, edit of its text, what the worker must name). Each policy gets an unknown
    key; the shipped ones a field error of their own too."""
    edits: list[PolicyEdit] = [
        (
            path.name,
            "an unknown key",
            lambda text: text + "\nsurprise: 1\n",
            [path.name, "surprise: Extra inputs are not permitted"],
        )
        for path in sorted(catalogue_policy_dir().glob("*.yaml"))
    ]
    edits += [
        (
            "invoice_exception.yaml",
            "a negative tolerance",
            lambda text: text.replace("  percent: 2.0", "  percent: -2.0"),
            ["invoice_exception.yaml", "tolerance.percent"],
        ),
        (
            "ticket_triage.yaml",
            "an SLA that is not a duration",
            lambda text: text.replace("sla: 8h}", "sla: soon}", 1),
            ["ticket_triage.yaml", "review.tiers.0.sla"],
        ),
        (
            "refund.yaml",
            "tiers that leave refunds above 50,000.00 to nobody",
            lambda text: text.replace(
                "    max_amount: 50000.00\n    sla: 48h\n  - role: cfo\n    max_amount: null\n"
                "    sla: 72h\n",
                "    max_amount: null\n    sla: 48h\n",
                1,
            ),
            [
                "refund.yaml",
                "approval_tiers: above 50,000.00 EUR goes to finance_manager, and no one who "
                "may decide it (finance_manager) has an approval limit that covers it",
            ],
        ),
        (
            "directory.yaml",
            "broken YAML",
            lambda text: text.replace("users:", "users: [", 1),
            ["directory.yaml", "not valid YAML", "line"],
        ),
    ]
    return edits


async def policy_rows(matrix: Matrix) -> None:
    async def edited_policy_row(
        name: str, what: str, edit: Callable[[str], str], expect: list[str]
    ) -> None:
        folder = Path(tempfile.mkdtemp(prefix="casework-policy-"))
        try:
            for source in catalogue_policy_dir().glob("*.yaml"):
                shutil.copy(source, folder / source.name)
            target = folder / name
            edited = edit(target.read_text())
            if edited == target.read_text():
                raise AssertionError(f"the edit of {name} changed nothing")
            target.write_text(edited)
            env = matrix.env | {"CASEWORK_POLICY_DIR": str(folder)}
            output = ""

            async def act() -> tuple[int, str]:
                nonlocal output
                code, output = await matrix.command([sys.executable, "-m", "workers"], env)
                return code, output.replace(str(folder), "<policy dir>")

            async def check() -> str:
                assert "polling" not in output, "the worker started polling"
                return "the worker exited before connecting: no case touched"

            await matrix.row(
                "policy file with an error",
                f"{name} with {what}; python -m workers",
                act,
                code=2,
                expect=[*expect, "casework worker: not starting"],
                check=check,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    await asyncio.gather(*(edited_policy_row(*edit) for edit in policy_edits()))


# -- the whole matrix ---------------------------------------------------------------------------


async def run_matrix(work: Path | None = None) -> list[Row]:
    work = work or Path(tempfile.mkdtemp(prefix="casework-matrix-"))
    tag = uuid.uuid4().hex[:4].upper()
    run: Run | None = None

    def good_reply(request: dict[str, Any]) -> tuple[str, ScriptedReply] | None:
        return run.good_reply(request) if run else None

    async with running_stack(work, good_reply) as stack:
        cases: dict[tuple[str, str], PlannedCase] = {}
        for driver in DRIVERS.values():
            for role, scenario in (
                ("waiting", driver.waiting_scenario),
                ("signalled", driver.waiting_scenario),
                ("finished", driver.finished_scenario),
            ):
                key = driver.new_key(f"M{tag}", len(cases))
                cases[(driver.process, role)] = PlannedCase(
                    driver, key, driver.case_id(key), scenario
                )
        run = Run(stack, list(cases.values()), CI)
        await run.seed()
        await run.start_cases()
        progress("waiting for one case per process to wait, and one to finish")
        deadline = time.monotonic() + 120
        while run.unsettled() and time.monotonic() < deadline:
            await run.refresh()
            await run.play_outside()
            await asyncio.sleep(0.5)
        if run.unsettled():
            raise RuntimeError(f"cases did not settle: {[c.case_id for c in run.unsettled()]}")
        matrix = Matrix(stack, cases)
        home = Path(stack.casework_env["CASEWORK_HOME"])
        matrix.queue = ReviewQueue(matrix.env, home, work / "review-queue.log")
        try:
            await matrix.queue.start()
            progress(f"review queue on {matrix.queue.url}; sending bad input")
            await matrix_rows(matrix, tag)
        finally:
            await matrix.queue.stop()
        progress(f"{len(matrix.rows)} rows sent")
    if all(row.passed for row in matrix.rows):
        shutil.rmtree(work, ignore_errors=True)
    return matrix.rows


def _rank(row: Row) -> int:
    return next((n for n, prefix in enumerate(GROUPS) if row.group.startswith(prefix)), 99)


def render_matrix(rows: list[Row]) -> str:
    # Groups ran side by side; show them one after another.
    rows = sorted(rows, key=_rank)
    lines = [
        f"bad-input matrix: {sum(r.passed for r in rows)}/{len(rows)} rows hold",
        "",
    ]
    for number, row in enumerate(rows, 1):
        mark = "ok  " if row.passed else "FAIL"
        lines.append(f"{mark} {number:>3}. {row.group}")
        lines.append(f"          sent:      {row.sent}")
        lines.append(f"          user saw:  {row.saw}")
        lines.append(f"          unchanged: {row.unchanged or '-'}")
        if row.why:
            lines.append(f"          PROBLEM:   {row.why}")
    return "\n".join(lines)
