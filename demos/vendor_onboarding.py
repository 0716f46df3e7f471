"""The vendor-onboarding part of ``casework demo``: one application per outcome.

The demo plays the reviewers (mia for legal, carol for finance, liam for procurement) and the
vendor, who resubmits a document when asked; one application is left waiting for the vendor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from temporalio.client import WorkflowHandle

from activities.vendors import DocumentResubmission
from casework.case import CaseState, CaseStatus
from casework.case.tasks import TaskDecision
from casework.cli.cases import command, drive_case
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    Responder,
    decide_tasks,
    installed_command,
    sandbox_request,
)
from casework.config import Settings
from demos.vendor_documents import upload_to_portal
from workflows.vendor_onboarding import VendorOnboardingInput, VendorStatus

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
class Vendor:
    """Who applies, and what their documents get wrong."""

    vendor_name: str
    iban: str = "DE89370400440532013000"
    bank_letter_name: str | None = None
    """Submit a bank confirmation naming this company instead of the vendor."""
    tax_valid_for: timedelta = VALID
    resubmit: bool = False
    """The vendor sends the corrected document when the case asks for it."""


def _approve(approver: str, comment: str | None = None) -> TaskDecision:
    return TaskDecision(approver=approver, action=APPROVE, comment=comment)


# Reviews run in parallel; the demo decides them in the order they opened (legal first).
SCENARIOS = [
    DemoScenario(
        1,
        "documents in order; legal and finance approve",
        VendorStatus.ONBOARDED,
        Vendor("Nordwind Logistik GmbH"),
        decisions={
            "legal_counsel": _approve("mia", "standard terms"),
            "finance_manager": _approve("carol"),
        },
    ),
    DemoScenario(
        2,
        "legal approves, finance rejects",
        CaseStatus.REJECTED,
        Vendor("Elbe Frachtkontor KG"),
        decisions={
            "legal_counsel": _approve("mia"),
            "finance_manager": TaskDecision(
                approver="carol", action="reject", comment="payment terms of 10 days not agreed"
            ),
        },
    ),
    DemoScenario(
        3,
        "bank letter for another company; the vendor resubmits",
        VendorStatus.ONBOARDED,
        Vendor("Alster Verpackung GmbH", bank_letter_name="Alster Immobilien GmbH", resubmit=True),
        decisions={"legal_counsel": _approve("mia"), "finance_manager": _approve("carol")},
    ),
    DemoScenario(
        4,
        "foreign bank account: procurement reviews too",
        VendorStatus.ONBOARDED,
        Vendor("Baltic Marine Supplies GmbH", iban="GB33BUKB20201555555555"),
        decisions={
            "legal_counsel": _approve("mia"),
            "finance_manager": _approve("carol"),
            "procurement_manager": _approve("liam", "UK subsidiary, confirmed by phone"),
        },
    ),
    DemoScenario(
        5,
        "expired tax certificate: waits for the vendor",
        CaseStatus.AWAITING_EXTERNAL,
        Vendor("Harburger Metallbau GmbH", tax_valid_for=EXPIRED),
    ),
]


def _tax_id(batch: int, scenario: DemoScenario[Vendor]) -> str:
    # One active ERP vendor per tax ID: every demo batch needs vendors of its own.
    return f"DE{scenario.number(batch):09d}"


def _application_id(batch: int, scenario: DemoScenario[Vendor]) -> str:
    return f"APP-{scenario.number(batch)}"


async def seed(run: DemoRun, scenario: DemoScenario[Vendor]) -> VendorOnboardingInput:
    """The vendor's application with the documents it was submitted with."""
    application_id, vendor = _application_id(run.batch, scenario), scenario.facts
    name, tax_id = vendor.vendor_name, _tax_id(run.batch, scenario)
    texts = {
        "REG": ("company_registration", registration_text(name)),
        "TAX": ("tax_certificate", tax_certificate_text(name, tax_id, vendor.tax_valid_for)),
        "BANK": (
            "bank_confirmation",
            bank_confirmation_text(vendor.bank_letter_name or name, vendor.iban),
        ),
    }
    await sandbox_request(
        run.sandbox,
        "POST",
        "/vendors/applications",
        {
            "application_id": application_id,
            "vendor_name": name,
            "country": "DE",
            "tax_id": tax_id,
            "bank_account": vendor.iban,
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
    return VendorOnboardingInput(application_id=application_id, submitted_by="alice")


def corrected_document(batch: int, scenario: DemoScenario[Vendor]) -> DocumentResubmission:
    """What the vendor sends when asked: the document it got wrong, put right."""
    application_id, vendor = _application_id(batch, scenario), scenario.facts
    name = vendor.vendor_name
    if vendor.bank_letter_name:
        kind, text = "bank_confirmation", bank_confirmation_text(name, vendor.iban)
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
    run: DemoRun, scenario: DemoScenario[Vendor], resubmission: DocumentResubmission
) -> Responder:
    """The reviewers decide their open tasks as the scenario says; the vendor resubmits once
    when asked. Anything else is left waiting."""
    reviewers = decide_tasks(run, scenario)
    sent: list[str] = []

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if state.open_tasks:
            return await reviewers(handle, state)
        if sent:
            return True  # the case is still checking what the vendor sent
        if state.status != CaseStatus.AWAITING_EXTERNAL or not scenario.facts.resubmit:
            return False
        # The vendor uploads to the portal, which tells the case; the case reads it back.
        await upload_to_portal(run.sandbox, resubmission)
        await handle.signal("resubmit", resubmission)
        sent.append(resubmission.document_id)
        print(f"  {handle.id}: the vendor resubmitted {resubmission.document_id}")
        return True

    return respond


async def play(run: DemoRun, scenario: DemoScenario[Vendor], handle: WorkflowHandle) -> None:
    document = corrected_document(run.batch, scenario)
    await drive_case(handle, people(run, scenario, document))
    if scenario.expected == CaseStatus.AWAITING_EXTERNAL:
        _print_how_to_resubmit(run.settings, handle.id, document)


def _print_how_to_resubmit(
    settings: Settings, case_id: str, document: DocumentResubmission
) -> None:
    """Write the vendor's corrected document to a file, and say how to send it."""
    path = Path(settings.state_dir) / "demo" / f"{document.document_id}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document.content)
    signal_input = json.dumps(document.model_dump(exclude_none=True))
    upload = json.dumps(document.model_dump(include={"document_id", "kind", "filename", "content"}))
    print(f"{case_id} waits for the vendor's {document.kind}. Send it with:")
    resubmit = [installed_command("casework"), "resubmit", case_id, "--kind", document.kind]
    print(f"  {command(*resubmit, '--file', str(path), '--document-id', document.document_id)}")
    print("or upload it to the vendor portal and tell the case with the Temporal CLI:")
    portal = f"{settings.sandbox_url}/vendors/applications/{document.application_id}/documents"
    upload_command = ["curl", "-X", "POST", portal, "-H", "Content-Type: application/json"]
    print(f"  {command(*upload_command, '-d', upload)}")
    signal = [installed_command("temporal"), "workflow", "signal", "--workflow-id", case_id]
    print(f"  {command(*signal, '--name', 'resubmit', '--input', signal_input)}")


DEMO = ProcessDemo(
    process="vendor-onboarding",
    order=40,
    scenarios=SCENARIOS,
    numbered=Numbered("/vendors/applications", "application_id", "APP-"),
    seed=seed,
    play=play,
)
