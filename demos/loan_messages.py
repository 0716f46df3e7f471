"""Routing messages from outside to the case they belong to, by the business key they carry.

A credit bureau's report, an applicant's reply or a fraud alert names its loan application; the
application's case is ``loan-application-<application_id>``, so the message becomes a signal to
that workflow ID. Temporal keeps a signal in the case's history the moment it is accepted, and
the case buffers it whatever step it is at, so a message that arrives early is never lost.

A message is only a notice: the case believes what the message's source keeps, and reads it
back from there (the bureau's answer by the case's own request ID, the applicant's reply from the
lending system, an alert from fraud monitoring). So a sender first puts the message where its
source keeps it (``store_reply``, ``raise_fraud_alert``; the bureau keeps its own answers), then
delivers the notice; a message nobody keeps is recorded by the case and ignored.

This is the loan process's inbound adapter: its verb ``casework deliver ...`` (declared here,
``COMMANDS``, and found by the CLI at run time) and the demo use it, and a webhook receiving the
bureau's callbacks would call ``deliver`` the same way. A message for an application with no
running case is refused with ``NoCaseForMessage`` rather than dropped, so the sender keeps it
(the sandbox bureau keeps every answer readable, and it can be delivered again).
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.credit_bureau import CreditReport
from activities.fraud import FraudAlert, RaisedFraudAlert
from activities.lending import ApplicantMessage, CustomerReply, IncomeDocument, Message
from casework.cli.cases import CommandError, command
from casework.cli.extensions import Command
from casework.config import Settings
from casework.converter import describe_validation_error
from workflows.loan_application import (
    CREDIT_REPORT,
    CUSTOMER_REPLY,
    FRAUD_ALERT,
    LoanApplicationWorkflow,
)

SIGNALS: dict[type[Message], str] = {
    CreditReport: CREDIT_REPORT,
    CustomerReply: CUSTOMER_REPLY,
    FraudAlert: FRAUD_ALERT,
}


class NoCaseForMessage(LookupError):
    """No running case to deliver to; the message was not delivered and the sender keeps it."""


class BureauAnswerUnavailable(LookupError):
    """The bureau has no answer to give (yet) for the request."""


class SourceRefused(LookupError):
    """The system that keeps a message would not take it (an unknown application, say)."""


class Delivery(BaseModel):
    case_id: str
    signal: str
    summary: str


async def deliver(client: Client, message: Message) -> Delivery:
    """Signal ``message`` to its application's running case."""
    case_id = LoanApplicationWorkflow.case_id(message.application_id)
    signal = SIGNALS[type(message)]
    handle = client.get_workflow_handle(case_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise NoCaseForMessage(
                f"no case {case_id} for application {message.application_id}; "
                f"the {signal} message was not delivered"
            ) from error
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        state = description.status.name.lower() if description.status else "closed"
        raise NoCaseForMessage(f"case {case_id} is {state}; the {signal} message was not delivered")
    await handle.signal(signal, message)
    return Delivery(
        case_id=case_id,
        signal=signal,
        summary=f"{signal} for application {message.application_id} delivered to {case_id}",
    )


async def bureau_report(sandbox: httpx.AsyncClient, request_id: str) -> CreditReport:
    """The bureau's answer to ``request_id``, as the message the case expects."""
    response = await sandbox.get(f"/credit-bureau/requests/{request_id}")
    if response.status_code == 404:
        raise BureauAnswerUnavailable(f"the bureau has no report request {request_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    if body.get("report") is None:
        raise BureauAnswerUnavailable(
            f"the bureau has not answered request {request_id} yet (status "
            f"{body.get('status')}); it answers with POST /credit-bureau/requests/"
            f"{request_id}/answer"
        )
    try:
        return CreditReport.model_validate(body["report"])
    except ValidationError as error:
        raise BureauAnswerUnavailable(
            f"the bureau's answer to {request_id} is not a credit report: "
            + describe_validation_error(error)
        ) from error


async def store_reply(sandbox: httpx.AsyncClient, reply: CustomerReply) -> CustomerReply:
    """Hand the applicant's reply to the lending system, which keeps it; the reply as it keeps
    it, naming its ``message_id``."""
    response = await sandbox.post(
        f"/lending/applications/{reply.application_id}/messages",
        json=reply.model_dump(mode="json", include={"text", "documents"}),
    )
    stored = ApplicantMessage.model_validate(_kept(response, "the lending system"))
    return CustomerReply(
        application_id=stored.application_id,
        text=stored.text,
        documents=[IncomeDocument.model_validate(d) for d in stored.documents],
        message_id=stored.message_id,
    )


async def raise_fraud_alert(sandbox: httpx.AsyncClient, alert: FraudAlert) -> FraudAlert:
    """Record the alert with fraud monitoring, which keeps it; the alert as it keeps it."""
    response = await sandbox.post("/fraud/alerts", json=alert.model_dump(mode="json"))
    raised = RaisedFraudAlert.model_validate(_kept(response, "fraud monitoring"))
    return FraudAlert(
        application_id=raised.application_id,
        alert_id=raised.alert_id,
        reason=raised.reason,
        source=raised.source,
    )


def _kept(response: httpx.Response, system: str) -> dict[str, Any]:
    if response.status_code in (404, 409, 422):
        raise SourceRefused(f"{system} refused the message: {response.json().get('detail')}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


# -- ``casework deliver`` -----------------------------------------------------------------------

KeptMessage = Callable[[httpx.AsyncClient], Awaitable[Message]]
"""How to get a message as its source keeps it: read from the bureau, or handed to the lending
system or fraud monitoring first (the case reads it back from there)."""

_documents = TypeAdapter(list[IncomeDocument])


def _add_arguments(parser: argparse.ArgumentParser) -> None:
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


def _read(args: argparse.Namespace) -> KeptMessage:
    """The message the arguments describe, checked before anything is contacted, and where its
    source keeps it."""
    match args.message:
        case "customer-reply":
            reply = _message(
                CustomerReply,
                application_id=args.application_id,
                text=args.text,
                documents=_read_documents(args.documents) if args.documents else [],
            )
            return lambda sandbox: store_reply(sandbox, reply)
        case "fraud-alert":
            alert = _message(
                FraudAlert,
                application_id=args.application_id,
                alert_id=args.alert_id or f"FA-{uuid.uuid4().hex[:8].upper()}",
                reason=args.reason,
                source=args.source,
            )
            return lambda sandbox: raise_fraud_alert(sandbox, alert)
    request_id: str = args.request_id
    return lambda sandbox: bureau_report(sandbox, request_id)


async def _run(client: Client, settings: Settings, kept: KeptMessage) -> int:
    async with httpx.AsyncClient(base_url=settings.sandbox_url, timeout=10.0) as sandbox:
        try:
            message = await kept(sandbox)
        except (BureauAnswerUnavailable, SourceRefused) as error:
            raise CommandError(str(error)) from error
        except httpx.HTTPError as error:
            raise CommandError(f"cannot reach {settings.sandbox_url}: {error!r}") from error
    try:
        delivery = await deliver(client, message)
    except NoCaseForMessage as error:
        raise CommandError(str(error)) from error
    print(delivery.summary)
    print(f"  see what the case made of it: {command('casework', 'audit', delivery.case_id)}")
    return 0


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


COMMANDS = (
    Command(
        name="deliver",
        help="route a message from outside (bureau, applicant, fraud) to its case",
        description="Hand a message from outside to the loan-application case it belongs to, "
        "routed by its application ID. The case believes a message only as its source keeps "
        "it, so a reply is first handed to the lending system and an alert to fraud monitoring "
        "(the bureau keeps its answers itself), then delivered; a case that is not running "
        "refuses it.",
        add_arguments=_add_arguments,
        read=_read,
        run=_run,
    ),
)
