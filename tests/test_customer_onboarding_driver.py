"""The customer-onboarding reliability driver plans only what the process can meet, aims every
fault at its own case, and judges a ledger the way the process promises: provisioned once, or
everything undone."""

from __future__ import annotations

import json
from collections import Counter

from activities.agents.customer_onboarding import IdentityReading, check_reading
from casework.case import CaseState, CaseStatus
from reliability.drivers.base import Ledger, Outcome, PlannedCase, SandboxFault
from reliability.drivers.customer_onboarding import (
    DUE_DILIGENCE_REJECTED,
    LOW_RISK,
    SYSTEMS,
    CustomerOnboardingDriver,
)
from workflows.customer_onboarding import CustomerOnboardingInput, OnboardingStatus

DRIVER = CustomerOnboardingDriver()
KEY = DRIVER.new_key("t1", 7)


def planned(scenario=LOW_RISK, fault: SandboxFault | None = None) -> PlannedCase:
    return PlannedCase(DRIVER, KEY, DRIVER.case_id(KEY), scenario, sandbox_fault=fault)


def outcome(status: str) -> Outcome:
    state = CaseState(
        case_id=DRIVER.case_id(KEY),
        case_type="customer-onboarding",
        status=status,
        title="",
        open_task=None,
        facts={},
    )
    return Outcome(execution="COMPLETED", state=state, audit=[])


def test_its_cases_are_valid_and_the_scripted_reading_checks_out() -> None:
    request = DRIVER.case_input(KEY)
    assert isinstance(request, CustomerOnboardingInput)
    reply = DRIVER.model_reply(planned(), 0, {})
    reading = IdentityReading.model_validate(json.loads(reply.content or ""))
    application = request.model_dump(include={"full_name", "date_of_birth", "document_number"})
    checks = check_reading(reading, request.identity_document, application, application)
    assert checks.all_verified, checks.summary()


def test_every_fault_is_aimed_at_its_own_case() -> None:
    case_id = DRIVER.case_id(KEY)
    for fault in DRIVER.sandbox_faults:
        for spec in DRIVER.fault_specs(fault, KEY):
            aimed = spec.get("idempotency_key", "").startswith(f"{case_id}:") or (
                DRIVER.case_input(KEY).document_number in spec["path"]  # type: ignore[attr-defined]
            )
            assert aimed, (fault, spec)
    assert DRIVER.expected_statuses(planned(fault=SandboxFault.OUTCOME_UNKNOWN)) == {
        CaseStatus.FAILED_COMPENSATED
    }


def test_a_ledger_is_judged_provisioned_once_or_all_undone() -> None:
    once = Ledger(writes=Counter({system: 1 for system in SYSTEMS}))
    assert DRIVER.problems(planned(), outcome(OnboardingStatus.ONBOARDED), once) == []
    twice = Ledger(writes=Counter({system: 1 for system in SYSTEMS} | {"account": 2}))
    assert DRIVER.problems(planned(), outcome(OnboardingStatus.ONBOARDED), twice)

    fault = SandboxFault.REJECTED_AFTER_PAYMENT
    assert DRIVER.expected_statuses(planned(fault=fault)) == {CaseStatus.FAILED_COMPENSATED}
    left = Ledger(
        writes=Counter({"account": 1, "CRM customer": 1}),
        reversals={"account ACC-1": True, "CRM customer CRM-1": False},
    )
    (problem,) = DRIVER.problems(planned(fault=fault), outcome(CaseStatus.FAILED_COMPENSATED), left)
    assert "still provisioned: CRM customer CRM-1" in problem

    rejected = Ledger(writes=Counter({"account": 1}))
    assert DRIVER.problems(planned(DUE_DILIGENCE_REJECTED), outcome(CaseStatus.REJECTED), rejected)
