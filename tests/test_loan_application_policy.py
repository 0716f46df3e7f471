"""The loan policy's pure rules and the income reader's offline stand-in, without Temporal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from activities.agents.loan_application import IncomeAssessment, stand_in_reading
from activities.kyc import IdentityVerification, SanctionsHit, SanctionsScreening
from casework.governance.loader import load_policy
from casework.governance.models import PolicyRef
from policies.loan_application import (
    LoanApplicationPolicy,
    LoanRoute,
    decide_loan,
    kyc_refusals,
    monthly_instalment,
    non_standard_documents,
    refer_to_underwriting,
)
from tests.loan_application_support import (
    credit_report,
    freelance_statement,
    loan_application,
    payslip,
    reading,
)

DOCUMENT = load_policy("loan_application")
POLICY = LoanApplicationPolicy.model_validate(DOCUMENT.content)
REF: PolicyRef = DOCUMENT.ref


def test_the_shipped_policy_loads_with_every_knob() -> None:
    assert POLICY.more_information.reply_within == timedelta(days=3)
    assert POLICY.fraud_watch.window == timedelta(days=14)
    assert POLICY.credit_bureau.report_within == timedelta(days=5)
    assert [tier.role for tier in POLICY.underwriting.tiers] == ["underwriter", "credit_officer"]
    assert REF.id == "loan_application" and REF.version == 3
    assert POLICY.currency == "EUR"


def test_a_misspelt_policy_key_is_refused() -> None:
    with pytest.raises(ValueError, match="fraud_wach"):
        LoanApplicationPolicy.model_validate(DOCUMENT.content | {"fraud_wach": {"window": "1d"}})


@pytest.mark.parametrize(
    ("amount", "months", "rate", "instalment"),
    [
        ("20000", 60, "0.069", "395.08"),
        ("12000", 12, "0", "1000.00"),
        ("150000", 240, "0.069", "1153.96"),
    ],
)
def test_monthly_instalment_is_an_annuity(
    amount: str, months: int, rate: str, instalment: str
) -> None:
    assert monthly_instalment(Decimal(amount), months, Decimal(rate)) == Decimal(instalment)


def test_a_sound_small_loan_is_approved_automatically() -> None:
    application = loan_application("APP-A")
    decision = decide_loan(
        POLICY, REF, application, application.documents, credit_report("APP-A"), None
    )

    assert decision.route is LoanRoute.AUTO_APPROVE
    assert (decision.monthly_instalment, decision.debt_to_income) == (
        Decimal("395.08"),
        Decimal("0.174"),
    )


@pytest.mark.parametrize(
    ("changes", "report", "reason"),
    [
        ({"amount": "500.00"}, {}, "amount 500.00 EUR is outside 1,000.00-500,000.00"),
        ({"term_months": 400}, {}, "term 400 months exceeds 360 months"),
        ({}, {"score": 519}, "bureau score 519 is below 520"),
        ({}, {"defaults": 2}, "the bureau reports 2 default(s)"),
        (
            {},
            {"debt": "2200.00"},
            "debt-to-income 0.649 is above 0.6: the instalment is not affordable",
        ),
    ],
)
def test_hard_rules_reject(changes: dict[str, Any], report: dict[str, Any], reason: str) -> None:
    application = loan_application("APP-R", **changes)
    decision = decide_loan(
        POLICY, REF, application, application.documents, credit_report("APP-R", **report), None
    )

    assert decision.route is LoanRoute.REJECT
    assert decision.reasons == [reason]


def test_what_stops_auto_approval_goes_to_the_tier_covering_the_amount() -> None:
    application = loan_application("APP-U", amount="150000.00", term_months=240)
    decision = decide_loan(
        POLICY,
        REF,
        application,
        application.documents,
        credit_report("APP-U", score=690, debt="0"),
        None,
    )

    assert decision.route is LoanRoute.UNDERWRITING
    assert (decision.role, decision.tier, decision.sla) == ("credit_officer", 1, timedelta(days=3))
    assert decision.reasons == [
        "bureau score 690 is below 700",
        "amount 150,000.00 EUR exceeds the auto-approval ceiling 25,000.00",
    ]


def test_missing_report_and_unsure_agent_need_an_underwriter() -> None:
    application = loan_application("APP-N", documents=[freelance_statement()])
    decision = decide_loan(
        POLICY,
        REF,
        application,
        application.documents,
        None,
        reading("4000.00", confidence=0.7),
        report_missing_reason="no credit bureau report within 5d (request CBR-1)",
    )

    assert decision.route is LoanRoute.UNDERWRITING
    assert decision.role == "underwriter"
    assert decision.reasons == [
        "no credit bureau report within 5d (request CBR-1)",
        "income reader confidence 0.70 is below 0.80",
    ]


def test_income_the_documents_do_not_evidence_is_asked_for_once() -> None:
    application = loan_application("APP-I", documents=[freelance_statement("see invoices")])
    unread = reading(None, 0.3, missing=["bank statements"])

    first = decide_loan(
        POLICY, REF, application, application.documents, credit_report("APP-I"), unread
    )
    after_reply = decide_loan(
        POLICY,
        REF,
        application,
        application.documents,
        credit_report("APP-I"),
        unread,
        information_requests=1,
    )

    assert first.route is LoanRoute.MORE_INFORMATION
    assert first.missing == ["bank statements"]
    assert first.reasons == [
        "the documents evidence 0.00 EUR of the 4,000.00 EUR monthly income declared"
    ]
    assert after_reply.route is LoanRoute.UNDERWRITING
    silent = refer_to_underwriting(
        POLICY, first, "the applicant did not reply within 3d", Decimal(1)
    )
    assert (silent.route, silent.role, silent.missing) == (
        LoanRoute.UNDERWRITING,
        "underwriter",
        [],
    )
    assert silent.reasons[0] == "the applicant did not reply within 3d"


def test_an_agent_failure_goes_to_a_person_rather_than_asking_the_applicant() -> None:
    application = loan_application("APP-F", documents=[freelance_statement()])
    decision = decide_loan(
        POLICY,
        REF,
        application,
        application.documents,
        credit_report("APP-F"),
        None,
        reading_problem="LlmUnavailable: timeout",
    )

    assert decision.route is LoanRoute.UNDERWRITING
    assert "no usable reading of the income documents: LlmUnavailable: timeout" in decision.reasons


def test_less_income_than_declared_is_looked_at_by_a_person() -> None:
    application = loan_application("APP-L", documents=[payslip("2500.00")])
    decision = decide_loan(
        POLICY, REF, application, application.documents, credit_report("APP-L"), None
    )

    assert decision.route is LoanRoute.UNDERWRITING
    assert decision.reasons == [
        "the documents evidence 2,500.00 EUR of the 4,000.00 EUR monthly income declared"
    ]


def test_only_non_standard_documents_are_for_the_agent() -> None:
    documents = [payslip(), freelance_statement()]

    assert [d.document_id for d in non_standard_documents(POLICY, documents)] == ["DOC-FREELANCE"]


def test_kyc_refusals_name_the_hit_and_the_failed_check() -> None:
    identity = IdentityVerification(
        verification_id="IDV-1", status="failed", reasons=["identity document ID-9 is expired"]
    )
    screening = SanctionsScreening(
        screening_id="SCR-1",
        status="hit",
        hits=[
            SanctionsHit(
                entry_id="SAN-1",
                name="Pyotr Ivanov",
                program="EU list",
                matched_on=["name", "date_of_birth"],
            )
        ],
    )

    assert kyc_refusals(identity, screening) == [
        "sanctions screening SCR-1 hit SAN-1 (Pyotr Ivanov, EU list) on name and date_of_birth",
        "identity verification IDV-1 failed: identity document ID-9 is expired",
    ]
    clear = SanctionsScreening(screening_id="SCR-2", status="clear")
    assert (
        kyc_refusals(IdentityVerification(verification_id="IDV-2", status="verified"), clear) == []
    )


def test_the_stand_in_reads_amounts_stated_per_month_and_nothing_else() -> None:
    read = stand_in_reading(
        {
            "documents": [
                {"document_id": "A", "text": "Average monthly income over 24 months: 3,950.00 EUR"},
                {"document_id": "B", "text": "Rental income EUR 600 per month"},
            ]
        }
    )
    partly = stand_in_reading(
        {
            "documents": [
                {"document_id": "A", "text": "Monthly pension 1 200.00 EUR"},
                {"document_id": "B", "text": "Invoices attached, 12 in total"},
            ]
        }
    )
    nothing = stand_in_reading({"documents": [{"document_id": "A", "text": "30000 EUR a year"}]})

    assert (read.assessment, read.verified_monthly_income, read.confidence) == (
        IncomeAssessment.SUPPORTED,
        Decimal("4550.00"),
        0.85,
    )
    assert (partly.verified_monthly_income, partly.confidence) == (Decimal("1200.00"), 0.6)
    assert (nothing.assessment, nothing.verified_monthly_income) == (
        IncomeAssessment.INSUFFICIENT,
        None,
    )
    assert "stand-in" in nothing.explanation
