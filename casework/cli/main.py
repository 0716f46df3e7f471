"""``casework``: run the embedded stack, start cases, decide on them, read their audit trail."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from casework import telemetry
from casework.cli import cases, deliver
from casework.cli.cases import CommandError
from casework.cli.stack import StackConfig, StackError, stack_down, stack_status, stack_up
from casework.client import connect
from casework.codec import CodecKeyError
from casework.config import Settings, SettingsError
from casework.processes import PROCESSES

EPILOG = """\
examples:
  casework up                                  start Temporal, the sandbox and a worker
  casework start invoice-exception --input '{"invoice_id": "INV-1001", "submitted_by": "alice"}'
  casework inbox --role ap_supervisor          cases waiting for a decision
  casework show invoice-exception-INV-1001
  casework approve invoice-exception-INV-1001 --as bob --comment "surcharge agreed"
  casework audit invoice-exception-INV-1001 --jsonl > audit.jsonl
  casework audit --verify audit.jsonl          detect any edited, removed or reordered line
  casework report --json                       KPIs: backlog, SLA, overrides, model cost
  casework resubmit vendor-onboarding-APP-1001 --kind tax_certificate --file tax.txt
  casework demo                                one case per outcome, then a summary table

Temporal connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY ... (temporalio
envconfig); default 127.0.0.1:7233. Model: CASEWORK_MODEL (litellm model name); without it an
offline stand-in model answers.
"""


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(f"amount must be a positive number, got {value!r}")
    return amount


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casework",
        description="Governed, agentic business processes on Temporal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("up", help="start the embedded stack in the background (idempotent)")
    commands.add_parser("down", help="stop the processes `casework up` started")
    commands.add_parser("status", help="show whether the embedded stack is running")
    commands.add_parser("worker", help="run a worker in the foreground")
    ui = commands.add_parser(
        "ui", help="run the review queue web app in the foreground (loopback only)"
    )
    ui.add_argument(
        "--reset-password", metavar="USER", help="give USER a new sign-in password and print it"
    )

    start = commands.add_parser("start", help="start a case")
    start.add_argument(
        "process",
        choices=sorted(PROCESSES),
        help="; ".join(f"{p.name}: {p.description}" for p in PROCESSES.values()),
    )
    start.add_argument(
        "--input", required=True, metavar="JSON|@FILE", help="case input as JSON or @file.json"
    )
    start.add_argument("--id", help="case ID (default: derived from the business key)")
    start.add_argument(
        "--wait",
        action="store_true",
        help="follow the case until it finishes or waits for a person",
    )

    show = commands.add_parser("show", help="show a case: status, facts, open task, result")
    show.add_argument("case")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    approve = commands.add_parser("approve", help="approve the open task of a case")
    approve.add_argument("case")
    approve.add_argument("--as", dest="user", required=True, help="who decides (directory user)")
    approve.add_argument("--comment")
    approve.add_argument(
        "--amount", type=_amount, help="approve an edited amount instead of the full one"
    )
    approve.add_argument("--task", help="which task, when the case has several open")

    reject = commands.add_parser("reject", help="reject the open task of a case")
    reject.add_argument("case")
    reject.add_argument("--as", dest="user", required=True, help="who decides (directory user)")
    reject.add_argument("--comment", required=True, help="why (required)")
    reject.add_argument("--task", help="which task, when the case has several open")

    answer = commands.add_parser("answer", help="answer the question an agent asked in a case")
    answer.add_argument("case", help="the case, or its agent region")
    answer.add_argument("--as", dest="user", required=True, help="who answers (directory user)")
    answer.add_argument("--text", required=True, help="the answer, handed to the agent")
    answer.add_argument("--task", help="which question, when the case has several open")

    acknowledge = commands.add_parser("acknowledge", help="acknowledge a severity-1 page")
    acknowledge.add_argument("case")
    acknowledge.add_argument("--as", dest="user", required=True, help="who was paged")

    deliver.add_parser(commands)
    resubmit = commands.add_parser(
        "resubmit", help="send a vendor's document to a vendor-onboarding case waiting for it"
    )
    resubmit.add_argument("case")
    resubmit.add_argument(
        "--kind", required=True, help="what the document is, e.g. tax_certificate"
    )
    content = resubmit.add_mutually_exclusive_group(required=True)
    content.add_argument("--file", help="the document's text (UTF-8)")
    content.add_argument("--text", help="the document's text, inline")
    resubmit.add_argument("--document-id", help="default: derived from the application and text")
    resubmit.add_argument("--filename", help="the file name the vendor gave it")
    resubmit.add_argument("--as", dest="sender", help="who at the vendor sends it")

    inbox = commands.add_parser(
        "inbox", help="cases awaiting a decision or an answer, soonest due first"
    )
    inbox.add_argument("--role", help="only tasks assigned to this role")
    inbox.add_argument("--json", action="store_true", help="machine-readable output")

    audit = commands.add_parser(
        "audit", help="a case's audit trail; export it hash-chained, or verify an export"
    )
    audit.add_argument("case", nargs="?")
    audit.add_argument(
        "--jsonl",
        action="store_true",
        help="export: one JSON object per line, each chained to the one before by its hash",
    )
    audit.add_argument(
        "--verify",
        metavar="FILE",
        type=Path,
        help="check an exported file: any edited, removed or reordered line is named",
    )

    report = commands.add_parser(
        "report", help="KPIs over every case: backlog, SLA, auto-approval, overrides, cost"
    )
    report.add_argument("--json", action="store_true", help="machine-readable output")

    commands.add_parser(
        "demo", help="seed the sandbox and run one case per outcome on the running stack"
    )
    return parser


def _with_client(command: Callable[[Client], Awaitable[int]]) -> int:
    async def run() -> int:
        try:
            client = await connect(
                runtime=Runtime(telemetry=TelemetryConfig()),
                interceptors=telemetry.tracing_interceptors("casework-cli"),
            )
        except RuntimeError as error:
            raise CommandError(
                f"cannot reach Temporal ({error}); is the stack running? try: casework up"
            ) from error
        except CodecKeyError as error:
            raise CommandError(str(error)) from error
        return await command(client)

    try:
        return asyncio.run(run())
    finally:
        telemetry.shutdown_tracing()
        # Release the client's runtime while the interpreter is fully alive (see connect()).
        gc.collect()


def _ui(settings: Settings, reset_user: str | None) -> int:
    from casework.policies.loader import load_policy
    from casework.policies.models import Directory
    from casework.web.auth import Credentials
    from casework.web.server import NotLoopback, serve

    if reset_user:
        directory = Directory.model_validate(load_policy("directory").content)
        if reset_user not in directory.users:
            raise CommandError(f"{reset_user!r} is not a user in the directory")
        password = Credentials(settings.state_dir).set_password(reset_user)
        print(f"new review-queue password for {reset_user}: {password}")
        return 0
    try:
        serve(settings)
    except NotLoopback as error:
        raise CommandError(str(error)) from error
    return 0


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    match args.command:
        case "up":
            from casework.web.server import ensure_demo_credentials

            config = StackConfig.from_settings(settings)
            created = ensure_demo_credentials(settings)
            result = stack_up(config)
            if not result.already_running:
                print(
                    f"casework is up. Temporal Web UI: {result.ui_url}  "
                    f"sandbox: {result.sandbox_url}"
                )
                print(f"review queue: {result.review_url}  worker metrics: {result.metrics_url}")
                print(
                    f"payloads are encrypted with the key ring {result.key_ring}; the Web UI "
                    f"decrypts them through the codec server at {result.codec_url}"
                )
                print(f"logs in {result.log_dir}; stop with: casework down")
            handout = settings.state_dir / "ui" / "demo-credentials.txt"
            if created:
                example = next(
                    (u for u in ("carol", "bob", "frank") if u in created), next(iter(created))
                )
                print(
                    f"review-queue passwords created for {len(created)} directory users in "
                    f"{handout} (e.g. {example}: {created[example]})"
                )
            elif handout.exists():
                print(f"review-queue sign-in: passwords in {handout}")
            return 0
        case "down":
            stack_down(StackConfig.from_settings(settings))
            return 0
        case "status":
            statuses = stack_status(StackConfig.from_settings(settings))
            for name, status in statuses.items():
                state = "healthy" if status.healthy else "running" if status.running else "stopped"
                print(f"{name:<9} {state}" + (f" (pid {status.pid})" if status.pid else ""))
            return 0 if all(s.healthy for s in statuses.values()) else 1
        case "worker":
            from casework.workers.main import main as worker_main

            worker_main()
            return 0
        case "ui":
            return _ui(settings, args.reset_password)
        case "start":
            request = cases.validate_input(args.process, args.input)
            return _with_client(
                lambda c: cases.start(c, settings, args.process, request, args.id, args.wait)
            )
        case "show":
            return _with_client(lambda c: cases.show(c, settings, args.case, args.json))
        case "approve":
            return _with_client(
                lambda c: cases.decide(
                    c, args.case, args.user, "approve", args.comment, args.amount, args.task
                )
            )
        case "reject":
            return _with_client(
                lambda c: cases.decide(
                    c, args.case, args.user, "reject", args.comment, None, args.task
                )
            )
        case "answer":
            return _with_client(
                lambda c: cases.answer(c, args.case, args.user, args.text, args.task)
            )
        case "acknowledge":
            return _with_client(lambda c: cases.acknowledge(c, args.case, args.user))
        case "deliver":
            message = deliver.message_from(args)
            return _with_client(lambda c: deliver.run(c, settings, args, message))
        case "resubmit":
            from casework.cli.resubmit import read_document, resubmit

            text = args.text if args.file is None else read_document(args.file)
            return _with_client(
                lambda c: resubmit(
                    c,
                    args.case,
                    args.kind,
                    text,
                    filename=args.filename or (Path(args.file).name if args.file else None),
                    document_id=args.document_id,
                    submitted_by=args.sender,
                )
            )
        case "inbox":
            return _with_client(lambda c: cases.inbox(c, settings, args.role, args.json))
        case "audit" if args.verify:
            return cases.verify_audit(args.verify)
        case "audit":
            if args.case is None:
                raise CommandError("audit needs a CASE, or --verify FILE")
            return _with_client(lambda c: cases.audit(c, args.case, args.jsonl))
        case "report":
            return _with_client(lambda c: cases.report(c, args.json))
        case "demo":
            from casework.cli.demo import run_demo

            return _with_client(lambda c: run_demo(c, settings))
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (CommandError, StackError, SettingsError) as error:
        print(f"casework: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader has seen enough.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
