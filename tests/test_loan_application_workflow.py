"""The loan-application workflow on the time-skipping test server, with systems faked by name.

One test per outcome, plus the issue's acceptance points: a bureau report that arrives early is
not lost, and a fraud alert after approval ends the case compensated with the reversal recorded.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.fraud import FraudAlert
from activities.kyc import SanctionsHit
from activities.lending import CustomerReply
from casework.audit import AuditKind
from casework.case import CaseStatus
from casework.report import CaseRecord, compute
from casework.testing.cases import audit, events_of, open_task, state
from casework.testing.signing import decide
from tests.loan_application_support import (
    FakeLending,
    credit_report,
    freelance_statement,
    loan_application,
    loan_worker,
    payslip,
    reaches_status,
    reading,
    recorded,
    start_loan,
    waits_for,
)
from workflows.loan_application import (
    CREDIT_REPORT,
    CUSTOMER_REPLY,
    FRAUD_ALERT,
    LoanStatus,
    Outcome,
)


async def cancel(handle: WorkflowHandle) -> None:
    """Cancel and wait until the case has closed, while its worker still runs."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def timers(handle: WorkflowHandle) -> list[timedelta]:
    history = await handle.fetch_history()
    return [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


def alert(application_id: str, alert_id: str = "FA-1") -> FraudAlert:
    return FraudAlert(
        application_id=application_id, alert_id=alert_id, reason="mule account pattern"
    )


async def test_auto_approved_loan_is_disbursed_and_completes_after_the_fraud_watch(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-A1"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-A1")
        await waits_for(handle, "credit-report CBR-1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-A1"))
        result = await handle.result()
        events = await audit(handle)

    assert (result.status, result.outcome) == (LoanStatus.DISBURSED, Outcome.AUTO_APPROVED)
    assert result.amount_disbursed == Decimal("20000.00")
    assert "no fraud alert within 2w" in result.message
    assert systems.statuses == ["approved"]
    (payment,) = systems.disbursements.values()
    assert (payment.status, payment.amount, payment.supplier_id) == (
        "completed",
        Decimal("20000.00"),
        "CUST-APP-A1",
    )
    assert payment.idempotency_key == "loan-application-APP-A1:disbursement"
    # A payslip is a standard document: no agent was needed to read it.
    assert systems.agent_requests == []
    (decision, watch) = events_of(events, AuditKind.POLICY_DECISION)
    assert decision.data["decision"]["route"] == "auto_approve"
    assert decision.data["decision"]["monthly_instalment"] == "395.08"
    assert "fraud watch open until" in watch.summary
    assert [n.subject for n in systems.notifications if n.to.endswith("customers.example.com")] == [
        "Your loan APP-A1 has been paid out"
    ]


async def test_bureau_report_arriving_during_identity_checks_is_kept_until_needed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-E1"), kyc_gate=asyncio.Event())
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-E1")
        await systems.verification_started.wait()
        await handle.signal(CREDIT_REPORT, credit_report("APP-E1"))
        await recorded(handle, AuditKind.MESSAGE_RECEIVED)
        systems.kyc_gate.set()  # type: ignore[union-attr]
        result = await handle.result()
        events = await audit(handle)
        started = await timers(handle)

    assert result.outcome is Outcome.AUTO_APPROVED
    received, accepted = events_of(events, AuditKind.MESSAGE_RECEIVED)
    assert received.summary == (
        "received credit report CBREP-1 (request CBR-1); it counts once the bureau confirms it"
    )
    assert accepted.data["accepted"] is True
    assert "(read back by request CBR-1)" in accepted.summary
    kyc_call = next(e for e in events if e.kind is AuditKind.TOOL_CALL and "identity" in e.summary)
    # Kept while KYC ran, read back from the bureau when the credit step needed it.
    assert received.seq < kyc_call.seq < accepted.seq
    # It was never waited for: the only timer is the fraud watch, not the bureau's 5 days.
    assert started == [timedelta(days=14)]


