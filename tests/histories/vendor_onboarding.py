"""Vendor-onboarding scenarios: the vendor portal, ERP vendor master and document checker faked by
activity name (``tests.vendor_onboarding_support.FakeVendorSystems``)."""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.vendors import DocumentResubmission
from casework.audit import AuditKind
from casework.case import CaseStatus
from casework.testing.recorder import Drive, Recordings, Scenario, nothing
from casework.testing.signing import decide
from tests.vendor_onboarding_support import (
    FOREIGN_IBAN,
    CaseHandle,
    FakeVendorSystems,
    application,
    audited,
    bank_confirmation_text,
    documents_for,
    open_reviews,
    reached,
    resubmission,
    tax_certificate_text,
)
from workflows.vendor_onboarding import Outcome, VendorOnboardingInput, VendorOnboardingWorkflow


def _in_order(application_id: str, now: datetime) -> FakeVendorSystems:
    return FakeVendorSystems(application(application_id))


def _expired_tax_certificate(application_id: str, now: datetime) -> FakeVendorSystems:
    expired = tax_certificate_text(valid_until="2020-12-31")
    return FakeVendorSystems(
        application(application_id, documents_for(application_id, tax_certificate=expired))
    )


def _foreign_bank_account(application_id: str, now: datetime) -> FakeVendorSystems:
    foreign = bank_confirmation_text(iban=FOREIGN_IBAN)
    documents = documents_for(application_id, bank_confirmation=foreign)
    return FakeVendorSystems(application(application_id, documents, bank_account=FOREIGN_IBAN))


def _bank_letter_unread(application_id: str, now: datetime) -> FakeVendorSystems:
    # The checker cannot read a letter that states another account: the reviewers approve it.
    other = bank_confirmation_text(iban="DE02 1203 0000 0000 2020 51")
    return FakeVendorSystems(
        application(application_id, documents_for(application_id, bank_confirmation=other)),
        extractions={
            f"{application_id}-BANK": ApplicationError("model unavailable", non_retryable=True)
        },
    )


def _invalid_iban(application_id: str, now: datetime) -> FakeVendorSystems:
    letter = bank_confirmation_text(iban="DE00 1234")
    return FakeVendorSystems(
        application(
            application_id,
            documents_for(application_id, bank_confirmation=letter),
            bank_account="DE00 1234",
        )
    )


def _tax_certificate_uploaded(application_id: str, now: datetime) -> FakeVendorSystems:
    """An expired certificate, and the current one the vendor uploads to the portal."""
    systems = _expired_tax_certificate(application_id, now)
    systems.upload(_current_tax_certificate(application_id))
    return systems


def _current_tax_certificate(application_id: str) -> DocumentResubmission:
    return resubmission(
        application_id, f"{application_id}-TAX-2", "tax_certificate", tax_certificate_text()
    )


def _reviewers(*decisions: tuple[str, str]) -> Drive:
    """Each (approver, action) in turn, once every review task is open."""

    async def drive(env: WorkflowEnvironment, handle: CaseHandle) -> None:
        reviews = 3 if any(approver == "liam" for approver, _ in decisions) else 2
        await open_reviews(handle, reviews)
        for approver, action in decisions:
            await decide(handle, approver=approver, action=action, comment=f"{approver}: {action}")

    return drive


async def _resubmit_then_approve(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    valid = _current_tax_certificate(handle.id.removeprefix("vendor-onboarding-"))
    # A malformed resubmission first: recorded and ignored; then the real one.
    await handle.signal("resubmit", valid.model_dump(exclude={"content"}))
    await audited(handle, AuditKind.DECISION_REFUSED)
    await handle.signal("resubmit", valid)
    await _reviewers(("mia", "approve"), ("carol", "approve"))(env, handle)


async def _unuploaded_then_uploaded(env: WorkflowEnvironment, handle: CaseHandle) -> None:
    """A document the portal does not have is ignored; the one the vendor uploaded counts."""
    await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    valid = _current_tax_certificate(handle.id.removeprefix("vendor-onboarding-"))
    await handle.signal("resubmit", valid.model_copy(update={"document_id": "NOT-UPLOADED"}))
    await audited(handle, AuditKind.DECISION_REFUSED)
    await handle.signal("resubmit", valid)
    await _reviewers(("mia", "approve"), ("carol", "approve"))(env, handle)


RECORDINGS = Recordings(
    workflow=VendorOnboardingWorkflow,
    key=lambda name: f"APP-REPLAY-{name}",
    start=lambda application_id, systems: VendorOnboardingInput(
        application_id=application_id, submitted_by="alice"
    ),
    scenarios=(
        Scenario(
            "onboarded",
            _in_order,
            _reviewers(("mia", "approve"), ("carol", "approve")),
            {"outcome": Outcome.ONBOARDED},
        ),
        Scenario(
            "legal_approved_finance_rejected",
            _in_order,
            _reviewers(("mia", "approve"), ("carol", "reject")),
            {"outcome": Outcome.REJECTED},
        ),
        Scenario(
            "legal_rejected_finance_withdrawn",
            _in_order,
            _reviewers(("mia", "reject")),
            {"outcome": Outcome.REJECTED},
        ),
        Scenario(
            "procurement_rejected",
            _foreign_bank_account,
            _reviewers(("mia", "approve"), ("carol", "approve"), ("liam", "reject")),
            {"outcome": Outcome.REJECTED},
        ),
        Scenario(
            "resubmitted",
            _tax_certificate_uploaded,
            _resubmit_then_approve,
            {"outcome": Outcome.ONBOARDED},
        ),
        Scenario(
            "resubmitted_from_portal",
            _tax_certificate_uploaded,
            _unuploaded_then_uploaded,
            {"outcome": Outcome.ONBOARDED},
        ),
        Scenario(
            "documents_timed_out",
            _expired_tax_certificate,
            nothing,
            {"outcome": Outcome.DOCUMENTS_TIMED_OUT},
        ),
        Scenario(
            "legal_undecided_on_hold", _in_order, nothing, {"outcome": Outcome.REVIEW_TIMED_OUT}
        ),
        # Patches agent-proposals-checked and erp-bank-account-checked: approved, nothing
        # written.
        Scenario(
            "bank_account_unconfirmed",
            _bank_letter_unread,
            _reviewers(("mia", "approve"), ("carol", "approve")),
            {"outcome": Outcome.BANK_ACCOUNT_UNCONFIRMED},
        ),
        Scenario("invalid_iban_refused", _invalid_iban, nothing, {"outcome": Outcome.REJECTED}),
        # Behind the patch baseline (casework.case.patches): agent-proposals-checked is held,
        # not recorded.
        Scenario(
            "patch_baseline_invalid_iban_refused",
            _invalid_iban,
            nothing,
            {"outcome": Outcome.REJECTED},
        ),
        # Patch erp-vendor-looked-up: the vendor is created, every answer lost, and found.
        Scenario(
            "erp_vendor_found_after_lost_answers",
            lambda application_id, now: FakeVendorSystems(
                application(application_id), creation_answers_lost=True
            ),
            _reviewers(("mia", "approve"), ("carol", "approve")),
            {"outcome": Outcome.ONBOARDED},
        ),
    ),
)
