"""The vendor document checker on labelled documents: shown what the workflow shows it (the
document alone), its extraction checked by ``check_extraction`` and judged by
``check_document`` against the application, as the workflow judges it. The route is the
document's verdict: valid, invalid (the vendor is asked for another) or unverified (reviewers
look)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel

from activities.agents.vendor_onboarding import (
    DOCUMENT_CHECKER_AGENT,
    DocumentExtraction,
    check_extraction,
    task_for,
)
from activities.vendors import VendorApplication, VendorDocument
from casework.eval.hooks import AgentEval, RouteQuestion
from policies.vendor_onboarding import DocumentVerdict, VendorOnboardingPolicy, check_document
from workflows.vendor_onboarding import checker_context


class DocumentCase(BaseModel):
    application: VendorApplication
    document: VendorDocument
    today: date
    """The day the document is checked: validity is measured from it."""


def _context(case: dict[str, Any], _policy: VendorOnboardingPolicy | None) -> dict[str, Any]:
    return checker_context(DocumentCase.model_validate(case).document)


def _route(question: RouteQuestion[VendorOnboardingPolicy, DocumentExtraction]) -> str:
    case = DocumentCase.model_validate(question.input)
    extraction = question.answer
    if extraction is None:
        # As the workflow has it: a document the checker could not read is for people to check.
        return DocumentVerdict.UNVERIFIED.value
    document = case.document
    checks = check_extraction(extraction, document.document_id, document.content)
    verdict = check_document(
        question.policy, case.application, document, extraction, case.today, checks
    )
    return verdict.verdict.value


DOCUMENT_CHECKER_EVAL = AgentEval(
    agent=DOCUMENT_CHECKER_AGENT,
    policy=VendorOnboardingPolicy,
    context=_context,
    route=_route,
    task=lambda policy: task_for(list(policy.documents.required)),
)
