"""Helpers for the vendor-onboarding tests.

Sample applications and documents; the vendor portal, ERP vendor master, outbox and document
checker faked by activity name (workflow tests, replay recordings); case helpers; and for the
integration tests the sandbox over HTTP, the scripted model keyed by document, and the command
line run against the test's dev server.

Documents are plain text (the text of a scan); the offline stand-in checker reads their
``Label: value`` lines, so the fakes answer like the real process would without a model.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.agents.vendor_onboarding import DocumentExtraction, stand_in_extraction
from activities.erp_vendors import ErpVendor, VendorCreation, VendorDeactivation
from activities.vendors import (
    ApplicationLookup,
    ApplicationStatusChange,
    DocumentLookup,
    DocumentResubmission,
    VendorApplication,
    VendorDocument,
)
from casework.agents.messages import AgentRequest, AgentResult, AgentUsage
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.case.tasks import HumanTask
from casework.governance import activity as policy
from casework.systems.notifications import Notification, NotificationRequest
from tests.conftest import BIN
from tests.integration_support import case_data, eventually
from tests.scripted_llm import ScriptedLlmServer, ScriptedReply
from workflows.vendor_onboarding import (
    VendorOnboardingInput,
    VendorOnboardingResult,
    VendorOnboardingWorkflow,
)

CaseHandle = WorkflowHandle[VendorOnboardingWorkflow, VendorOnboardingResult]

VENDOR_NAME = "Nordwind Logistik GmbH"
TAX_ID = "DE123456789"
IBAN = "DE89370400440532013000"
FOREIGN_IBAN = "GB33BUKB20201555555555"
CONTACT = "onboarding@nordwind.example"
# The session's time-skipping server may have skipped decades ahead: "valid" must stay valid.
FAR_FUTURE = "9999-12-31"

# -- documents ----------------------------------------------------------------------------------


def registration_text(name: str = VENDOR_NAME) -> str:
    return f"COMMERCIAL REGISTER EXTRACT\nCompany: {name}\nRegister number: HRB 12345\n"


def tax_certificate_text(
    name: str = VENDOR_NAME, tax_id: str = TAX_ID, valid_until: str = FAR_FUTURE
) -> str:
    return (
        f"TAX REGISTRATION CERTIFICATE\nCompany: {name}\nTax ID: {tax_id}\n"
        f"Valid until: {valid_until}\n"
    )


def bank_confirmation_text(name: str = VENDOR_NAME, iban: str = IBAN) -> str:
    return f"BANK CONFIRMATION\nAccount holder: {name}\nIBAN: {iban}\nSigned: branch manager\n"


def document(document_id: str, kind: str, content: str) -> VendorDocument:
    return VendorDocument(
        document_id=document_id, kind=kind, filename=f"{document_id}.pdf", content=content
    )


def documents_for(
    application_id: str,
    *,
    tax_certificate: str | None = None,
    bank_confirmation: str | None = None,
    without: tuple[str, ...] = (),
) -> list[VendorDocument]:
    """The three required documents, in order; override a text, or leave kinds out."""
    texts = {
        "company_registration": registration_text(),
        "tax_certificate": tax_certificate or tax_certificate_text(),
        "bank_confirmation": bank_confirmation or bank_confirmation_text(),
    }
    short = {"company_registration": "REG", "tax_certificate": "TAX", "bank_confirmation": "BANK"}
    return [
        document(f"{application_id}-{short[kind]}", kind, text)
        for kind, text in texts.items()
        if kind not in without
    ]


def application(
    application_id: str, documents: list[VendorDocument] | None = None, **fields: Any
) -> VendorApplication:
    values: dict[str, Any] = {
        "application_id": application_id,
        "vendor_name": VENDOR_NAME,
        "country": "DE",
        "tax_id": TAX_ID,
        "bank_account": IBAN,
        "contact_email": CONTACT,
        "status": "submitted",
        "documents": documents_for(application_id) if documents is None else documents,
    }
    return VendorApplication.model_validate(values | fields)


def resubmission(
    application_id: str, document_id: str, kind: str, content: str
) -> DocumentResubmission:
    return DocumentResubmission(
        application_id=application_id,
        document_id=document_id,
        kind=kind,
        filename=f"{document_id}.pdf",
        content=content,
        submitted_by=CONTACT,
    )


# -- the systems, faked by activity name --------------------------------------------------------


@dataclass
class FakeVendorSystems:
    application: VendorApplication
    extractions: dict[str, DocumentExtraction | ApplicationError] = field(default_factory=dict)
    """Answers of the document checker by document ID; others come from the offline stand-in."""
    failing_statuses: set[str] = field(default_factory=set)
    """Application statuses the fake portal refuses for good."""
    status_changes: list[ApplicationStatusChange] = field(default_factory=list)
    vendors: dict[str, ErpVendor] = field(default_factory=dict)
    """ERP vendors by the idempotency key that created them."""
    create_calls: int = 0
    create_error: ApplicationError | None = None
    """What the fake ERP answers every vendor creation with, if set."""
    deactivations: list[VendorDeactivation] = field(default_factory=list)
    notifications: list[NotificationRequest] = field(default_factory=list)
    agent_requests: list[AgentRequest] = field(default_factory=list)
    failing_recipients: set[str] = field(default_factory=set)
    """Addresses the fake outbox refuses for good."""
    status_gate: asyncio.Event | None = None
    """When set, application status changes wait for it: holds a case while it closes."""
    uploads: dict[str, VendorDocument] = field(default_factory=dict)
    """Documents the vendor uploaded to the portal after the application, by document ID."""

    def upload(self, submission: DocumentResubmission) -> DocumentResubmission:
        """Play the vendor uploading the document to the portal; the resubmission to signal."""
        for earlier in self.uploads.values():
            if earlier.kind == submission.kind and earlier.superseded_by is None:
                earlier.superseded_by = submission.document_id
        self.uploads[submission.document_id] = submission.as_document()
        return submission

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="vendors.get_application")
        async def get_application(lookup: ApplicationLookup) -> VendorApplication:
            if lookup.application_id != self.application.application_id:
                raise ApplicationError(
                    f"vendor application {lookup.application_id} not found",
                    type="RecordNotFound",
                    non_retryable=True,
                )
            return self.application

        @activity.defn(name="vendors.get_document")
        async def get_document(lookup: DocumentLookup) -> VendorDocument:
            document = self.uploads.get(lookup.document_id)
            if document is None or lookup.application_id != self.application.application_id:
                raise ApplicationError(
                    f"vendor application {lookup.application_id} has no document "
                    f"{lookup.document_id}",
                    type="RecordNotFound",
                    non_retryable=True,
                )
            return document

        @activity.defn(name="vendors.set_application_status")
        async def set_application_status(change: ApplicationStatusChange) -> VendorApplication:
            if self.status_gate is not None:
                await self.status_gate.wait()
            if change.status in self.failing_statuses:
                raise ApplicationError(
                    f"vendor application {change.application_id} is locked",
                    type="RequestConflict",
                    non_retryable=True,
                )
            self.status_changes.append(change)
            return self.application.model_copy(update={"status": change.status})

        @activity.defn(name="erp.create_vendor")
        async def create_vendor(creation: VendorCreation) -> ErpVendor:
            self.create_calls += 1
            if self.create_error is not None:
                raise self.create_error
            if creation.idempotency_key not in self.vendors:
                self.vendors[creation.idempotency_key] = ErpVendor(
                    vendor_id=f"VEN-{len(self.vendors) + 1:06d}",
                    name=creation.name,
                    country=creation.country,
                    tax_id=creation.tax_id,
                    bank_account=creation.bank_account,
                    status="active",
                    application_id=creation.application_id,
                    approved_by=creation.approved_by,
                    documents=creation.documents,
                )
            return self.vendors[creation.idempotency_key]

        @activity.defn(name="erp.deactivate_vendor")
        async def deactivate_vendor(deactivation: VendorDeactivation) -> ErpVendor:
            self.deactivations.append(deactivation)
            vendor = next(v for v in self.vendors.values() if v.vendor_id == deactivation.vendor_id)
            vendor.status = "inactive"
            return vendor

        @activity.defn(name="notifications.send")
        async def send(request: NotificationRequest) -> Notification:
            if request.to in self.failing_recipients:
                raise ApplicationError(
                    f"mailbox {request.to} does not exist",
                    type="RequestRejected",
                    non_retryable=True,
                )
            self.notifications.append(request)
            return Notification(
                notification_id=f"N-{len(self.notifications)}",
                to=request.to,
                subject=request.subject,
            )

        @activity.defn(name="llm.propose")
        async def propose(request: AgentRequest) -> AgentResult:
            self.agent_requests.append(request)
            answer = self.extractions.get(request.context["document"]["document_id"])
            if isinstance(answer, ApplicationError):
                raise answer
            extraction = answer or stand_in_extraction(request.context)
            return AgentResult(
                output=extraction.model_dump(mode="json"),
                usage=AgentUsage(
                    model="scripted",
                    stand_in=False,
                    prompt_tokens=120,
                    completion_tokens=40,
                    cost_usd=0.001,
                    attempt=activity.info().attempt,
                ),
            )

        return [
            policy.load,
            get_application,
            get_document,
            set_application_status,
            create_vendor,
            deactivate_vendor,
            send,
            propose,
        ]

    @property
    def statuses(self) -> list[str]:
        return [change.status for change in self.status_changes]

    def notified(self, to: str) -> list[str]:
        return [n.subject for n in self.notifications if n.to == to]


# -- running cases ------------------------------------------------------------------------------


@asynccontextmanager
async def case_worker(env: WorkflowEnvironment, systems: FakeVendorSystems) -> AsyncIterator[str]:
    task_queue = f"test-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[VendorOnboardingWorkflow],
        activities=systems.activities(),
    ):
        yield task_queue


async def start_case(
    env: WorkflowEnvironment, task_queue: str, application_id: str, submitted_by: str = "alice"
) -> CaseHandle:
    return await env.client.start_workflow(
        VendorOnboardingWorkflow.run,
        VendorOnboardingInput(application_id=application_id, submitted_by=submitted_by),
        id=f"{VendorOnboardingWorkflow.case_id(application_id)}-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


async def state(handle: WorkflowHandle) -> CaseState:
    return await handle.query("state", result_type=CaseState)


async def reached(handle: WorkflowHandle, status: str) -> CaseState:
    """Wait until the case is in ``status``, by asking it."""

    async def probe() -> CaseState | None:
        current = await state(handle)
        return current if current.status == status else None

    return await eventually(probe, what=f"{handle.id} to reach {status}")


async def open_reviews(handle: WorkflowHandle, count: int) -> dict[str, HumanTask]:
    """Wait until ``count`` review tasks are open; returns them by the role they are for."""

    async def probe() -> list[HumanTask] | None:
        tasks = await handle.query("open_tasks", result_type=list[HumanTask])
        return tasks if len(tasks) == count else None

    tasks = await eventually(probe, what=f"{handle.id} to open {count} reviews")
    return {task.role: task for task in tasks}


async def audit(handle: WorkflowHandle) -> list[AuditEvent]:
    return await handle.query("audit", result_type=list[AuditEvent])


def events_of(events: list[AuditEvent], kind: AuditKind) -> list[AuditEvent]:
    return [event for event in events if event.kind is kind]


async def audited(handle: WorkflowHandle, kind: AuditKind, count: int = 1) -> list[AuditEvent]:
    """Wait until the audit trail holds ``count`` events of ``kind``; returns them."""

    async def probe() -> list[AuditEvent] | None:
        found = events_of(await audit(handle), kind)
        return found if len(found) >= count else None

    return await eventually(probe, what=f"{count} {kind.value} event(s) in {handle.id}")


async def cancel(handle: WorkflowHandle) -> None:
    """Cancel and wait until the case has closed, while its worker still runs: a case left with
    a pending workflow task would stop the test server from skipping time for later tests."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def model_calls(handle: WorkflowHandle) -> tuple[list[int], list[int]]:
    """Event IDs at which ``llm.propose`` activities were scheduled and at which they ended."""
    history = await handle.fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == "llm.propose"
    }
    ended = [
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and event.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    ]
    return sorted(scheduled), ended