async def test_bureau_report_sent_before_the_case_has_read_the_application_is_not_lost(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-E2"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-E2")
        # Straight after the start: the case has not even loaded its policy yet.
        await handle.signal(CREDIT_REPORT, credit_report("APP-E2"))
        result = await handle.result()
        events = await audit(handle)

    assert result.outcome is Outcome.AUTO_APPROVED
    received, accepted = events_of(events, AuditKind.MESSAGE_RECEIVED)
    assert received.data["confirming"] is True
    assert accepted.data["accepted"] is True


async def test_invalid_reports_are_recorded_and_ignored_with_the_reason(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-V1"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-V1")
        await waits_for(handle, "credit-report")
        await handle.signal(CREDIT_REPORT, credit_report("APP-OTHER"))
        await handle.signal(CREDIT_REPORT, {"application_id": "APP-V1", "score": "high"})
        await handle.signal(CREDIT_REPORT)
        await handle.signal(CREDIT_REPORT, args=[credit_report("APP-V1"), credit_report("APP-V1")])
        await handle.signal(CUSTOMER_REPLY, CustomerReply(application_id="APP-V1", text="hi"))
        # What the message says does not count: the bureau's copy (score 760) does.
        await handle.signal(CREDIT_REPORT, credit_report("APP-V1", score=700))
        await reaches_status(handle, LoanStatus.DISBURSED)
        await handle.signal(CREDIT_REPORT, credit_report("APP-V1", report_id="CBREP-2"))
        await recorded(handle, AuditKind.MESSAGE_RECEIVED, 8)
        result = await handle.result()
        events = await audit(handle)
        history = await handle.fetch_history()

    assert result.outcome is Outcome.AUTO_APPROVED
    summaries = [e.summary for e in events_of(events, AuditKind.MESSAGE_RECEIVED)]
    assert summaries[0] == (
        "ignored credit report: it is for application APP-OTHER, this case is for APP-V1"
    )
    assert summaries[1].startswith("ignored credit report: malformed: report_id: Field required")
    assert "score: Input should be a valid integer" in summaries[1]
    assert summaries[2:4] == [
        "ignored credit report: malformed: expected one CreditReport, got 0 payloads",
        "ignored credit report: malformed: expected one CreditReport, got 2 payloads",
    ]
    assert summaries[4] == "ignored customer reply: no request for more information is open"
    assert summaries[5].startswith("received credit report CBREP-1 (request CBR-1)")
    assert summaries[6].startswith(
        "credit report CBREP-1 from the bureau (read back by request CBR-1; the message "
        "differed in score: the bureau's copy counts): score 760"
    )
    assert summaries[7:] == [
        "ignored credit report: CBREP-2: report CBREP-1 is already on file",
    ]
    decision = events_of(events, AuditKind.POLICY_DECISION)[0]
    assert decision.data["decision"]["route"] == "auto_approve"
    assert not [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_non_standard_income_is_read_by_the_agent_and_referred_when_unsure(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(
        loan_application("APP-U1", documents=[freelance_statement()]),
        readings=[reading("4000.00", confidence=0.6)],
    )
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-U1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-U1"))
        task = await open_task(handle)
        receipt = await decide(handle, approver="noah", action="approve", comment="statement ok")
        result = await handle.result()

    (request,) = systems.agent_requests
    assert [doc["document_id"] for doc in request.context["documents"]] == ["DOC-FREELANCE"]
    assert "Average monthly income" in request.context["documents"][0]["text"]
    assert "DOC-FREELANCE" not in request.system_prompt
    assert (task.role, task.amount) == ("underwriter", Decimal("20000.00"))
    assert "income reader confidence 0.60 is below 0.80" in task.summary
    assert receipt.approver == "noah"
    assert (result.status, result.outcome, result.decided_by) == (
        LoanStatus.DISBURSED,
        Outcome.APPROVED,
        "noah",
    )


async def test_underwriter_rejection_declines_the_application(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-M2", amount="60000.00", term_months=120))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-M2")
        await handle.signal(CREDIT_REPORT, credit_report("APP-M2"))
        task = await open_task(handle)
        await decide(handle, approver="noah", action="reject", comment="purpose unclear")
        result = await handle.result()

    assert "exceeds the auto-approval ceiling 25,000.00" in task.summary
    assert (result.status, result.outcome) == (
        CaseStatus.REJECTED,
        Outcome.REJECTED_BY_UNDERWRITER,
    )
    assert result.message == "rejected: rejected by noah: purpose unclear"
    assert systems.statuses == ["declined"]
    assert systems.disbursements == {}


async def test_large_loan_goes_to_a_credit_officer_who_may_approve_less(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(
        loan_application(
            "APP-M3",
            amount="150000.00",
            term_months=240,
            declared_income="9000.00",
            documents=[payslip("9000.00")],
        )
    )
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-M3")
        await handle.signal(CREDIT_REPORT, credit_report("APP-M3"))
        task = await open_task(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, approver="noah", action="approve")
        await decide(handle, approver="olivia", action="approve", amount="120000.00")
        result = await handle.result()

    assert (task.role, task.eligible_roles) == ("credit_officer", ["credit_officer"])
    assert "noah (underwriter) may not decide this task" in str(refused.value.cause)
    assert (result.outcome, result.decided_by) == (Outcome.APPROVED, "olivia")
    assert result.amount_disbursed == Decimal("120000.00")
    assert systems.status_changes[0].approved_amount == Decimal("120000.00")


async def test_low_bureau_score_is_rejected_by_the_rules(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    report = credit_report("APP-R1", score=480, defaults=1)
    systems = FakeLending(loan_application("APP-R1"), bureau_report=report)
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-R1")
        await handle.signal(CREDIT_REPORT, report)
        result = await handle.result()

    assert (result.status, result.outcome, result.decided_by) == (
        CaseStatus.REJECTED,
        Outcome.REJECTED,
        "policy",
    )
    assert result.reasons == ["bureau score 480 is below 520", "the bureau reports 1 default(s)"]
    assert systems.statuses == ["declined"]
    assert systems.disbursements == {}


async def test_sanctions_hit_rejects_without_waiting_for_the_bureau(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    hit = SanctionsHit(
        entry_id="SAN-7", name="Maria Keller", program="EU list", matched_on=["name"]
    )
    systems = FakeLending(loan_application("APP-S1"), sanctions_hits=[hit])
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-S1")
        result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.REJECTED, Outcome.SANCTIONS_HIT)
    assert result.reasons == ["sanctions screening SCR-1 hit SAN-7 (Maria Keller, EU list) on name"]
    assert systems.statuses == ["declined"]
    assert await timers(handle) == []


async def test_failed_identity_verification_rejects(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-S2"), identity_status="failed")
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-S2")
        result = await handle.result()

    assert result.outcome is Outcome.IDENTITY_NOT_VERIFIED
    assert "date of birth does not match the document" in result.message


async def test_more_information_answered_in_time_is_read_again_and_approved(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(
        loan_application("APP-I1", documents=[freelance_statement("invoices attached")]),
        readings=[reading(None, 0.4, missing=["bank statements for 2024"]), reading("3950.00")],
    )
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-I1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-I1"))
        waiting = await waits_for(handle, "a reply from the applicant")
        reply = CustomerReply(
            application_id="APP-I1",
            text="Statements attached",
            documents=[freelance_statement("Bank statements: 3,950.00 EUR per month")],
        )
        await handle.signal(CUSTOMER_REPLY, systems.store_reply(reply))
        result = await handle.result()
        events = await audit(handle)

    assert waiting.status == CaseStatus.AWAITING_EXTERNAL
    assert "casework deliver customer-reply APP-I1" in (waiting.waiting_on or "")
    (letter,) = [n for n in systems.notifications if "More information" in n.subject]
    assert letter.to == "app-i1@customers.example.com"
    assert "bank statements for 2024" in letter.body
    assert result.outcome is Outcome.AUTO_APPROVED
    second = systems.agent_requests[1]
    assert second.context["customer_replies"] == [{"text": "Statements attached"}]
    assert len(second.context["documents"]) == 2
    decisions = [e.data.get("decision") for e in events_of(events, AuditKind.POLICY_DECISION)]
    assert [d["route"] for d in decisions if d] == ["more_information", "auto_approve"]
    # Each reading is a proposal of its own, with its call's spend; the income reader proposes
    # no underwriting decision, so nobody can follow or override it.
    readings = events_of(events, AuditKind.AGENT_PROPOSAL)
    assert [(e.data["recommended_action"], e.data["confidence"]) for e in readings] == [
        (None, 0.4),
        (None, 0.9),
    ]
    assert [
        (e.data["model_usage"]["agent"], e.data["model_usage"]["model_calls"]) for e in readings
    ] == [("income_reader", 1), ("income_reader", 1)]
    assert [e.data["proposal"]["confidence"] for e in readings] == [0.4, 0.9]
    # Asking the applicant is a question, not an approval task: the policy still decided alone.
    (asked,) = events_of(events, AuditKind.TASK_OPENED)
    assert asked.data["task_kind"] == "question"
    record = CaseRecord(
        case_id=handle.id,
        case_type="loan-application",
        case_status=result.status,
        execution_status="completed",
        started_at=events[0].at,
        audit=events,
    )
    assert compute([record]).auto_approval.model_dump() == {"count": 1, "of": 1, "rate": 1.0}


async def test_more_information_unanswered_for_three_days_goes_to_an_underwriter(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(
        loan_application("APP-I2", documents=[freelance_statement("see invoices")]),
        readings=[reading(None, 0.4, missing=["bank statements"])],
    )
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-I2")
        await handle.signal(CREDIT_REPORT, credit_report("APP-I2"))
        await waits_for(handle, "a reply from the applicant")
        await time_skipping_env.sleep(timedelta(days=3, minutes=1))
        task = await open_task(handle)
        # Too late: the request is closed, and the reply is recorded as ignored.
        await handle.signal(CUSTOMER_REPLY, CustomerReply(application_id="APP-I2", text="late"))
        await decide(handle, approver="noah", action="reject", comment="income not evidenced")
        result = await handle.result()
        events = await audit(handle)

    assert task.role == "underwriter"
    assert "the applicant did not reply within 3d" in task.summary
    assert result.outcome is Outcome.REJECTED_BY_UNDERWRITER
    escalated = events_of(events, AuditKind.TASK_ESCALATED)[0]
    assert escalated.summary.startswith("the applicant did not reply within 3d")
    assert events_of(events, AuditKind.MESSAGE_RECEIVED)[-1].summary == (
        "ignored customer reply: no request for more information is open"
    )


async def test_fraud_alert_after_disbursement_reverses_disbursement_and_approval(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-F1"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-F1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-F1"))
        watching = await reaches_status(handle, LoanStatus.DISBURSED)
        await handle.signal(FRAUD_ALERT, systems.raise_alert(alert("APP-F1")))
        result = await handle.result()
        events = await audit(handle)

    assert "casework deliver fraud-alert APP-F1" in (watching.waiting_on or "")
    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_COMPENSATED,
        Outcome.REVERSED_AFTER_FRAUD_ALERT,
    )
    assert result.compensated == [
        "disbursement PAY-1 of 20,000.00 EUR reversed",
        "approval of APP-F1 reversed",
    ]
    assert result.compensation_failed == []
    assert systems.statuses == ["approved", "approval_reversed"]
    (reversal,) = systems.reversals
    assert reversal.payment_id == "PAY-1"
    assert "fraud alert FA-1" in reversal.reason
    assert next(iter(systems.disbursements.values())).status == "reversed"
    compensations = [e.summary for e in events_of(events, AuditKind.COMPENSATION)]
    assert compensations == [
        "compensated: disbursement PAY-1 of 20,000.00 EUR reversed (fraud alert FA-1 from "
        "fraud-monitoring: mule account pattern)",
        "compensated: approval of APP-F1 reversed (fraud alert FA-1 from fraud-monitoring: "
        "mule account pattern)",
    ]
    assert [e.data for e in events_of(events, AuditKind.COMPENSATION)] == [
        {"step": step, "ok": True} for step in result.compensated
    ]
    assert any(n.to == "kate@example.com" for n in systems.notifications)


async def test_an_empty_fraud_alert_on_a_paid_out_loan_leaves_the_case_able_to_reverse_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Issue 21, Why 5: a ``fraud_alert`` signal with no input failed every workflow task of a
    paid-out loan, and the genuine alert after it could no longer reverse the payout."""
    systems = FakeLending(loan_application("APP-F4"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-F4")
        await handle.signal(CREDIT_REPORT, credit_report("APP-F4"))
        await reaches_status(handle, LoanStatus.DISBURSED)
        await handle.signal(FRAUD_ALERT)
        await handle.signal(FRAUD_ALERT, args=[alert("APP-F4"), alert("APP-F4")])
        await recorded(handle, AuditKind.MESSAGE_RECEIVED, 4)
        watching = await state(handle)
        await handle.signal(FRAUD_ALERT, systems.raise_alert(alert("APP-F4")))
        result = await handle.result()
        events = await audit(handle)
        history = await handle.fetch_history()

    assert watching.status == LoanStatus.DISBURSED
    ignored = [e.summary for e in events_of(events, AuditKind.MESSAGE_RECEIVED)][2:4]
    assert ignored == [
        "ignored fraud alert: malformed: expected one FraudAlert, got 0 payloads",
        "ignored fraud alert: malformed: expected one FraudAlert, got 2 payloads",
    ]
    assert result.outcome is Outcome.REVERSED_AFTER_FRAUD_ALERT
    assert systems.statuses == ["approved", "approval_reversed"]
    assert not [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_fraud_alert_during_underwriting_withdraws_the_task_and_refuses_a_late_approval(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-F2", amount="60000.00", term_months=120))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-F2")
        await handle.signal(CREDIT_REPORT, credit_report("APP-F2"))
        task = await open_task(handle)
        await handle.signal(FRAUD_ALERT, systems.raise_alert(alert("APP-F2")))
        result = await handle.result()
        with pytest.raises((WorkflowUpdateFailedError, RPCError)):
            await decide(handle, approver="noah", action="approve", task_id=task.task_id)
        events = await audit(handle)
        final = await state(handle)

    assert result.outcome is Outcome.FRAUD_ALERT
    assert result.reasons == ["fraud alert FA-1 from fraud-monitoring: mule account pattern"]
    assert systems.statuses == ["declined"]
    assert systems.disbursements == {}
    assert final.open_tasks == []
    withdrawn = [e for e in events if e.summary.startswith(f"withdrew task {task.task_id}")]
    assert [e.data["role"] for e in withdrawn] == ["underwriter"]
    assert events_of(events, AuditKind.HUMAN_DECISION) == []
    told = [n for n in systems.notifications if n.subject.startswith("No longer needed")]
    assert told and all(n.to == "noah@example.com" for n in told)


async def test_fraud_alert_that_fraud_monitoring_never_raised_is_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-F3", amount="60000.00", term_months=120))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-F3")
        await handle.signal(CREDIT_REPORT, credit_report("APP-F3"))
        await open_task(handle)
        await handle.signal(FRAUD_ALERT, alert("APP-F3", alert_id="FA-MADE-UP"))
        await recorded(handle, AuditKind.MESSAGE_RECEIVED, 4)
        receipt = await decide(handle, approver="noah", action="approve")
        result = await handle.result()
        events = await audit(handle)

    assert receipt.approver == "noah"
    assert (result.outcome, result.amount_disbursed) == (Outcome.APPROVED, Decimal("60000.00"))
    ignored = events_of(events, AuditKind.MESSAGE_RECEIVED)[3]
    assert ignored.summary.startswith(
        "ignored fraud alert: fraud monitoring does not confirm alert FA-MADE-UP (RecordNotFound"
    )


async def test_an_application_decided_meanwhile_elsewhere_is_not_paid_out_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Business objects, not cases, are the unit of money: a second case on one application
    (another ID), or a person in the lending system, decided it first."""
    systems = FakeLending(loan_application("APP-D2"), decided_elsewhere="approved")
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-D2")
        await handle.signal(CREDIT_REPORT, credit_report("APP-D2"))
        result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.SUPERSEDED, Outcome.DECIDED_ELSEWHERE)
    assert result.message.startswith(
        "approved by policy, but not paid out: the application was decided meanwhile outside "
        "this case (RequestConflict: "
    )
    assert systems.disbursements == {} and systems.statuses == []


async def test_failed_disbursement_reverses_the_approval(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-D1"), disbursement_fails=True)
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-D1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-D1"))
        result = await handle.result()

    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_COMPENSATED,
        Outcome.DISBURSEMENT_FAILED,
    )
    assert result.compensated == ["approval of APP-D1 reversed"]
    assert systems.statuses == ["approved", "approval_reversed"]


async def test_disbursement_made_with_every_answer_lost_is_found_and_kept(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # Before the lookup, this case ended compensated with the approval reversed and the money
    # still out: nothing reversed the disbursement the payments system had made.
    systems = FakeLending(loan_application("APP-L1"), disbursement_answers_lost=True)
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-L1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-L1"))
        watching = await reaches_status(handle, LoanStatus.DISBURSED)
        await handle.signal(FRAUD_ALERT, systems.raise_alert(alert("APP-L1")))
        result = await handle.result()
        events = await audit(handle)

    assert watching.status == LoanStatus.DISBURSED
    (payment,) = systems.disbursements.values()
    assert payment.idempotency_key == "loan-application-APP-L1:disbursement"
    (lookup,) = events_of(events, AuditKind.WRITE_LOOKED_UP)
    assert lookup.data == {
        "activity": "payments.find",
        "idempotency_key": "loan-application-APP-L1:disbursement",
        "found": True,
    }
    assert lookup.summary.startswith("the disbursement of APP-L1 failed, yet payments.find")
    # The disbursement found is the case's own: its reversal is registered like any other.
    assert result.status == CaseStatus.FAILED_COMPENSATED
    assert result.compensated == [
        "disbursement PAY-1 of 20,000.00 EUR reversed",
        "approval of APP-L1 reversed",
    ]
    assert payment.status == "reversed"
    assert [r.payment_id for r in systems.reversals] == ["PAY-1"]


async def test_disbursement_failed_with_the_ledger_unreadable_needs_a_person(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(
        loan_application("APP-L2"), disbursement_answers_lost=True, ledger_unreadable=True
    )
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-L2")
        await handle.signal(CREDIT_REPORT, credit_report("APP-L2"))
        result = await handle.result()

    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_NEEDS_ATTENTION,
        Outcome.DISBURSEMENT_FAILED,
    )
    assert result.compensated == ["approval of APP-L2 reversed"]
    assert result.compensation_failed == [
        "a possible disbursement of APP-L2 (the ledger could not be read)"
    ]
    assert systems.reversals == []


async def test_bureau_silence_and_no_underwriter_puts_the_application_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-H1"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-H1")
        result = await handle.result()
        events = await audit(handle)

    assert (result.status, result.outcome) == (CaseStatus.ON_HOLD, Outcome.NO_DECISION)
    assert systems.statuses == ["on_hold"]
    timed_out = [e.summary for e in events_of(events, AuditKind.TASK_TIMED_OUT)]
    assert timed_out[0] == "no credit bureau report within 5d (request CBR-1)"
    assert [e.data["to_role"] for e in events_of(events, AuditKind.TASK_ESCALATED)] == [
        "credit_officer"
    ]
    assert await timers(handle) == [timedelta(days=5), timedelta(days=2), timedelta(days=3)]


async def test_cancelling_during_the_fraud_watch_keeps_the_loan(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-C1"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-C1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-C1"))
        await reaches_status(handle, LoanStatus.DISBURSED)
        await handle.cancel()
        result = await handle.result()

    assert (result.status, result.outcome) == (LoanStatus.DISBURSED, Outcome.AUTO_APPROVED)
    assert result.message.endswith("fraud watch ended early: the case was cancelled")
    assert systems.reversals == []


async def test_cancelling_while_underwriting_undoes_nothing_and_says_so(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-C2", amount="60000.00", term_months=120))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-C2")
        await handle.signal(CREDIT_REPORT, credit_report("APP-C2"))
        await open_task(handle)
        await cancel(handle)
        events = await audit(handle)

    assert events[-1].summary == "cancelled; compensated: nothing to undo"
    assert systems.statuses == []


async def test_input_with_an_unknown_field_fails_at_start_naming_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(loan_application("APP-X1"))
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await time_skipping_env.client.start_workflow(
            "LoanApplication",
            {"application_id": "APP-X1", "applicationId": "APP-X1"},
            id="loan-application-APP-X1",
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput"
    assert "applicationId: Extra inputs are not permitted" in cause.message
