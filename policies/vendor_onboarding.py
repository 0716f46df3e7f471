"""The vendor-onboarding policy: its typed document and the pure rules it decides by.

No I/O, no clock, no randomness (today's date is passed in): workflows call these functions
directly, and every result can be recomputed from the case's history.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from activities.agents.vendor_onboarding import DocumentExtraction
from activities.vendors import DocumentResubmission, VendorApplication, VendorDocument
from casework.agents.checks import CheckBasis, ProposalChecks, iban_problem, occurs_in
from casework.eval.minimums import EvalSection
from casework.governance.models import (
    AgentSettings,
    ApprovalPolicy,
    ApprovalTier,
    Duration,
    PolicyModel,
)

MatchField = Literal["vendor_name", "tax_id", "bank_account"]

# What each application field is called in the checker's extraction, and for people.
_EXTRACTED = {"vendor_name": "company_name", "tax_id": "tax_id", "bank_account": "iban"}
_LABEL = {"vendor_name": "company name", "tax_id": "tax ID", "bank_account": "IBAN"}
_FIELD_OF = {extracted: field for field, extracted in _EXTRACTED.items()}


class RequiredDocument(PolicyModel):
    match: list[MatchField] = Field(default_factory=list)
    """Application fields the document must state identically."""
    min_remaining_validity: Duration | None = None
    """None: the document need not state a validity date."""


class DocumentRules(PolicyModel):
    required: dict[str, RequiredDocument] = Field(min_length=1)
    min_confidence: float = Field(ge=0, le=1)
    issues_invalidate: bool = True
    resubmission_window: Duration


class RiskRules(PolicyModel):
    high_risk_countries: list[str] = Field(default_factory=list)
    flag_foreign_bank_account: bool = True


class ReviewRule(PolicyModel):
    when: Literal["always", "risk_flagged"] = "always"
    tiers: list[ApprovalTier] = Field(min_length=1)
    escalate: bool = True


class VendorOnboardingPolicy(ApprovalPolicy):
    policy_id: ClassVar[str] = "vendor_onboarding"

    id: str
    version: int
    description: str = ""
    documents: DocumentRules
    risk: RiskRules = RiskRules()
    reviews: dict[str, ReviewRule] = Field(min_length=1)
    """In the order the review tasks open; all run in parallel and all must approve."""
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""


# -- documents ----------------------------------------------------------------------------------


class DocumentVerdict(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    MISSING = "missing"
    UNVERIFIED = "unverified"
    """The checker could not read it (the model failed): reviewers are asked to check it."""


class DocumentCheck(BaseModel):
    kind: str
    document_id: str | None
    verdict: DocumentVerdict
    reasons: list[str] = []
    extraction: DocumentExtraction | None = None

    def describe(self) -> str:
        name = self.kind.replace("_", " ")
        document = f" {self.document_id}" if self.document_id else ""
        reasons = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"{name}{document} {self.verdict.value}{reasons}"


def _normalise(value: str) -> str:
    return "".join(ch for ch in value.casefold() if ch.isalnum())


def documents_to_check(
    policy: VendorOnboardingPolicy, documents: list[VendorDocument]
) -> tuple[list[VendorDocument], list[DocumentCheck]]:
    """The latest document of each required kind, and a ``missing`` check for each kind without
    one. Documents of kinds the policy does not require are not checked."""
    latest = {doc.kind: doc for doc in documents if doc.kind in policy.documents.required}
    to_check = [latest[kind] for kind in policy.documents.required if kind in latest]
    missing = [
        DocumentCheck(
            kind=kind,
            document_id=None,
            verdict=DocumentVerdict.MISSING,
            reasons=["not submitted"],
        )
        for kind in policy.documents.required
        if kind not in latest
    ]
    return to_check, missing


def check_document(
    policy: VendorOnboardingPolicy,
    application: VendorApplication,
    document: VendorDocument,
    extraction: DocumentExtraction,
    today: date,
    checks: ProposalChecks | None = None,
) -> DocumentCheck:
    """Whether a document is in order: the kind it claims, legible, stating what the application
    states, valid long enough, and with no issue the checker reports.

    ``checks`` are the checks of the extraction (``check_extraction``): only values the text
    bears out are compared with the application, and the application's values must occur in the
    text itself. A document whose text contradicts the application is invalid (the vendor is
    asked for another); one the checker misread, where nothing else is wrong, is unverified (the
    reviewers look at it). None only in a case that checked its documents before extractions
    were checked, replaying that.
    """
    if checks is not None:
        return _check_document_text(policy, application, document, extraction, today, checks)
    rule = policy.documents.required[document.kind]
    reasons = _judgement_reasons(policy, document, extraction)
    for field in rule.match:
        expected: str = getattr(application, field)
        found: str | None = getattr(extraction, _EXTRACTED[field])
        if not found:
            reasons.append(f"it states no {_LABEL[field]}")
        elif _normalise(found) != _normalise(expected):
            reasons.append(f"its {_LABEL[field]} {found!r} is not the application's {expected!r}")
    if rule.min_remaining_validity is not None:
        reasons += _validity_reasons(
            extraction.valid_until, today + rule.min_remaining_validity, today
        )
    return DocumentCheck(
        kind=document.kind,
        document_id=document.document_id,
        verdict=DocumentVerdict.INVALID if reasons else DocumentVerdict.VALID,
        reasons=reasons,
        extraction=extraction,
    )


def _judgement_reasons(
    policy: VendorOnboardingPolicy, document: VendorDocument, extraction: DocumentExtraction
) -> list[str]:
    """What the checker's own judgement (kind, legibility, issues) finds wrong."""
    rules = policy.documents
    reasons: list[str] = []
    if extraction.document_kind != document.kind:
        reasons.append(
            f"it reads as {extraction.document_kind.replace('_', ' ')}, "
            f"not {document.kind.replace('_', ' ')}"
        )
    if extraction.confidence < rules.min_confidence:
        reasons.append(
            f"it could not be read reliably (confidence {extraction.confidence:.2f} is below "
            f"{rules.min_confidence:.2f}): send a legible copy"
        )
    if rules.issues_invalidate:
        reasons += [f"the checker reports: {issue}" for issue in extraction.issues]
    return reasons


