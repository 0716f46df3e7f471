"""``casework resubmit``: send a vendor's document to a vendor-onboarding case that waits for it.

A verb of the vendor-onboarding process, declared here (``COMMANDS``) and found by the CLI at run
time (``casework.cli.extensions``); the demo uses the same upload to play the vendor.

It uploads the document to the vendor portal (where the case reads it back from: a document the
portal does not have does not count), sends the ``resubmit`` signal (what the portal would send),
then reads the case's audit trail to say whether the case took the document or ignored it, and
why.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.vendors import DocumentResubmission
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.cli.cases import CommandError, command
from casework.cli.extensions import Command
from casework.config import Settings
from casework.converter import describe_validation_error

SIGNAL = "resubmit"


def read_document(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"--file {file} does not exist")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(f"--file {file} is not UTF-8 text: {error}") from error


def default_document_id(application_id: str, kind: str, content: str) -> str:
    """Named after the content, so sending the same document twice is recognised as such."""
    digest = hashlib.sha256(content.encode()).hexdigest()[:8].upper()
    return f"{application_id}-{re.sub(r'[^A-Z0-9]+', '-', kind.upper())}-{digest}"


async def upload_to_portal(sandbox: httpx.AsyncClient, submission: DocumentResubmission) -> None:
    """Put the document in the vendor portal, as the vendor's upload; the same document already
    there is fine (sent again), another one under its ID is refused."""
    path = f"/vendors/applications/{submission.application_id}/documents"
    response = await sandbox.post(
        path, json=submission.model_dump(include={"document_id", "kind", "filename", "content"})
    )
    if response.status_code == 201:
        return
    if response.status_code == 409:
        existing = await sandbox.get(f"{path}/{submission.document_id}")
        if existing.is_success and existing.json().get("content") == submission.content:
            return
    raise CommandError(
        f"the vendor portal refused document {submission.document_id}: "
        + str(response.json().get("detail", response.text))
    )


async def resubmit(
    client: Client,
    case_id: str,
    kind: str,
    content: str,
    *,
    sandbox_url: str,
    filename: str | None = None,
    document_id: str | None = None,
    submitted_by: str | None = None,
    timeout_seconds: float = 15.0,
) -> int:
    handle = client.get_workflow_handle(case_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(f"no case {case_id!r}") from error
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise CommandError(f"case {case_id} is no longer running; it takes no documents")
    state = await handle.query("state", result_type=CaseState)
    application_id = state.facts.get("application_id")
    if not application_id:
        raise CommandError(f"case {case_id} is not a vendor-onboarding case")
    try:
        submission = DocumentResubmission(
            application_id=str(application_id),
            document_id=document_id or default_document_id(str(application_id), kind, content),
            kind=kind,
            filename=filename or f"{kind}.txt",
            content=content,
            submitted_by=submitted_by,
        )
    except ValidationError as error:
        raise CommandError(describe_validation_error(error)) from error

    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0) as sandbox:
        try:
            await upload_to_portal(sandbox, submission)
        except httpx.HTTPError as error:
            raise CommandError(
                f"cannot reach the vendor portal at {sandbox_url}: {error!r}"
            ) from error
    seen = len(await handle.query("audit", result_type=list[AuditEvent]))
    await handle.signal(SIGNAL, submission)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        events = await handle.query("audit", result_type=list[AuditEvent])
        for event in events[seen:]:
            # Received, but not yet read back from the portal: the verdict comes after.
            if event.data.get("document_id") != submission.document_id or event.data.get(
                "confirming"
            ):
                continue
            if event.kind is AuditKind.MESSAGE_RECEIVED:
                print(f"{case_id} took document {submission.document_id}: {event.summary}")
                print(f"  follow: {command('casework', 'show', case_id)}")
                return 0
            if event.kind is AuditKind.DECISION_REFUSED:
                raise CommandError(event.summary)
        await asyncio.sleep(0.2)
    raise CommandError(
        f"sent document {submission.document_id} to {case_id}, but the case has not recorded it "
        f"within {timeout_seconds:.0f}s; is the worker running? see: casework audit {case_id}"
    )


@dataclass(frozen=True)
class Resubmission:
    """``casework resubmit``'s arguments, read and checked."""

    case_id: str
    kind: str
    content: str
    filename: str | None
    document_id: str | None
    submitted_by: str | None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case")
    parser.add_argument("--kind", required=True, help="what the document is, e.g. tax_certificate")
    content = parser.add_mutually_exclusive_group(required=True)
    content.add_argument("--file", help="the document's text (UTF-8)")
    content.add_argument("--text", help="the document's text, inline")
    parser.add_argument("--document-id", help="default: derived from the application and text")
    parser.add_argument("--filename", help="the file name the vendor gave it")
    parser.add_argument("--as", dest="sender", help="who at the vendor sends it")


def _read(args: argparse.Namespace) -> Resubmission:
    return Resubmission(
        case_id=args.case,
        kind=args.kind,
        content=args.text if args.file is None else read_document(args.file),
        filename=args.filename or (Path(args.file).name if args.file else None),
        document_id=args.document_id,
        submitted_by=args.sender,
    )


async def _run(client: Client, settings: Settings, request: Resubmission) -> int:
    return await resubmit(
        client,
        request.case_id,
        request.kind,
        request.content,
        sandbox_url=settings.sandbox_url,
        filename=request.filename,
        document_id=request.document_id,
        submitted_by=request.submitted_by,
    )


COMMANDS = (
    Command(
        name="resubmit",
        help="send a vendor's document to a vendor-onboarding case waiting for it",
        add_arguments=_add_arguments,
        read=_read,
        run=_run,
    ),
)
