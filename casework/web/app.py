"""The review queue: approvers decide in the browser what the CLI lets them decide.

Server-rendered HTML (FastAPI + Jinja2), no JavaScript. Every page needs a signed-in directory
user; a session ends at sign-out, and failed sign-ins are throttled per user and per address.
Decisions go through :func:`casework.decisions.send_decision`, the path the CLI uses, so the case
validates them the same way and a refusal comes back with its reasons; answers, acknowledgements,
reassignments, delegations and escalations through :func:`casework.decisions.send_act`, signed
the same way. A case is shown only to the people :func:`casework.visibility.may_see_case`
allows (anyone else is told there is no such case), with the fields the masking policy does not
clear for their role masked. Evidence is shown as tables and lists, not JSON. Every form carries
a CSRF token bound to the session; a post without it is refused before anything is sent. The
queue lists running cases only, and names, rather than fails on, a case it cannot read (to those
who hold the role it waits for, or read every case: to anyone else the name would tell that it
exists).
It listens on loopback only and answers only requests addressed to a loopback host name, so a
page on another site cannot reach it through DNS rebinding either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from casework import backlog, report
from casework import search_attributes as sa
from casework.amounts import EXAMPLE, AmountError, parse_amount
from casework.audit import CONFIDENCE, RECOMMENDED_ACTION, AuditEvent, AuditKind
from casework.backlog import (
    QUERY_TIMEOUT,
    UNREADABLE_ERRORS,
    execution_word,
    shown_status,
    unreadable_reason,
)
from casework.case import CaseState
from casework.case.refusals import holds
from casework.case.tasks import (
    DecisionReceipt,
    HumanTask,
    PageAcknowledgement,
    TaskAct,
    TaskActKind,
    TaskAnswer,
    TaskDecision,
    TaskKind,
)
from casework.cli.output import web_ui_link
from casework.config import Settings
from casework.converter import describe_validation_error
from casework.decisions import DecisionError, send_act, send_decision
from casework.governance.loader import load_policy
from casework.governance.models import Directory
from casework.masking import Masker, load_masking_policy, masking_key_for
from casework.signing_keys import SigningKeyError, load_signing_key, signing_keys_dir
from casework.visibility import may_see_case, may_see_unreadable, reads_every_case
from casework.web import charts, report_flow
from casework.web.auth import (
    FLASH_COOKIE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Credentials,
    Session,
    Sessions,
    Signer,
    SignInThrottle,
)

TEMPLATES = Path(__file__).parent / "templates"
MAX_FORM_BYTES = 64 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    pass


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True
    )
    env.filters["money"] = lambda value: f"{Decimal(str(value)):,.2f}"
    env.filters["when"] = lambda value: f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"
    env.filters["quote"] = lambda value: quote(str(value), safe="")
    env.tests["record"] = lambda value: isinstance(value, dict)
    env.tests["records"] = lambda value: (
        isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)
    )
    env.tests["listing"] = lambda value: isinstance(value, list)
    env.filters["columns"] = _columns
    env.globals["amount_example"] = EXAMPLE
    return env


def _columns(records: list[dict[str, Any]]) -> list[str]:
    """The columns of a table of records: every key any of them has, in first-seen order."""
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def create_app(
    settings: Settings,
    connect: Callable[[], Awaitable[Client]],
    directory: Directory | None = None,
) -> FastAPI:
    """The review queue app. ``connect`` makes its Temporal client when the app starts."""
    credentials = Credentials(settings.state_dir)
    signer = Signer(credentials.secret())
    sessions = Sessions()
    throttle = SignInThrottle()
    env = _environment()
    state: dict[str, Any] = {}

    def get_directory() -> Directory:
        return directory or Directory.model_validate(load_policy("directory").content)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["client"] = await connect()
        yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def client() -> Client:
        return state["client"]

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0]
        if host not in LOOPBACK_HOSTS:
            return PlainTextResponse("casework's review queue only answers on loopback", 421)
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status_code)

    def session_of(request: Request) -> Session | None:
        session = signer.session(request.cookies.get(SESSION_COOKIE))
        if session is None or not sessions.is_open(session):
            return None
        return session if session.user in get_directory().users else None

    def page(request: Request, session: Session, **context: Any) -> dict[str, Any]:
        user = get_directory().users[session.user]
        return {
            "me": session.user,
            "my_name": user.name,
            "my_role": user.role,
            "csrf": signer.csrf_token(session.nonce),
            "flash": signer.unsign("flash", request.cookies.get(FLASH_COOKIE)),
            **context,
        }

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    async def form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Forbidden("form too large")
        parsed = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def checked(request: Request, fields: dict[str, str]) -> Session:
        """The session a state-changing post comes from, with a valid CSRF token, or refuse."""
        session = session_of(request)
        if session is None:
            raise Forbidden("not signed in")
        if not signer.csrf_ok(session.nonce, fields.get("csrf_token")):
            raise Forbidden("the form's CSRF token is missing or wrong")
        return session

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden) -> PlainTextResponse:
        return PlainTextResponse(f"refused: {error}", status_code=403)

    # -- sign-in ----------------------------------------------------------------------------

    @app.get("/healthz")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    def login_form(next: str, error: str, status_code: int = 200) -> HTMLResponse:
        nonce = signer.sign("login", datetime.now(UTC).isoformat())
        response = render(
            "login.html",
            status_code,
            csrf=signer.csrf_token(nonce),
            next=_local(next),
            error=error,
            users=sorted(get_directory().users),
            handout=credentials.handout_file,
        )
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", max_age=3600)
        return response

    @app.get("/login")
    async def login_page(request: Request, next: str = "/", error: str = "") -> HTMLResponse:
        return login_form(next, "Unknown user or wrong password." if error else "")

    @app.post("/login")
    async def login(request: Request) -> Any:
        fields = await form(request)
        nonce = request.cookies.get(LOGIN_COOKIE)
        if signer.unsign("login", nonce) is None or not signer.csrf_ok(
            nonce, fields.get("csrf_token")
        ):
            raise Forbidden("the sign-in form's CSRF token is missing or wrong")
        user, password = fields.get("user", "").strip(), fields.get("password", "")
        address = request.client.host if request.client else "unknown"
        if refusal := throttle.refusal(user, address):
            return login_form(fields.get("next", "/"), refusal, status_code=429)
        if user not in get_directory().users or not credentials.verify(user, password):
            throttle.failed(user, address)
            query = urlencode({"next": _local(fields.get("next", "/")), "error": "1"})
            return RedirectResponse(f"/login?{query}", status_code=303)
        throttle.succeeded(user)
        session, cookie = signer.new_session(user)
        sessions.open(session)
        response = RedirectResponse(_local(fields.get("next", "/")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE, cookie, httponly=True, samesite="strict", max_age=SESSION_SECONDS
        )
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> RedirectResponse:
        # Ended here, not only in this browser: a copy of the cookie no longer counts.
        sessions.end(checked(request, await form(request)))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- the queue --------------------------------------------------------------------------

    @app.get("/")
    async def queue(request: Request, process: str = "", role: str = "") -> Any:
        session = session_of(request)
        if session is None:
            return to_login(request)
        now = datetime.now(UTC)
        found = await backlog.open_tasks(client())
        directory = get_directory()
        reads_all = reads_every_case(directory, session.user)
        # Approvals to decide and questions to answer; an auditor reads them all, deciding none.
        mine = (
            found.tasks
            if reads_all
            else [
                item
                for item in found.tasks
                if backlog.may_decide(directory, session.user, item.task)
            ]
        )
        processes = sorted({item.case_type for item in mine})
        roles = sorted({item.task.role for item in mine})
        shown = [
            item
            for item in mine
            if (not process or item.case_type == process) and (not role or item.task.role == role)
        ]
        limit = get_directory().roles.get(get_directory().users[session.user].role)
        rows = [
            {
                "case_type": item.case_type,
                "task": item.task,
                "sla": backlog.sla_state(item.task, now).value,
                "over_limit": bool(
                    limit
                    and not reads_all
                    and limit.approval_limit is not None
                    and item.task.amount > limit.approval_limit
                ),
            }
            for item in shown
        ]
        response = render(
            "queue.html",
            **page(
                request,
                session,
                rows=rows,
                processes=processes,
                roles=roles,
                process=process,
                role=role,
                total=len(mine),
                reads_all=reads_all,
                # Naming a case one may not see would tell that it exists.
                unreadable={
                    case_id: why
                    for case_id, why in found.unreadable.items()
                    if may_see_unreadable(
                        directory, session.user, found.unreadable_roles.get(case_id)
                    )
                },
            ),
        )
        response.delete_cookie(FLASH_COOKIE)
        return response

    # -- a case -----------------------------------------------------------------------------

    async def case_context(case_id: str, session: Session) -> dict[str, Any] | str | None:
        """What the case page shows; None for no such case; why, for a case it cannot read."""
        handle = client().get_workflow_handle(case_id)
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise
        try:
            case = await handle.query("state", result_type=CaseState, rpc_timeout=QUERY_TIMEOUT)
            audit = await handle.query(
                "audit", result_type=list[AuditEvent], rpc_timeout=QUERY_TIMEOUT
            )
        except UNREADABLE_ERRORS as error:
            # Its trail cannot tell who takes part: the role it waits for stands in.
            waits_for = description.typed_search_attributes.get(sa.APPROVER_ROLE)
            if may_see_unreadable(get_directory(), session.user, waits_for):
                return unreadable_reason(error)
            return None
        directory = get_directory()
        if not may_see_case(
            directory, session.user, audit + await related_trails(description, case)
        ):
            return None
        case, audit = masked_for(session.user, case, audit)
        now = datetime.now(UTC)
        execution = execution_word(description.status)
        running = description.status == WorkflowExecutionStatus.RUNNING
        # A closed case has no open task, whatever it waited for when it ended.
        tasks = (
            []
            if not running
            else [
                {
                    "task": task,
                    "sla": backlog.sla_state(task, now).value,
                    "may_decide": running
                    and task.kind is TaskKind.APPROVAL
                    and backlog.may_decide(directory, session.user, task),
                    "may_answer": task.kind is TaskKind.QUESTION
                    and backlog.may_decide(directory, session.user, task),
                    "holds": holds(directory, task, session.user),
                    "handover_to": _handover_targets(directory, task, session.user),
                }
                for task in case.open_tasks
            ]
        )
        proposals = [e for e in audit if e.kind is AuditKind.AGENT_PROPOSAL]
        decisions = [e for e in audit if e.kind is AuditKind.POLICY_DECISION]
        started = next((e for e in audit if e.kind is AuditKind.CASE_STARTED), None)
        proposal = proposals[-1] if proposals else None
        policy_decision = decisions[-1] if decisions else None
        return {
            "case": case,
            "status": shown_status(case.status, execution),
            "execution": execution,
            "tasks": tasks,
            "audit": audit,
            "proposal": proposal,
            "recommended": proposal.data.get(RECOMMENDED_ACTION) if proposal else None,
            "confidence": proposal.data.get(CONFIDENCE) if proposal else None,
            "proposal_detail": _proposal_detail(proposal),
            "policy_decision": policy_decision,
            "policy_ref": _policy_ref(policy_decision),
            "case_input": (started.data.get("input") if started else None) or {},
            "pages": case.open_pages if running else [],
            "task_acts": [kind.value for kind in TaskActKind],
            "web_ui": web_ui_link(settings.ui_url, client().namespace, case_id),
        }

    async def related_trails(
        description: WorkflowExecutionDescription, case: CaseState
    ) -> list[AuditEvent]:
        """The trails of the case's agent region and of the case a region works for: one case
        to people, so whoever answered its agent's question sees the case, and its submitter
        the question. One that cannot be read adds nobody (it can only hide the case)."""
        related = [str(case.facts["agent_region"])] if case.facts.get("agent_region") else []
        related += [description.parent_id] if description.parent_id else []
        trails: list[AuditEvent] = []
        for workflow_id in related:
            try:
                trails += (
                    await client()
                    .get_workflow_handle(workflow_id)
                    .query("audit", result_type=list[AuditEvent], rpc_timeout=QUERY_TIMEOUT)
                )
            except UNREADABLE_ERRORS:
                continue
        return trails

    def masked_for(
        user_id: str, case: CaseState, audit: list[AuditEvent]
    ) -> tuple[CaseState, list[AuditEvent]]:
        """The case as ``user_id``'s role may see it: the values of the fields the masking
        policy does not clear for it replaced by tokens, wherever they appear."""
        directory = get_directory()
        user = directory.users[user_id]
        policy = load_masking_policy().for_role(user.role)
        if policy is None:
            return case, audit
        masker = Masker(policy, masking_key_for(settings))
        raw_case = case.model_dump(mode="json")
        raw_audit = [event.model_dump(mode="json") for event in audit]
        # Learn every named value first, so it is masked in the free text around it too.
        masker.learn([raw_case, raw_audit])
        return (
            CaseState.model_validate(masker.mask_data(raw_case)),
            [AuditEvent.model_validate(event) for event in masker.mask_data(raw_audit)],
        )

    def not_shown(request: Request, session: Session, case_id: str, why: str | None) -> Any:
        """The page for a case that does not exist (``why`` None) or cannot be read."""
        return render(
            "missing.html", 503 if why else 404, **page(request, session, case_id=case_id, why=why)
        )

    # ``:path``: a case ID may hold "/", which arrives decoded however the link quoted it.
    @app.get("/cases/{case_id:path}")
    async def case_page(request: Request, case_id: str) -> Any:
        session = session_of(request)
        if session is None:
            return to_login(request)
        context = await case_context(case_id, session)
        if not isinstance(context, dict):
            return not_shown(request, session, case_id, context)
        response = render("case.html", **page(request, session, **context))
        response.delete_cookie(FLASH_COOKIE)
        return response

    @app.post("/cases/{case_id:path}/decide")
    async def decide(request: Request, case_id: str) -> Any:
        fields = await form(request)
        session = checked(request, fields)
        action = fields.get("action", "")
        comment = fields.get("comment", "").strip() or None
        problems: list[str] = []
        amount: Decimal | None = None
        raw_amount = fields.get("amount", "").strip()
        if raw_amount and action == "approve":
            # One unambiguous form, as on the command line: "12.600,00" is refused, not read.
            try:
                amount = parse_amount(raw_amount)
            except AmountError as error:
                problems.append(str(error))
        if not problems:
            decision = TaskDecision(
                approver=session.user,
                action=action,
                amount=amount,
                comment=comment,
                task_id=fields.get("task_id") or None,
            )
            try:
                # The queue signs as the signed-in person, with their key from the state dir.
                key = load_signing_key(session.user, signing_keys_dir(settings.state_dir))
                receipt = await send_decision(client(), case_id, decision, key)
            except SigningKeyError as error:
                problems = [str(error)]
            except DecisionError as error:
                problems = error.reasons
            else:
                response = RedirectResponse(f"/cases/{quote(case_id, safe='')}", status_code=303)
                response.set_cookie(
                    FLASH_COOKIE,
                    signer.sign("flash", receipt.message),
                    httponly=True,
                    samesite="strict",
                    max_age=60,
                )
                return response
        context = await case_context(case_id, session)
        if not isinstance(context, dict):
            return not_shown(request, session, case_id, context)
        return render(
            "case.html",
            409,
            **page(request, session, **context, refused=problems, form=fields),
        )

    @app.post("/cases/{case_id:path}/act")
    async def act(request: Request, case_id: str) -> Any:
        """Answer, acknowledge, reassign, delegate or escalate: signed as the signed-in person
        and sent through the path the CLI uses; the case refuses what they may not do."""
        fields = await form(request)
        session = checked(request, fields)
        context = await case_context(case_id, session)
        if not isinstance(context, dict):
            return not_shown(request, session, case_id, context)
        name = fields.get("act", "")
        problems: list[str]
        try:
            payload, result_type = _act_payload(get_directory(), name, session.user, fields)
            key = load_signing_key(session.user, signing_keys_dir(settings.state_dir))
            result = await send_act(client(), case_id, name, payload, key, result_type)
        except ValidationError as error:
            problems = [describe_validation_error(error)]
        except ValueError as error:
            problems = [str(error)]
        except SigningKeyError as error:
            problems = [str(error)]
        except DecisionError as error:
            problems = error.reasons
        else:
            message = result.message if isinstance(result, DecisionReceipt) else str(result)
            response = RedirectResponse(f"/cases/{quote(case_id, safe='')}", status_code=303)
            response.set_cookie(
                FLASH_COOKIE,
                signer.sign("flash", message),
                httponly=True,
                samesite="strict",
                max_age=60,
            )
            return response
        context = await case_context(case_id, session)
        if not isinstance(context, dict):
            return not_shown(request, session, case_id, context)
        return render(
            "case.html",
            409,
            **page(request, session, **context, refused=problems, form=fields),
        )

    # -- KPIs -------------------------------------------------------------------------------

    @app.get("/report")
    async def report_page(request: Request) -> Any:
        session = session_of(request)
        if session is None:
            return to_login(request)
        kpis = await visible_report(session)
        return render(
            "report.html",
            **page(
                request,
                session,
                report=kpis,
                charts=_charts(kpis),
                **await report_flow.figures(kpis),
            ),
        )

    @app.get("/report.json")
    async def report_json(request: Request) -> Any:
        session = session_of(request)
        if session is None:
            return JSONResponse({"error": "not signed in"}, status_code=401)
        kpis = await visible_report(session)
        return JSONResponse(json.loads(kpis.model_dump_json()))

    async def visible_report(session: Session) -> report.Report:
        """The report for this session: its lists name only the cases the session may see
        (``may_see_case`` on each case's trail; a trail that cannot be read falls back to the
        role the case waits for); figures over all cases are shown to all."""
        records = await report.collect(client())
        directory = get_directory()
        visible = {
            record.case_id
            for record in records
            if (
                may_see_case(directory, session.user, record.audit)
                if record.audit is not None
                else may_see_unreadable(directory, session.user, _waits_for(record))
            )
        }
        return report.compute(records).visible_to(lambda case_id: case_id in visible)

    return app


def _waits_for(record: report.CaseRecord) -> str | None:
    """The role an unreadable case last said it waits for (its open task's, if known)."""
    return next((task.role for task in record.open_tasks), None)


def _handover_targets(directory: Directory, task: HumanTask, user_id: str) -> list[str]:
    """Whom ``user_id`` might hand ``task`` to, to offer in the form: the people and roles
    eligible for it. The case still decides; the form takes any name."""
    people = sorted(
        name
        for name, user in directory.users.items()
        if user.role in task.eligible_roles and name not in (user_id, task.assignee)
    )
    return people + [role for role in task.eligible_roles if role != task.role]


def _act_payload(
    directory: Directory, name: str, user_id: str, fields: dict[str, str]
) -> tuple[BaseModel, type[Any]]:
    """What the ``name`` form sends to the case, and what the case answers with."""
    task_id = fields.get("task_id") or None
    if name == "answer":
        return TaskAnswer(responder=user_id, text=fields.get("text", ""), task_id=task_id), (
            DecisionReceipt
        )
    if name == "acknowledge":
        return PageAcknowledgement(responder=user_id), str
    if name not in {kind.value for kind in TaskActKind}:
        raise ValueError(f"unknown act {name!r}")
    to = fields.get("to", "").strip() or None
    # A name in the directory's roles (and not a person's) is a role; anything else a person,
    # which the case refuses by name if there is no such person.
    to_role = to if to is not None and to in directory.roles and to not in directory.users else None
    return (
        TaskAct(
            actor=user_id,
            reason=fields.get("reason", ""),
            task_id=task_id,
            to_user=None if to_role else to,
            to_role=to_role,
        ),
        DecisionReceipt,
    )


def _local(target: str) -> str:
    """Only redirect within this site: ``next`` must be a local path."""
    # "//host" and "/\\host" are taken by browsers as another site.
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if local and "\\" not in target else "/"


def _proposal_detail(event: AuditEvent | None) -> dict[str, Any]:
    if event is None:
        return {}
    proposal = event.data.get("proposal") or {}
    return proposal if isinstance(proposal, dict) else {}


def _policy_ref(event: AuditEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    ref = (event.data.get("decision") or {}).get("policy")
    return ref if isinstance(ref, dict) else None


def _charts(kpis: report.Report) -> dict[str, Any]:
    status_items = [
        (f"{kind}: {status}", count)
        for kind, statuses in kpis.cases_by_process_and_status.items()
        for status, count in statuses.items()
    ]
    rates = [
        (f"{kind} auto-approval", rate.rate)
        for kind, rate in kpis.auto_approval_by_process.items()
        if rate.rate is not None
    ] + [
        (f"{kind} override", rate.rate)
        for kind, rate in kpis.override_by_process.items()
        if rate.rate is not None
    ]
    tenths = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(len(kpis.confidence.buckets))]
    return {
        "statuses": charts.bar_chart("Cases by process and status", status_items),
        "backlog": charts.bar_chart("Approval backlog by role", list(kpis.backlog_by_role.items())),
        "sla": charts.bar_chart(
            "Open approval tasks by SLA state",
            [
                ("on track", kpis.sla.on_track),
                ("at risk", kpis.sla.at_risk),
                ("breached", kpis.sla.breached),
            ],
            colors=["#20bf6b", "#f7b731", "#eb3b5a"],
        ),
        "rates": charts.bar_chart(
            "Auto-approval and override rates", rates, fmt=charts.percent, maximum=1.0
        ),
        "confidence": charts.bar_chart(
            "Agent confidence distribution",
            list(zip(tenths, kpis.confidence.buckets, strict=True)),
        ),
        "cost": charts.bar_chart(
            "Model cost per case (USD)",
            [(k, s.cost_usd_per_case or 0.0) for k, s in kpis.model_usage_by_process.items()],
            fmt=lambda value: f"${value:.4f}",
        ),
        "tokens": charts.bar_chart(
            "Model tokens per case",
            [(k, s.tokens_per_case or 0.0) for k, s in kpis.model_usage_by_process.items()],
            fmt=lambda value: f"{value:,.0f}",
        ),
        "cycle": charts.bar_chart(
            "Median cycle time (seconds)",
            [(k, c.median_seconds or 0.0) for k, c in kpis.cycle_time_by_process.items()],
            fmt=lambda value: f"{value:,.1f}s",
        ),
    }
