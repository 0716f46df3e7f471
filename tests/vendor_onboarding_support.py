"""Helpers for the vendor-onboarding tests.

Sample applications and documents; the vendor portal, ERP vendor master, outbox and document
checker faked by activity name (``casework.testing.fakes``: workflow tests, replay recordings);
case helpers; and for the integration tests the sandbox over HTTP, the scripted model keyed by
document, and the command line run against the test's dev server.

Documents are plain text (the text of a scan); the offline stand-in checker reads their
``Label: value`` lines, so the fakes answer like the real process would without a model.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.agents.vendor_onboarding import DocumentExtraction, stand_in_extraction
from activities.erp_vendors import (
    ErpVendor,
    VendorCreation,
    VendorCreationLookup,
    VendorDeactivation,
)
from activities.vendors import (
    ApplicationLookup,
    ApplicationStatusChange,
    DocumentLookup,
    DocumentResubmission,
    VendorApplication,
    VendorDocument,
)
from casework.agents.messages import AgentRequest
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.case.tasks import HumanTask
from casework.systems.notifications import Notification
from casework.testing.cases import audit, events_of, state
from casework.testing.fakes import FakeAgent, FakeOutbox, Ledger, fake, fake_worker, not_found
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedModel, ScriptedReply
from casework.testing.temporal import BIN, eventually
from tests.conftest import NOWHERE
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
class FakeVendorSystems(FakeOutbox, FakeAgent):
    """The vendor portal, the ERP vendor master, the outbox and the document checker, in
    memory, by activity name."""

    application: VendorApplication
    extractions: dict[str, DocumentExtraction | ApplicationError] = field(default_factory=dict)
    """Answers of the document checker by document ID; others come from the offline stand-in."""
    failing_statuses: set[str] = field(default_factory=set)
    """Application statuses the fake portal refuses for good."""
    status_changes: list[ApplicationStatusChange] = field(default_factory=list)
    vendors: Ledger[ErpVendor] = field(default_factory=Ledger)
    """ERP vendors by the idempotency key that created them."""
    create_error: ApplicationError | None = None
    """What the fake ERP answers every vendor creation with, if set."""
    creation_answers_lost: bool = False
    """The vendor is created, then every answer to the creation is lost: it fails for good."""
    erp_unreadable: bool = False
    """Looking up the vendor a creation made fails for good."""
    status_gate: asyncio.Event | None = None
    """When set, application status changes wait for it: holds a case while it closes."""
    uploads: dict[str, VendorDocument] = field(default_factory=dict)
    """Documents the vendor uploaded to the portal after the application, by document ID."""

    def __post_init__(self) -> None:
        if self.create_error is not None:
            self.script("erp.create_vendor", self.create_error)

    def upload(self, submission: DocumentResubmission) -> DocumentResubmission:
        """Play the vendor uploading the document to the portal; the resubmission to signal."""
        for earlier in self.uploads.values():
            if earlier.kind == submission.kind and earlier.superseded_by is None:
                earlier.superseded_by = submission.document_id
        self.uploads[submission.document_id] = submission.as_document()
        return submission

    def agent_answer_to(self, request: AgentRequest) -> DocumentExtraction | ApplicationError:
        answer = self.extractions.get(request.context["document"]["document_id"])
        return answer or stand_in_extraction(request.context)

    @fake("vendors.get_application")
    async def get_application(self, lookup: ApplicationLookup) -> VendorApplication:
        if lookup.application_id != self.application.application_id:
            raise not_found(f"vendor application {lookup.application_id}")
        return self.application

    @fake("vendors.get_document")
    async def get_document(self, lookup: DocumentLookup) -> VendorDocument:
        document = self.uploads.get(lookup.document_id)
        if document is None or lookup.application_id != self.application.application_id:
            raise ApplicationError(
                f"vendor application {lookup.application_id} has no document {lookup.document_id}",
                type="RecordNotFound",
                non_retryable=True,
            )
        return document

    @fake("vendors.set_application_status")
    async def set_application_status(self, change: ApplicationStatusChange) -> VendorApplication:
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

    @fake("erp.create_vendor")
    async def create_vendor(self, creation: VendorCreation) -> ErpVendor:
        created = self.vendors.once(
            creation.idempotency_key,
            lambda number: ErpVendor(
                vendor_id=f"VEN-{number:06d}",
                name=creation.name,
                country=creation.country,
                tax_id=creation.tax_id,
                bank_account=creation.bank_account,
                status="active",
                application_id=creation.application_id,
                approved_by=creation.approved_by,
                documents=creation.documents,
            ),
        )
        if self.creation_answers_lost:
            raise ApplicationError(
                "POST /erp/vendors answered 503", type="SystemUnavailable", non_retryable=True
            )
        return created

    @fake("erp.find_created_vendor")
    async def find_created_vendor(self, lookup: VendorCreationLookup) -> ErpVendor | None:
        if self.erp_unreadable:
            raise ApplicationError(
                "GET /erp/vendors answered 503", type="SystemUnavailable", non_retryable=True
            )
        return self.vendors.get(lookup.idempotency_key)

    @fake("erp.deactivate_vendor")
    async def deactivate_vendor(self, deactivation: VendorDeactivation) -> ErpVendor:
        vendor = next(v for v in self.vendors.values() if v.vendor_id == deactivation.vendor_id)
        vendor.status = "inactive"
        return vendor

    @property
    def create_calls(self) -> int:
        return len(self.calls("erp.create_vendor"))

    @property
    def deactivations(self) -> list[VendorDeactivation]:
        return self.calls("erp.deactivate_vendor")

    @property
    def statuses(self) -> list[str]:
        return [change.status for change in self.status_changes]


# -- running cases ------------------------------------------------------------------------------


def case_worker(
    env: WorkflowEnvironment, systems: FakeVendorSystems
) -> AbstractAsyncContextManager[str]:
    return fake_worker(env.client, systems, VendorOnboardingWorkflow)


async def start_case(
    env: WorkflowEnvironment, task_queue: str, application_id: str, submitted_by: str = "alice"
) -> CaseHandle:
    return await env.client.start_workflow(
        VendorOnboardingWorkflow.run,
        VendorOnboardingInput(application_id=application_id, submitted_by=submitted_by),
        id=f"{VendorOnboardingWorkflow.case_id(application_id)}-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


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


def extraction_reply(kind: str, **fields: Any) -> ScriptedReply:
    """The model's answer for one document: a ``DocumentExtraction`` as JSON."""
    values = {"document_kind": kind, "issues": [], "confidence": 0.93} | fields
    return ScriptedReply(content=json.dumps(values), prompt_tokens=210, completion_tokens=35)


class ScriptedChecker(ScriptedModel):
    """Scripts the model behind the document checker, one document at a time."""

    def __init__(self, server: ScriptedLlmServer) -> None:
        super().__init__(server, "document", "document_id")

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
    # Nor may it find a running stack's codec server on the default port (the session points
    # it, and the other default addresses, nowhere).
    env |= NOWHERE | {
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
