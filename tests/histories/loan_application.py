"""Loan-application scenarios: the lending system, KYC, the bureau, payments and the income reader
faked by activity name (``tests.loan_application_support.FakeLending``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from activities.fraud import FraudAlert
from activities.kyc import SanctionsHit
from casework.testing.cases import open_task
from casework.testing.recorder import Drive, Recordings, Scenario, nothing
from casework.testing.signing import decide
from tests.loan_application_support import (
    FakeLending,
    LoanHandle,
    credit_report,
    freelance_statement,
    loan_application,
    reaches_status,
    reading,
    waits_for,
)
from workflows.loan_application import (
    CREDIT_REPORT,
    FRAUD_ALERT,
    LoanApplicationInput,
    LoanApplicationWorkflow,
    LoanStatus,
    Outcome,
)


def _report_early(score: int = 760) -> Drive:
    """The bureau answers straight after the start, long before the credit step."""

    async def drive(env: WorkflowEnvironment, handle: LoanHandle) -> None:
        application_id = handle.id.removeprefix("loan-application-")
        await handle.signal(CREDIT_REPORT, credit_report(application_id, score=score))

    return drive


async def _underwriter_rejects(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    await _report_early()(env, handle)
    await open_task(handle)
    await decide(handle, approver="noah", action="reject", comment="purpose unclear")


async def _applicant_silent_then_approved(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    await _report_early()(env, handle)
    await waits_for(handle, "a reply from the applicant")
    await env.sleep(timedelta(days=3, minutes=1))
    await open_task(handle)
    await decide(handle, approver="noah", action="approve", comment="statements seen in branch")


def _mule_alert(application_id: str) -> FraudAlert:
    return FraudAlert(application_id=application_id, alert_id="FA-1", reason="mule account")


def _alert_raised(systems: FakeLending) -> FakeLending:
    """Fraud monitoring has raised ``_mule_alert`` (cases that confirm alerts read it back)."""
    systems.raise_alert(_mule_alert(systems.application.application_id))
    return systems


async def _fraud_alert_after_disbursement(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    application_id = handle.id.removeprefix("loan-application-")
    await _report_early()(env, handle)
    await reaches_status(handle, LoanStatus.DISBURSED)
    await handle.signal(FRAUD_ALERT, _mule_alert(application_id))


async def _forged_report_then_the_bureaus(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    """Issue 21, Why 4: a made-up report (score 850) for a request the bureau never had."""
    application_id = handle.id.removeprefix("loan-application-")
    await waits_for(handle, "the credit bureau's report")
    forged = credit_report(application_id, score=850, debt="0", report_id="CBREP-FORGED")
    await handle.signal(
        CREDIT_REPORT, forged.model_copy(update={"request_id": "NOT-A-BUREAU-REQUEST"})
    )
    await handle.signal(CREDIT_REPORT, credit_report(application_id))


async def _fraud_alert_during_underwriting(env: WorkflowEnvironment, handle: LoanHandle) -> None:
    application_id = handle.id.removeprefix("loan-application-")
    await _report_early()(env, handle)
    await open_task(handle)
    await handle.signal(FRAUD_ALERT, _mule_alert(application_id))


def _loan(application_id: str, now: datetime) -> FakeLending:
    return FakeLending(loan_application(application_id))


def _large_loan(application_id: str, now: datetime) -> FakeLending:
    return FakeLending(loan_application(application_id, amount="60000.00", term_months=120))


def _poor_credit(application_id: str, now: datetime) -> FakeLending:
    return FakeLending(
        loan_application(application_id),
        bureau_report=credit_report(application_id, score=480),
    )


def _unreadable_income(application_id: str, now: datetime) -> FakeLending:
    return FakeLending(
        loan_application(application_id, documents=[freelance_statement("see invoices")]),
        readings=[reading(None, 0.4, missing=["bank statements"])],
    )


def _inflated_income(application_id: str, now: datetime) -> FakeLending:
    # The reader answers ten times what the statement (and the applicant) says.
    statement = freelance_statement("Freelance income: 1,000.00 EUR per month")
    return FakeLending(
        loan_application(
            application_id, amount="25000.00", declared_income="1000.00", documents=[statement]
        ),
        readings=[reading("10000.00", confidence=0.95)],
    )


def _sanctioned(application_id: str, now: datetime) -> FakeLending:
    hit = SanctionsHit(entry_id="SAN-1", name="Maria Keller", program="EU list")
    return FakeLending(loan_application(application_id), sanctions_hits=[hit])


RECORDINGS = Recordings(
    workflow=LoanApplicationWorkflow,
    key=lambda name: f"APP-REPLAY-{name}",
    start=lambda application_id, systems: LoanApplicationInput(
        application_id=application_id, submitted_by="paul"
    ),
    scenarios=(
        Scenario("disbursed", _loan, _report_early(), {"outcome": Outcome.AUTO_APPROVED}),
        Scenario(
            "rules_rejected", _poor_credit, _report_early(score=480), {"outcome": Outcome.REJECTED}
        ),
        Scenario(
            "underwriter_rejected",
            _large_loan,
            _underwriter_rejects,
            {"outcome": Outcome.REJECTED_BY_UNDERWRITER},
        ),
        Scenario(
            "more_information_escalated",
            _unreadable_income,
            _applicant_silent_then_approved,
            {"outcome": Outcome.APPROVED},
        ),
        Scenario("sanctions_hit", _sanctioned, nothing, {"outcome": Outcome.SANCTIONS_HIT}),
        Scenario(
            "income_not_borne_out",
            _inflated_income,
            _underwriter_rejects,
            {"outcome": Outcome.REJECTED_BY_UNDERWRITER},
        ),
        Scenario(
            "fraud_reversed",
            lambda application_id, now: _alert_raised(_loan(application_id, now)),
            _fraud_alert_after_disbursement,
            {"outcome": Outcome.REVERSED_AFTER_FRAUD_ALERT},
        ),
        Scenario(
            "forged_report_ignored",
            _loan,
            _forged_report_then_the_bureaus,
            {"outcome": Outcome.AUTO_APPROVED},
        ),
        Scenario(
            "fraud_alert_withdraws_underwriting",
            lambda application_id, now: _alert_raised(_large_loan(application_id, now)),
            _fraud_alert_during_underwriting,
            {"outcome": Outcome.FRAUD_ALERT},
        ),
        # Patch loan-disbursement-looked-up: paid out, every answer lost, found in the ledger.
        Scenario(
            "disbursement_found_after_lost_answers",
            lambda application_id, now: FakeLending(
                loan_application(application_id), disbursement_answers_lost=True
            ),
            _report_early(),
            {"outcome": Outcome.AUTO_APPROVED},
        ),
    ),
)
