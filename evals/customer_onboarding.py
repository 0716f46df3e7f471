"""The identity reader on labelled applications: shown what the workflow shows it (the document's
text and which application it came with, built by ``reader_context``), its reading checked by
``check_reading`` against the document, the application and the KYC registry, and the applicant
decided by ``decide_onboarding`` with the KYC service's verification and screenings, as the
workflow decides. Routes: ``provision``, ``enhanced_due_diligence:<role>``, ``reject``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from activities.agents.customer_onboarding import (
    IDENTITY_READER_AGENT,
    IdentityReading,
    check_reading,
)
from activities.kyc import IdentityVerification, RegisteredIdentity, SanctionsScreening
from activities.pep import PepScreening
from casework.eval.hooks import AgentEval, RouteQuestion
from policies.customer_onboarding import Applicant, CustomerOnboardingPolicy, decide_onboarding
from workflows.customer_onboarding import CustomerOnboardingInput, reader_context


class OnboardingCase(BaseModel):
    """An application as the case holds it when the policy decides: the applicant's own input
    and what the KYC registry, the KYC service and the screenings answered."""

    application: CustomerOnboardingInput
    registered: RegisteredIdentity | None = None
    """None: the KYC registry holds no such document."""
    verification: IdentityVerification
    sanctions: SanctionsScreening
    pep: PepScreening


def _context(case: dict[str, Any], _policy: CustomerOnboardingPolicy | None) -> dict[str, Any]:
    return reader_context(OnboardingCase.model_validate(case).application)


def _route(question: RouteQuestion[CustomerOnboardingPolicy, IdentityReading]) -> str:
    case = OnboardingCase.model_validate(question.input)
    request = case.application
    reading = question.answer
    # The same values the workflow checks the reading against (``_read_document``).
    application = {
        "full_name": request.full_name,
        "date_of_birth": request.date_of_birth,
        "document_number": request.document_number,
    }
    registry = case.registered.model_dump() if case.registered is not None else None
    decision = decide_onboarding(
        question.policy,
        question.ref,
        Applicant(
            full_name=request.full_name,
            date_of_birth=request.date_of_birth,
            nationality=request.nationality,
        ),
        reading,
        check_reading(reading, request.identity_document, application, registry)
        if reading is not None
        else None,
        case.verification,
        case.sanctions,
        case.pep,
    )
    return decision.route.value + (f":{decision.role}" if decision.role else "")


IDENTITY_READER_EVAL = AgentEval(
    agent=IDENTITY_READER_AGENT,
    policy=CustomerOnboardingPolicy,
    context=_context,
    route=_route,
)
