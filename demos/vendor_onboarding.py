"""The vendor-onboarding part of ``casework demo``: one application per outcome.

The demo plays the reviewers (mia for legal, carol for finance, liam for procurement) and the
vendor, who resubmits a document when asked; one application is left waiting for the vendor.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowHandle

from activities.vendors import DocumentResubmission
from casework.case import CaseState, CaseStatus
from casework.case.tasks import TaskDecision
from casework.cli.cases import command, drive_case
from casework.cli.resubmit import upload_to_portal
from casework.cli.seeding import DemoCase, decide_as_demo_user, sandbox_request
from casework.config import Settings
from workflows.vendor_onboarding import VendorOnboardingInput, VendorOnboardingWorkflow

APPROVE = "approve"
VALID = timedelta(days=3 * 365)
EXPIRED = timedelta(days=-200)


def registration_text(name: str) -> str:
    return f"COMMERCIAL REGISTER EXTRACT\nCompany: {name}\nRegister court: Hamburg HRB 40712\n"


def tax_certificate_text(name: str, tax_id: str, valid_for: timedelta = VALID) -> str:
    """A certificate valid for ``valid_for`` from today; negative: expired that long ago."""
    valid_until = date.today() + valid_for
    return (
        f"TAX REGISTRATION CERTIFICATE\nCompany: {name}\nTax ID: {tax_id}\n"
        f"Valid until: {valid_until.isoformat()}\nIssued by: Finanzamt Hamburg-Mitte\n"
    )


def bank_confirmation_text(name: str, iban: str) -> str:
    return f"BANK CONFIRMATION\nAccount holder: {name}\nIBAN: {iban}\nSigned: Hanseatic Bank\n"


@dataclass(frozen=True)
class VendorScenario:
    suffix: int
    story: str
    vendor_name: str
    expected: str
    iban: str = "DE89370400440532013000"
    decisions: dict[str, TaskDecision] = field(default_factory=dict)
    """What each reviewer role decides once its task is open; tasks are decided in the order
    they opened (legal first)."""
    bank_letter_name: str | None = None
    """Submit a bank confirmation naming this company instead of the vendor."""
    tax_valid_for: timedelta = VALID
    resubmit: bool = False
    """The vendor sends the corrected document when the case asks for it."""


def _approve(approver: str, comment: str | None = None) -> TaskDecision:
    return TaskDecision(approver=approver, action=APPROVE, comment=comment)


SCENARIOS = [
    VendorScenario(
        1,
        "documents in order; legal and finance approve",
        "Nordwind Logistik GmbH",
        expected=CaseStatus.ONBOARDED,
        decisions={
            "legal_counsel": _approve("mia", "standard terms"),
            "finance_manager": _approve("carol"),
        },
    ),
    VendorScenario(
        2,
        "legal approves, finance rejects",
        "Elbe Frachtkontor KG",
        expected=CaseStatus.REJECTED,
        decisions={
            "legal_counsel": _approve("mia"),
            "finance_manager": TaskDecision(
                approver="carol", action="reject", comment="payment terms of 10 days not agreed"
            ),
        },
    ),
    VendorScenario(
        3,
        "bank letter for another company; the vendor resubmits",
        "Alster Verpackung GmbH",
        expected=CaseStatus.ONBOARDED,
        bank_letter_name="Alster Immobilien GmbH",
        resubmit=True,
        decisions={"legal_counsel": _approve("mia"), "finance_manager": _approve("carol")},
    ),
    VendorScenario(
        4,
        "foreign bank account: procurement reviews too",
        "Baltic Marine Supplies GmbH",
        expected=CaseStatus.ONBOARDED,
        iban="GB33BUKB20201555555555",
        decisions={
            "legal_counsel": _approve("mia"),
            "finance_manager": _approve("carol"),
            "procurement_manager": _approve("liam", "UK subsidiary, confirmed by phone"),
        },
    ),
    VendorScenario(
        5,
        "expired tax certificate: waits for the vendor",
        "Harburger Metallbau GmbH",
        expected=CaseStatus.AWAITING_EXTERNAL,
        tax_valid_for=EXPIRED,
    ),
]


def _tax_id(batch: int, scenario: VendorScenario) -> str:
    # One active ERP vendor per tax ID: every demo batch needs vendors of its own.
    return f"DE{batch * 1000 + scenario.suffix:09d}"


def _application_id(batch: int, scenario: VendorScenario) -> str:
    return f"APP-{batch * 1000 + scenario.suffix}"


async def seed(sandbox: httpx.AsyncClient, batch: int, scenario: VendorScenario) -> str:
    application_id = _application_id(batch, scenario)
    name, tax_id = scenario.vendor_name, _tax_id(batch, scenario)
    texts = {
        "REG": ("company_registration", registration_text(name)),
        "TAX": ("tax_certificate", tax_certificate_text(name, tax_id, scenario.tax_valid_for)),
        "BANK": (
            "bank_confirmation",
            bank_confirmation_text(scenario.bank_letter_name or name, scenario.iban),
        ),
    }
    await sandbox_request(
        sandbox,
        "POST",
        "/vendors/applications",
        {
            "application_id": application_id,
            "vendor_name": name,
            "country": "DE",
            "tax_id": tax_id,
            "bank_account": scenario.iban,
            "contact_email": f"onboarding@{application_id.lower()}.example",
            "documents": [
                {
                    "document_id": f"{application_id}-{short}",
                    "kind": kind,
                    "filename": f"{short.lower()}.pdf",
                    "content": text,
                }
                for short, (kind, text) in texts.items()
            ],
        },
    )
    return application_id


def corrected_document(
    batch: int, scenario: VendorScenario, application_id: str
) -> DocumentResubmission:
    """What the vendor sends when asked: the document it got wrong, put right."""
    name = scenario.vendor_name
    if scenario.bank_letter_name:
        kind, text = "bank_confirmation", bank_confirmation_text(name, scenario.iban)
    else:
        kind, text = "tax_certificate", tax_certificate_text(name, _tax_id(batch, scenario))
    return DocumentResubmission(
        application_id=application_id,
        document_id=f"{application_id}-{kind.split('_')[0].upper()}-2",
        kind=kind,
        filename=f"{kind}.txt",
        content=text,
        submitted_by=f"onboarding@{application_id.lower()}.example",
    )


def people(
    scenario: VendorScenario,
    resubmission: DocumentResubmission,
    settings: Settings,
    sandbox: httpx.AsyncClient,
) -> Callable[[WorkflowHandle, CaseState], Awaitable[bool]]:
    """The reviewers decide their open tasks as the scenario says (legal before finance); the
    vendor resubmits once when asked. Anything else is left waiting."""
    pending = dict(scenario.decisions)
    sent: list[str] = []

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.open_tasks:
            ours = [task for task in state.open_tasks if task.role in pending]
            for task in ours:
                decision = pending.pop(task.role).model_copy(update={"task_id": task.task_id})
                await decide_as_demo_user(handle, settings, decision)
            return bool(ours)
        if sent:
            return True  # the case is still checking what the vendor sent
        if state.status != CaseStatus.AWAITING_EXTERNAL or not scenario.resubmit:
            return False
        # The vendor uploads to the portal, which tells the case; the case reads it back.
        await upload_to_portal(sandbox, resubmission)
        await handle.signal("resubmit", resubmission)
        sent.append(resubmission.document_id)
        print(f"  {handle.id}: the vendor resubmitted {resubmission.document_id}")
        return True

    return respond


async def run(
    client: Client, settings: Settings, sandbox: httpx.AsyncClient, batch: int
) -> list[DemoCase]:
    cases = []
    for scenario in SCENARIOS:
        application_id = await seed(sandbox, batch, scenario)
        handle = await client.start_workflow(
            "VendorOnboarding",
            VendorOnboardingInput(application_id=application_id, submitted_by="alice"),
            id=VendorOnboardingWorkflow.case_id(application_id),
            task_queue=settings.task_queue,
        )
        cases.append((scenario, application_id, handle))
    await asyncio.gather(
        *(
            drive_case(
                handle,
                people(
                    scenario,
                    corrected_document(batch, scenario, application_id),
                    settings,
                    sandbox,
                ),
            )
            for scenario, application_id, handle in cases
        )
    )
    for scenario, application_id, handle in cases:
        if scenario.expected == CaseStatus.AWAITING_EXTERNAL:
            _print_how_to_resubmit(
                settings, handle.id, corrected_document(batch, scenario, application_id)
            )
    return [DemoCase(handle, scenario.story, scenario.expected) for scenario, _, handle in cases]


def _print_how_to_resubmit(
    settings: Settings, case_id: str, document: DocumentResubmission
) -> None:
    """Write the vendor's corrected document to a file, and say how to send it."""
    # Imported here: the demo module imports this one to run it.
    from casework.cli.demo import _command

    path = Path(settings.state_dir) / "demo" / f"{document.document_id}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document.content)
    signal_input = json.dumps(document.model_dump(exclude_none=True))
    upload = json.dumps(document.model_dump(include={"document_id", "kind", "filename", "content"}))
    print(f"{case_id} waits for the vendor's {document.kind}. Send it with:")
    resubmit = [_command("casework"), "resubmit", case_id, "--kind", document.kind]
    print(f"  {command(*resubmit, '--file', str(path), '--document-id', document.document_id)}")
    print("or upload it to the vendor portal and tell the case with the Temporal CLI:")
    portal = f"{settings.sandbox_url}/vendors/applications/{document.application_id}/documents"
    upload_command = ["curl", "-X", "POST", portal, "-H", "Content-Type: application/json"]
    print(f"  {command(*upload_command, '-d', upload)}")
    signal = [_command("temporal"), "workflow", "signal", "--workflow-id", case_id]
    print(f"  {command(*signal, '--name', 'resubmit', '--input', signal_input)}")