# -- the real stack: the sandbox over HTTP, the scripted model, the command line ----------------


def document_id_of(chat_request: dict[str, Any]) -> str | None:
    data = case_data(chat_request)
    return None if data is None else data.get("document", {}).get("document_id")


def extraction_reply(kind: str, **fields: Any) -> ScriptedReply:
    """The model's answer for one document: a ``DocumentExtraction`` as JSON."""
    values = {"document_kind": kind, "issues": [], "confidence": 0.93} | fields
    return ScriptedReply(content=json.dumps(values), prompt_tokens=210, completion_tokens=35)


class ScriptedChecker:
    """Scripts the model behind the document checker, one document at a time: keyed by the
    document in the request's case data, so a test's leftovers never reach another's case."""

    def __init__(self, server: ScriptedLlmServer) -> None:
        self.server = server
        self._replies: dict[str, ScriptedReply] = {}
        server.responder = self._answer

    def answer(self, document_id: str, reply: ScriptedReply) -> None:
        self._replies[document_id] = reply

    def answer_valid(self, application: VendorApplication) -> None:
        """Readings of the application's three documents that match what it states."""
        name, prefix = application.vendor_name, application.application_id
        self.answer(f"{prefix}-REG", extraction_reply("company_registration", company_name=name))
        self.answer(
            f"{prefix}-TAX",
            extraction_reply(
                "tax_certificate",
                company_name=name,
                tax_id=application.tax_id,
                valid_until=FAR_FUTURE,
            ),
        )
        self.answer(
            f"{prefix}-BANK",
            extraction_reply("bank_confirmation", company_name=name, iban=application.bank_account),
        )

    def requests_for(self, document_id: str) -> list[dict[str, Any]]:
        return [body for body in list(self.server.requests) if document_id_of(body) == document_id]

    def _answer(self, body: dict[str, Any]) -> ScriptedReply:
        document_id = document_id_of(body)
        reply = self._replies.get(document_id or "")
        if reply is None:
            # 400 is non-retryable: an unscripted document fails fast instead of being retried.
            message = f"no scripted reading of document {document_id!r}"
            return ScriptedReply(status=400, error_body={"error": {"message": message}})
        return reply