def _validity_reasons(valid_until: date | None, needed: date, today: date) -> list[str]:
    if valid_until is None:
        return ["it states no validity date"]
    if valid_until < today:
        return [f"it expired on {valid_until.isoformat()}"]
    if valid_until < needed:
        return [
            f"it is valid only until {valid_until.isoformat()}; it must be valid until at "
            f"least {needed.isoformat()}"
        ]
    return []


def _check_document_text(
    policy: VendorOnboardingPolicy,
    application: VendorApplication,
    document: VendorDocument,
    extraction: DocumentExtraction,
    today: date,
    checks: ProposalChecks,
) -> DocumentCheck:
    rule = policy.documents.required[document.kind]
    text = {document.document_id: document.content}
    stated = {
        check.field
        for check in checks.checks
        if check.basis is CheckBasis.DOCUMENT and check.verified
    }
    reasons = _judgement_reasons(policy, document, extraction)
    reasons += [
        f"its {_LABEL.get(_FIELD_OF.get(check.field, ''), check.field)} {check.value!r} is not "
        f"valid: {check.finding}"
        for check in checks.unverified
        if check.basis is CheckBasis.VALIDATOR and check.field in stated
    ]
    for field in rule.match:
        expected: str = getattr(application, field)
        extracted = _EXTRACTED[field]
        found: str | None = getattr(extraction, extracted)
        if found and extracted in stated and _normalise(found) != _normalise(expected):
            reasons.append(f"its {_LABEL[field]} {found!r} is not the application's {expected!r}")
        elif not occurs_in(field, expected, text).verified:
            reasons.append(f"it does not state the application's {_LABEL[field]} {expected!r}")
    if rule.min_remaining_validity is not None and (
        extraction.valid_until is None or "valid_until" in stated
    ):
        reasons += _validity_reasons(
            extraction.valid_until, today + rule.min_remaining_validity, today
        )
    misread = [check for check in checks.unverified if check.field not in stated]
    if reasons:
        verdict = DocumentVerdict.INVALID
    elif misread:
        verdict = DocumentVerdict.UNVERIFIED
        reasons = [
            "the document checker's reading is not borne out by the text ("
            + "; ".join(check.describe() for check in misread)
            + "): check it yourself"
        ]
    else:
        verdict = DocumentVerdict.VALID
    return DocumentCheck(
        kind=document.kind,
        document_id=document.document_id,
        verdict=verdict,
        reasons=reasons,
        extraction=extraction,
    )


def bank_accounts(policy: VendorOnboardingPolicy) -> list[str]:
    """The document kinds that must state the vendor's bank account."""
    return [
        kind for kind, rule in policy.documents.required.items() if "bank_account" in rule.match
    ]


def application_refusals(application: VendorApplication) -> list[str]:
    """Why the application cannot be onboarded whatever its documents say; empty when it can."""
    problem = iban_problem(application.bank_account)
    if problem is None:
        return []
    return [f"the application's IBAN {application.bank_account!r} is not a valid IBAN: {problem}"]


