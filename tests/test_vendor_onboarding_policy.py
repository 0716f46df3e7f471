"""The vendor-onboarding policy's pure rules and the document checker's offline stand-in."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from activities.agents.vendor_onboarding import DocumentExtraction, stand_in_extraction
from activities.vendors import DocumentResubmission, VendorApplication
from casework.governance.loader import load_policy
from policies.vendor_onboarding import (
    DocumentCheck,
    DocumentVerdict,
    ReviewResult,
    ReviewStatus,
    VendorOnboardingPolicy,
    Verdict,
    check_document,
    documents_to_check,
    outstanding,
    resubmission_refusals,
    reviews_for,
    risk_flags,
    settle,
)
from tests.vendor_onboarding_support import (
    FOREIGN_IBAN,
    TAX_ID,
    VENDOR_NAME,
    application,
    bank_confirmation_text,
    document,
    documents_for,
    registration_text,
    tax_certificate_text,
)

TODAY = date(2026, 11, 21)


@pytest.fixture(scope="module")
def policy() -> VendorOnboardingPolicy:
    return VendorOnboardingPolicy.model_validate(load_policy("vendor_onboarding").content)


def extraction(**fields: object) -> DocumentExtraction:
    values: dict[str, object] = {
        "document_kind": "tax_certificate",
        "company_name": VENDOR_NAME,
        "tax_id": TAX_ID,
        "valid_until": date(9999, 12, 31),
        "confidence": 0.9,
    }
    return DocumentExtraction.model_validate(values | fields)


def check_tax(
    policy: VendorOnboardingPolicy, found: DocumentExtraction, app: VendorApplication | None = None
) -> DocumentCheck:
    tax = document("TAX-1", "tax_certificate", "text")
    return check_document(policy, app or application("APP-1"), tax, found, TODAY)


def test_the_shipped_policy_reads_as_documented(policy: VendorOnboardingPolicy) -> None:
    assert (policy.id, policy.version) == ("vendor_onboarding", 2)
    assert list(policy.documents.required) == [
        "company_registration",
        "tax_certificate",
        "bank_confirmation",
    ]
    assert policy.documents.resubmission_window == timedelta(days=14)
    assert policy.documents.required["tax_certificate"].min_remaining_validity == timedelta(30)
    assert [(name, rule.when) for name, rule in policy.reviews.items()] == [
        ("legal", "always"),
        ("finance", "always"),
        ("procurement", "risk_flagged"),
    ]
    assert [tier.role for tier in policy.reviews["finance"].tiers] == ["finance_manager", "cfo"]


def test_a_misspelt_policy_key_fails_loudly() -> None:
    content = load_policy("vendor_onboarding").content
    with pytest.raises(ValueError, match="resubmision_window"):
        VendorOnboardingPolicy.model_validate(
            content | {"documents": content["documents"] | {"resubmision_window": "7d"}},
        )


def test_the_latest_document_of_each_required_kind_is_checked(
    policy: VendorOnboardingPolicy,
) -> None:
    documents = [
        *documents_for("APP-1", without=("bank_confirmation",)),
        document("APP-1-TAX-2", "tax_certificate", "newer"),
        document("APP-1-BROCHURE", "brochure", "marketing"),
    ]
    to_check, missing = documents_to_check(policy, documents)

    assert [d.document_id for d in to_check] == ["APP-1-REG", "APP-1-TAX-2"]
    assert [(m.kind, m.verdict, m.reasons) for m in missing] == [
        ("bank_confirmation", DocumentVerdict.MISSING, ["not submitted"])
    ]


def test_a_document_stating_what_the_application_states_is_valid(
    policy: VendorOnboardingPolicy,
) -> None:
    # Case, spaces and punctuation do not matter.
    found = extraction(company_name="NORDWIND LOGISTIK GMBH.", tax_id="de 123-456-789")
    check = check_tax(policy, found)

    assert (check.verdict, check.reasons) == (DocumentVerdict.VALID, [])
    assert check.describe() == "tax certificate TAX-1 valid"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"document_kind": "bank_confirmation"},
            "it reads as bank confirmation, not tax certificate",
        ),
        (
            {"confidence": 0.5},
            "it could not be read reliably (confidence 0.50 is below 0.75): send a legible copy",
        ),
        ({"issues": ["it is unsigned"]}, "the checker reports: it is unsigned"),
        (
            {"company_name": "Südwind AG"},
            "its company name 'Südwind AG' is not the application's 'Nordwind Logistik GmbH'",
        ),
        ({"tax_id": None}, "it states no tax ID"),
        ({"valid_until": None}, "it states no validity date"),
        ({"valid_until": date(2026, 1, 31)}, "it expired on 2026-01-31"),
        (
            {"valid_until": date(2026, 12, 1)},
            "it is valid only until 2026-12-01; it must be valid until at least 2026-12-21",
        ),
    ],
)
def test_each_rule_a_document_breaks_is_a_reason(
    policy: VendorOnboardingPolicy, fields: dict[str, object], reason: str
) -> None:
    check = check_tax(policy, extraction(**fields))

    assert (check.verdict, check.reasons) == (DocumentVerdict.INVALID, [reason])


def test_a_bank_confirmation_must_state_the_applications_iban(
    policy: VendorOnboardingPolicy,
) -> None:
    bank = document("BANK-1", "bank_confirmation", "text")
    found = extraction(document_kind="bank_confirmation", iban="DE89 3704 0044 0532 0130 00")
    other = found.model_copy(update={"iban": FOREIGN_IBAN})

    assert check_document(policy, application("APP-1"), bank, found, TODAY).verdict is (
        DocumentVerdict.VALID
    )
    assert check_document(policy, application("APP-1"), bank, other, TODAY).reasons == [
        f"its IBAN {FOREIGN_IBAN!r} is not the application's 'DE89370400440532013000'"
    ]


def test_issues_need_not_invalidate(policy: VendorOnboardingPolicy) -> None:
    lenient = policy.model_copy(
        update={"documents": policy.documents.model_copy(update={"issues_invalidate": False})}
    )
    assert check_tax(lenient, extraction(issues=["coffee stain"])).verdict is DocumentVerdict.VALID


def test_only_missing_and_invalid_documents_are_outstanding() -> None:
    checks = [
        DocumentCheck(kind=kind, document_id=None, verdict=verdict)
        for kind, verdict in [
            ("a", DocumentVerdict.VALID),
            ("b", DocumentVerdict.INVALID),
            ("c", DocumentVerdict.MISSING),
            ("d", DocumentVerdict.UNVERIFIED),
        ]
    ]
    assert [check.kind for check in outstanding(checks)] == ["b", "c"]


def _resubmission(**fields: str) -> DocumentResubmission:
    values = {
        "application_id": "APP-1",
        "document_id": "TAX-2",
        "kind": "tax_certificate",
        "filename": "tax.pdf",
        "content": "text",
    }
    return DocumentResubmission.model_validate(values | fields)


@pytest.mark.parametrize(
    ("submission", "awaited", "known", "reasons"),
    [
        (_resubmission(), ["tax_certificate"], {"TAX-1"}, []),
        (
            _resubmission(application_id="APP-2"),
            ["tax_certificate"],
            set(),
            ["the document is for application APP-2, this case is for APP-1"],
        ),
        (_resubmission(), None, set(), ["the case is not waiting for documents"]),
        (
            _resubmission(document_id="TAX-1"),
            None,
            {"TAX-1"},
            ["document TAX-1 was already received", "the case is not waiting for documents"],
        ),
        (
            _resubmission(kind="bank_confirmation", document_id="TAX-1"),
            ["tax_certificate", "company_registration"],
            {"TAX-1"},
            [
                "document TAX-1 was already received",
                "bank_confirmation is not awaited; the case waits for: tax_certificate, "
                "company_registration",
            ],
        ),
    ],
)
def test_resubmission_refusals(
    submission: DocumentResubmission,
    awaited: list[str] | None,
    known: set[str],
    reasons: list[str],
) -> None:
    assert resubmission_refusals(submission, "APP-1", awaited, known) == reasons


def test_a_resubmission_must_be_well_formed() -> None:
    with pytest.raises(ValidationError) as invalid:
        _resubmission(kind="Tax Certificate", content="", extra="x")
    problems = {error["loc"][0] for error in invalid.value.errors()}
    assert problems == {"kind", "content", "extra"}


def test_risk_flags_come_from_screening_country_and_bank_account(
    policy: VendorOnboardingPolicy,
) -> None:
    assert risk_flags(policy, application("APP-1")) == []
    assert risk_flags(policy, application("APP-1", risk_flags=["adverse media"])) == [
        "adverse media"
    ]
    assert risk_flags(policy, application("APP-1", country="IR")) == [
        "registered in high-risk country IR",
        "bank account in DE for a vendor registered in IR",
    ]
    foreign = application("APP-1", bank_account=FOREIGN_IBAN)
    assert risk_flags(policy, foreign) == ["bank account in GB for a vendor registered in DE"]
    relaxed = policy.model_copy(
        update={"risk": policy.risk.model_copy(update={"flag_foreign_bank_account": False})}
    )
    assert risk_flags(relaxed, foreign) == []


def test_procurement_reviews_only_a_flagged_vendor(policy: VendorOnboardingPolicy) -> None:
    assert reviews_for(policy, []) == ["legal", "finance"]
    assert reviews_for(policy, ["adverse media"]) == ["legal", "finance", "procurement"]


def review(name: str, status: ReviewStatus, by: str | None = None) -> ReviewResult:
    return ReviewResult(review=name, role=name, status=status, decided_by=by, comment="why")


def test_reviews_settle_onboard_only_when_all_approve() -> None:
    approved = review("legal", ReviewStatus.APPROVED, "mia")
    assert settle([approved, review("finance", ReviewStatus.PENDING)]) is None
    settled = settle([approved, review("finance", ReviewStatus.APPROVED, "carol")])
    assert settled is not None and settled.verdict is Verdict.ONBOARD
    assert settled.reasons == ["legal review approved by mia", "finance review approved by carol"]
    assert settle([]) is None


def test_the_first_rejection_settles_whatever_the_others_say() -> None:
    settled = settle(
        [
            review("legal", ReviewStatus.APPROVED, "mia"),
            review("finance", ReviewStatus.REJECTED, "carol"),
            review("procurement", ReviewStatus.PENDING),
        ]
    )
    assert settled is not None and settled.verdict is Verdict.REJECT
    assert settled.reasons == ["finance review rejected by carol: why"]


def test_a_review_nobody_decided_holds_unless_another_rejected() -> None:
    timed_out = review("legal", ReviewStatus.TIMED_OUT)
    held = settle([timed_out, review("finance", ReviewStatus.WITHDRAWN)])
    assert held is not None and held.verdict is Verdict.HOLD
    assert held.reasons == ["nobody decided the legal review in time"]
    rejected = settle([timed_out, review("finance", ReviewStatus.REJECTED, "carol")])
    assert rejected is not None and rejected.verdict is Verdict.REJECT


@pytest.mark.parametrize(
    ("text", "kind", "fields"),
    [
        (registration_text(), "company_registration", {"company_name": VENDOR_NAME}),
        (
            tax_certificate_text(valid_until="2027-06-30"),
            "tax_certificate",
            {"company_name": VENDOR_NAME, "tax_id": TAX_ID, "valid_until": date(2027, 6, 30)},
        ),
        (
            bank_confirmation_text(iban=FOREIGN_IBAN),
            "bank_confirmation",
            {"company_name": VENDOR_NAME, "iban": FOREIGN_IBAN},
        ),
    ],
)
def test_the_stand_in_reads_labelled_lines(text: str, kind: str, fields: dict[str, object]) -> None:
    found = stand_in_extraction({"document": {"document_id": "D-1", "content": text}})

    assert found.document_kind == kind
    assert found.model_dump(include=set(fields)) == fields
    assert (found.issues, found.confidence) == ([], 0.9)


def test_the_stand_in_reports_what_makes_a_document_unusable() -> None:
    draft = "DRAFT TAX CERTIFICATE\nCompany: X\nValid until: someday\nunsigned copy"
    found = stand_in_extraction({"document": {"content": draft}})
    assert found.document_kind == "tax_certificate"
    assert found.issues == [
        "validity date 'someday' is not a date",
        "it is marked as a draft",
        "it is unsigned",
    ]
    unreadable = stand_in_extraction({"document": {"content": "%PDF-1.7 \x00\x01"}})
    assert (unreadable.document_kind, unreadable.confidence) == ("other", 0.3)