class VendorSystems:
    """The sandbox's vendor portal, ERP vendor master and outbox, as an operator sees them."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def seed(self, application: VendorApplication) -> None:
        body = application.model_dump(
            mode="json", exclude={"status", "erp_vendor_id", "documents"}
        ) | {
            "documents": [
                d.model_dump(mode="json", exclude={"uploaded_at", "superseded_by"})
                for d in application.documents
            ]
        }
        response = await self._http.post("/vendors/applications", json=body)
        assert response.status_code == 201, response.text

    async def application(self, application_id: str) -> dict[str, Any]:
        response = await self._http.get(f"/vendors/applications/{application_id}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    async def erp_vendors(self, application_id: str) -> list[dict[str, Any]]:
        response = await self._http.get("/erp/vendors", params={"application_id": application_id})
        response.raise_for_status()
        vendors: list[dict[str, Any]] = response.json()
        return vendors

    async def notifications(self, *, to: str, case_id: str) -> list[Notification]:
        response = await self._http.get("/notifications", params={"to": to, "case_id": case_id})
        response.raise_for_status()
        return [Notification.model_validate(row) for row in response.json()]

    async def inject_fault(self, **spec: Any) -> None:
        (await self._http.post("/_faults", json=spec)).raise_for_status()

    async def clear_faults(self) -> None:
        (await self._http.delete("/_faults")).raise_for_status()


def new_application(label: str, **documents: Any) -> VendorApplication:
    """An application of a vendor of its own: the ERP takes one active vendor per tax ID.

    ``documents``: text overrides as for ``documents_for``."""
    application_id = f"APP-IT-{label}-{uuid.uuid4().hex[:8]}"
    tax_id = f"DE{uuid.uuid4().int % 10**9:09d}"
    texts = documents_for(
        application_id, tax_certificate=tax_certificate_text(tax_id=tax_id), **documents
    )
    return application(application_id, texts, tax_id=tax_id)


async def run_command(
    temporal: WorkflowEnvironment, home: Path, *command: str, sandbox_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``casework`` or ``temporal`` against the test's dev server, as an operator would.

    ``home`` is the command's CASEWORK_HOME: a developer's own stack state (or TEMPORAL_* and
    CASEWORK_* settings) must not redirect the command or change how it encodes payloads.
    In a thread: the worker serving the case runs on this event loop and must keep running.
    """
    address = temporal.client.service_client.config.target_host
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEMPORAL_", "CASEWORK_"))
    }
    env |= {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": temporal.client.namespace,
        "CASEWORK_HOME": str(home),
    }
    if sandbox_url is not None:
        env["CASEWORK_SANDBOX_URL"] = sandbox_url
    argv = [str(BIN / command[0]), *command[1:]]
    if command[0] == "temporal":
        argv += ["--address", address, "--disable-config-file", "--disable-config-env"]
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=60, env=env
    )
