"""``casework deliver``: hand a message from outside to the case it belongs to.

The loan process waits for three kinds: the credit bureau's report, the applicant's reply to a
request for more information, and fraud monitoring's alert. Each names its application and is
routed by it (``casework.correlation``); a case that is not running refuses it, loudly. The case
believes a message only as its source keeps it, so a reply is first handed to the lending system
and an alert to fraud monitoring (the bureau keeps its answers itself), then delivered.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client

from activities.fraud import FraudAlert
from activities.lending import CustomerReply, IncomeDocument, Message
from casework.cli.cases import CommandError, command
from casework.config import Settings
from casework.converter import describe_validation_error
from casework.correlation import (
    BureauAnswerUnavailable,
    NoCaseForMessage,
    SourceRefused,
    bureau_report,
    deliver,
    raise_fraud_alert,
    store_reply,
)

_documents = TypeAdapter(list[IncomeDocument])


def add_parser(commands: Any) -> None:
    """Register ``deliver`` and its message kinds on the CLI's subcommands."""
    parser = commands.add_parser(
        "deliver", help="route a message from outside (bureau, applicant, fraud) to its case"
    )
    kinds = parser.add_subparsers(dest="message", required=True, metavar="MESSAGE")
    report = kinds.add_parser(
        "credit-report", help="the credit bureau's answer to a report request"
    )
    report.add_argument("request_id", help="the bureau's request ID, e.g. CBR-000001")
    reply = kinds.add_parser(
        "customer-reply", help="an applicant's reply to a request for more information"
    )
    reply.add_argument("application_id")
    reply.add_argument("--text", required=True, help="what the applicant wrote")
    reply.add_argument(
        "--documents",
        metavar="JSON|@FILE",
        help='income documents sent with it, e.g. [{"document_id": "D2", "kind": '
        '"bank_statement", "text": "..."}]',
    )
    alert = kinds.add_parser("fraud-alert", help="fraud monitoring flags an application")
    alert.add_argument("application_id")
    alert.add_argument("--reason", required=True, help="what fraud monitoring saw")
    alert.add_argument("--alert-id", help="the alert's ID (default: a new one)")
    alert.add_argument("--source", default="fraud-monitoring", help="who raised it")


def message_from(args: argparse.Namespace) -> Message | None:
    """The message the arguments describe, checked before anything is contacted; None for a
    credit report, which is read from the bureau."""
    match args.message:
        case "customer-reply":
            return _message(
                CustomerReply,
                application_id=args.application_id,
                text=args.text,
                documents=_read_documents(args.documents) if args.documents else [],
            )
        case "fraud-alert":
            return _message(
                FraudAlert,
                application_id=args.application_id,
                alert_id=args.alert_id or f"FA-{uuid.uuid4().hex[:8].upper()}",
                reason=args.reason,
                source=args.source,
            )
    return None


async def run(
    client: Client, settings: Settings, args: argparse.Namespace, message: Message | None
) -> int:
    message = await _kept_by_source(settings, args, message)
    try:
        delivery = await deliver(client, message)
    except NoCaseForMessage as error:
        raise CommandError(str(error)) from error
    print(delivery.summary)
    print(f"  see what the case made of it: {command('casework', 'audit', delivery.case_id)}")
    return 0


async def _kept_by_source(
    settings: Settings, args: argparse.Namespace, message: Message | None
) -> Message:
    """The message as its source keeps it: read from the bureau, or handed to the lending
    system or fraud monitoring first (the case reads it back from there)."""
    async with httpx.AsyncClient(base_url=settings.sandbox_url, timeout=10.0) as sandbox:
        try:
            if isinstance(message, CustomerReply):
                return await store_reply(sandbox, message)
            if isinstance(message, FraudAlert):
                return await raise_fraud_alert(sandbox, message)
            return await bureau_report(sandbox, args.request_id)
        except (BureauAnswerUnavailable, SourceRefused) as error:
            raise CommandError(str(error)) from error
        except httpx.HTTPError as error:
            raise CommandError(f"cannot reach {settings.sandbox_url}: {error!r}") from error


def _message(model: type[Message], **fields: Any) -> Message:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error


def _read_documents(raw: str) -> list[IncomeDocument]:
    source = "--documents"
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.is_file():
            raise CommandError(f"--documents file {path} does not exist")
        source, raw = str(path), path.read_text()
    try:
        return _documents.validate_python(json.loads(raw))
    except json.JSONDecodeError as error:
        raise CommandError(f"{source} is not valid JSON: {error}") from error
    except ValidationError as error:
        raise CommandError(f"{source}: {describe_validation_error(error)}") from error