def bank_account_refusals(
    policy: VendorOnboardingPolicy,
    application: VendorApplication,
    documents: dict[str, VendorDocument],
) -> list[str]:
    """Why the application's IBAN may not be written to the ERP; empty when it may.

    Checked on the text itself, whatever any agent read: the IBAN must be a valid one and be
    stated in the current document of each kind that must state it (the bank's letter).
    ``documents`` are the current documents by kind.
    """
    reasons = application_refusals(application)
    for kind in bank_accounts(policy):
        document = documents.get(kind)
        if document is None:
            reasons.append(f"there is no {kind.replace('_', ' ')} to confirm the IBAN")
        elif not occurs_in(
            "bank_account", application.bank_account, {document.document_id: document.content}
        ).verified:
            reasons.append(
                f"the {kind.replace('_', ' ')} {document.document_id} does not state the "
                f"application's IBAN {application.bank_account!r}"
            )
    return reasons


def outstanding(checks: list[DocumentCheck]) -> list[DocumentCheck]:
    """What the vendor must still send: missing and invalid documents. An unverified document
    is not the vendor's fault; the reviewers check it instead."""
    return [
        check
        for check in checks
        if check.verdict in (DocumentVerdict.MISSING, DocumentVerdict.INVALID)
    ]


def resubmission_refusals(
    submission: DocumentResubmission,
    application_id: str,
    awaited_kinds: list[str] | None,
    known_document_ids: set[str],
) -> list[str]:
    """Why a resubmitted document cannot be taken; empty when it can.

    ``awaited_kinds`` is None when the case is not waiting for documents at all.
    """
    if submission.application_id != application_id:
        return [
            f"the document is for application {submission.application_id}, "
            f"this case is for {application_id}"
        ]
    reasons = []
    if submission.document_id in known_document_ids:
        reasons.append(f"document {submission.document_id} was already received")
    if awaited_kinds is None:
        reasons.append("the case is not waiting for documents")
    elif submission.kind not in awaited_kinds:
        reasons.append(
            f"{submission.kind} is not awaited; the case waits for: " + ", ".join(awaited_kinds)
        )
    return reasons


# -- risk and reviews ---------------------------------------------------------------------------


def risk_flags(policy: VendorOnboardingPolicy, application: VendorApplication) -> list[str]:
    """The portal's screening findings plus what the policy itself flags."""
    flags = list(application.risk_flags)
    if application.country in policy.risk.high_risk_countries:
        flags.append(f"registered in high-risk country {application.country}")
    iban_country = _normalise(application.bank_account)[:2].upper()
    if policy.risk.flag_foreign_bank_account and iban_country != application.country:
        flags.append(
            f"bank account in {iban_country or 'an unknown country'} for a vendor registered "
            f"in {application.country}"
        )
    return flags


def reviews_for(policy: VendorOnboardingPolicy, flags: list[str]) -> list[str]:
    """The reviews this vendor needs, in the policy's order."""
    return [
        name
        for name, rule in policy.reviews.items()
        if rule.when == "always" or (rule.when == "risk_flagged" and flags)
    ]


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    WITHDRAWN = "withdrawn"
    """Closed undecided: another review had already settled the case."""


class ReviewResult(BaseModel):
    review: str
    role: str
    status: ReviewStatus
    task_id: str | None = None
    decided_by: str | None = None
    comment: str | None = None


class Verdict(StrEnum):
    ONBOARD = "onboard"
    REJECT = "reject"
    HOLD = "hold"


class Settlement(BaseModel):
    verdict: Verdict
    reasons: list[str]


def settle(results: list[ReviewResult]) -> Settlement | None:
    """The outcome the reviews so far settle, or None while it is still open.

    All must approve, so the first rejection settles the case as rejected whatever the others
    would say; a review nobody decided in time settles it on hold (it can no longer be approved
    by all); only when every review approved is the vendor onboarded.
    """
    rejected = [r for r in results if r.status is ReviewStatus.REJECTED]
    if rejected:
        return Settlement(
            verdict=Verdict.REJECT,
            reasons=[
                f"{r.review} review rejected by {r.decided_by}: {r.comment or 'no comment'}"
                for r in rejected
            ],
        )
    timed_out = [r for r in results if r.status is ReviewStatus.TIMED_OUT]
    if timed_out:
        return Settlement(
            verdict=Verdict.HOLD,
            reasons=[f"nobody decided the {r.review} review in time" for r in timed_out],
        )
    if results and all(r.status is ReviewStatus.APPROVED for r in results):
        return Settlement(
            verdict=Verdict.ONBOARD,
            reasons=[f"{r.review} review approved by {r.decided_by}" for r in results],
        )
    return None
