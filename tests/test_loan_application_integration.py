"""The loan-application process with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP; the income reader's
``llm.propose`` through litellm to a scripted OpenAI-compatible model), the FastAPI+SQLite
sandbox (lending, KYC, credit bureau, payments ledger). Messages reach their cases the way an
operator sends them: ``casework deliver`` and the plain Temporal CLI. Each test checks what the
case did to the systems of record, not only what it returned.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.fraud import FraudAlert
from activities.lending import LoanApplication
from casework.audit import AuditKind
from casework.case import TOOL_RETRY, CaseStatus
from casework.testing.cases import audit, events_of, open_task
from casework.testing.scripted_llm import (
    SCRIPTED_MODEL,
    ScriptedModel,
    ScriptedReply,
    case_data,
    scripted_llm_server,
)
from casework.testing.signing import decide
from casework.testing.temporal import BIN, eventually, scripted_worker
from demos.loan_messages import NoCaseForMessage, bureau_report, deliver, raise_fraud_alert
from tests.loan_application_support import (
    LendingSandbox,
    LoanHandle,
    applicant,
    freelance_statement,
    loan_application,
    new_application_id,
    reaches_status,
    start_loan,
)
from workflows.loan_application import LoanStatus, Outcome

# -- the stack, once per module -----------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    """The model behind the income reader, scripted per application."""
    with scripted_llm_server() as server:
        yield ScriptedModel(server, "application", "application_id")


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, model: ScriptedModel
) -> AsyncIterator[str]:
    async with scripted_worker(temporal.client, sandbox_url, model.server, "loans") as queue:
        yield queue


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[LendingSandbox]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        client = LendingSandbox(http)
        yield client
        # A test that fails before its fault is used up must not fault the next test's case.
        (await http.delete("/_faults")).raise_for_status()


# -- helpers ------------------------------------------------------------------------------------


def reading_json(income: str, confidence: float) -> str:
    """An answer matching ``activities.agents.loan_application.IncomeReading``."""
    return json.dumps(
        {
            "assessment": "supported",
            "verified_monthly_income": income,
            "confidence": confidence,
            "findings": ["DOC-FREELANCE: accountant confirms the average monthly income"],
            "missing": [],
            "explanation": "Scripted for an integration test.",
        }
    )


async def bureau_request_id(sandbox: LendingSandbox, application_id: str) -> str:
    async def probe() -> str | None:
        request = await sandbox.bureau_request(application_id)
        return None if request is None else str(request["request_id"])

    return await eventually(probe, what=f"a credit report request for {application_id}")


def operator_env(temporal: WorkflowEnvironment, sandbox_url: str) -> dict[str, str]:
    """The environment of an operator's shell pointed at the test stack."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TEMPORAL_")}
    return env | {
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal.client.namespace,
        "CASEWORK_SANDBOX_URL": sandbox_url,
    }


async def run_command(command: list[str], env: dict[str, str]) -> str:
    # In a thread: the worker serving the case runs on this event loop and must keep running.
    completed = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=env
    )
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout}{completed.stderr}"
    return completed.stdout


# -- the tests ----------------------------------------------------------------------------------


async def test_bureau_report_arriving_during_identity_checks_is_not_lost(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: LendingSandbox,
    sandbox_url: str,
    model: ScriptedModel,
) -> None:
    application_id = new_application_id("EARLY")
    application = loan_application(application_id, documents=[freelance_statement()])
    await sandbox.seed(application)
    model.answer(
        application_id,
        ScriptedReply(
            content=reading_json("4000.00", 0.9), prompt_tokens=420, completion_tokens=60
        ),
    )
    # Identity verification takes its time: the bureau's answer overtakes it.
    await sandbox.inject_fault(
        method="POST", path="/kyc/verifications", count=1, status=0, delay_seconds=8
    )

    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await sandbox.answer(request_id)
    delivered = await run_command(
        [str(BIN / "casework"), "deliver", "credit-report", request_id],
        operator_env(temporal, sandbox_url),
    )
    watching = await reaches_status(handle, LoanStatus.DISBURSED, timeout=60)
    events = await audit(handle)

    assert f"credit_report for application {application_id} delivered to {handle.id}" in delivered
    received, accepted = events_of(events, AuditKind.MESSAGE_RECEIVED)
    assert accepted.data["accepted"] is True
    assert f"read back by request {request_id}" in accepted.summary
    identity_checked = next(
        e for e in events if e.kind is AuditKind.TOOL_CALL and "identity" in e.summary
    )
    # Kept while identity was checked; read back from the bureau when the credit step came.
    assert received.seq < identity_checked.seq < accepted.seq
    # The income document reached the model as data, through litellm's real HTTP path.
    (request,) = model.requests_for(application_id)
    sent = case_data(request)
    assert sent is not None
    assert sent["documents"][0]["text"] == "Average monthly income: 4,000.00 EUR"
    (proposal,) = events_of(events, AuditKind.AGENT_PROPOSAL)
    assert proposal.data["usage"]["model"] == SCRIPTED_MODEL
    assert proposal.data["usage"]["prompt_tokens"] == 420
    (payment,) = await sandbox.ledger(application_id)
    assert (payment.status, payment.amount) == ("completed", Decimal("20000.00"))
    assert watching.facts["payment_id"] == payment.payment_id
    assert (await sandbox.application(application_id))["status"] == "approved"

    # Ending the case during the fraud watch keeps the loan: the money went out on a sound
    # decision, and only a fraud alert claws it back.
    await handle.cancel()
    result = await handle.result()
    assert (result.status, result.outcome) == (LoanStatus.DISBURSED, Outcome.AUTO_APPROVED)
    assert [p.status for p in await sandbox.ledger(application_id)] == ["completed"]


# The model inflates the income the documents state; a figure they do not state at all.
INFLATED = {
    "above_the_declared_income": (
        "1000.00",
        "Freelance income statement: 1,000.00 EUR per month",
        "10000.00",
        [
            "not counted: income_reader's verified_monthly_income '10,000.00' (document): not "
            "stated in DOC-FREELANCE",
            "not counted: income_reader's verified_monthly_income '10,000.00' (policy): outside "
            "the declared monthly income 1,000.00 (at most 1,000.00)",
        ],
    ),
    "not_in_the_document": (
        "5000.00",
        "Average monthly income: 4.000,00 EUR",
        "4500.00",
        [
            "not counted: income_reader's verified_monthly_income '4,500.00' (document): not "
            "stated in DOC-FREELANCE"
        ],
    ),
}


@pytest.mark.parametrize(
    ("declared", "statement", "answered", "not_counted"), INFLATED.values(), ids=INFLATED.keys()
)
async def test_an_income_figure_the_documents_do_not_bear_out_pays_nothing_out(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: LendingSandbox,
    model: ScriptedModel,
    declared: str,
    statement: str,
    answered: str,
    not_counted: list[str],
) -> None:
    """Why 1: 25,000.00 over 60 months, a score of 760 and no debt; the reader answers a figure
    the statement does not state, very confidently. It counts for nothing: an underwriter
    decides, and until then no money moves."""
    application_id = new_application_id("INFLATED")
    application = loan_application(
        application_id,
        amount="25000.00",
        declared_income=declared,
        documents=[freelance_statement(statement)],
    )
    await sandbox.seed(application, score=760, debt="0.00")
    model.answer(application_id, ScriptedReply(content=reading_json(answered, 0.95)))

    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await sandbox.answer(request_id)
    await deliver(temporal.client, await bureau_report(sandbox.http, request_id))
    task = await open_task(handle)
    events = await audit(handle)

    (checked,) = events_of(events, AuditKind.PROPOSAL_CHECKED)
    assert checked.data["agent"] == "income_reader"
    assert checked.data["unverified"] == len(not_counted)
    (decision,) = events_of(events, AuditKind.POLICY_DECISION)[-1:]
    assert decision.data["decision"]["route"] == "underwriting"
    assert set(not_counted) <= set(decision.data["decision"]["reasons"])
    assert task.role == "underwriter"
    assert all(reason in task.summary for reason in not_counted)
    assert await sandbox.ledger(application_id) == []
    assert (await sandbox.application(application_id))["status"] == "submitted"

    await decide(handle, approver="noah", action="reject", comment="income not evidenced")
    result = await handle.result()
    assert result.outcome is Outcome.REJECTED_BY_UNDERWRITER
    assert await sandbox.ledger(application_id) == []


async def test_fraud_alert_after_approval_reverses_the_disbursement_in_the_ledger(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: LendingSandbox,
    sandbox_url: str,
) -> None:
    application_id = new_application_id("FRAUD")
    await sandbox.seed(loan_application(application_id))

    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await sandbox.answer(request_id)
    await deliver(temporal.client, await bureau_report(sandbox.http, request_id))
    await reaches_status(handle, LoanStatus.DISBURSED, timeout=60)
    (paid,) = await sandbox.ledger(application_id)
    assert paid.status == "completed"
    # Fraud monitoring raises the alert, and tells the case with nothing but the Temporal CLI.
    alert = await raise_fraud_alert(
        sandbox.http,
        FraudAlert(application_id=application_id, alert_id="FA-IT-1", reason="synthetic identity"),
    )
    await run_command(
        [
            str(BIN / "temporal"),
            "workflow",
            "signal",
            "--workflow-id",
            handle.id,
            "--name",
            "fraud_alert",
            "--input",
            alert.model_dump_json(),
            "--address",
            temporal.client.service_client.config.target_host,
            "--namespace",
            temporal.client.namespace,
            "--disable-config-file",
            "--disable-config-env",
        ],
        operator_env(temporal, sandbox_url),
    )
    result = await handle.result()
    events = await audit(handle)

    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_COMPENSATED,
        Outcome.REVERSED_AFTER_FRAUD_ALERT,
    )
    (payment,) = await sandbox.ledger(application_id)
    assert payment.payment_id == paid.payment_id
    assert payment.status == "reversed"
    assert result.compensated == [
        f"disbursement {payment.payment_id} of 20,000.00 EUR reversed",
        f"approval of {application_id} reversed",
    ]
    ledger_row = (await sandbox.http.get(f"/payments/{payment.payment_id}")).json()
    assert "fraud alert FA-IT-1" in ledger_row["reversal_reason"]
    stored = await sandbox.application(application_id)
    assert [h["status"] for h in stored["status_history"]] == [
        "submitted",
        "approved",
        "approval_reversed",
    ]
    compensations = [e.summary for e in events_of(events, AuditKind.COMPENSATION)]
    assert compensations[0].startswith(f"compensated: disbursement {payment.payment_id}")
    assert compensations[1].startswith(f"compensated: approval of {application_id} reversed")
    outbox = (await sandbox.http.get("/notifications", params={"to": "kate@example.com"})).json()
    assert any(n["case_id"] == handle.id for n in outbox)
    # The case is closed now: a late message is refused to its sender, not silently dropped.
    with pytest.raises(NoCaseForMessage, match="is completed"):
        await deliver(temporal.client, alert)


async def test_a_disbursement_made_with_every_answer_lost_is_found_in_the_ledger_and_kept(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: LendingSandbox
) -> None:
    application_id = new_application_id("LOST")
    await sandbox.seed(loan_application(application_id))
    # The payments system pays out on the first attempt and every answer is lost: the
    # disbursement fails for good, and only the ledger can say the money is out.
    await sandbox.inject_fault(
        method="POST",
        path="/payments/disbursements",
        count=TOOL_RETRY.maximum_attempts,
        status=503,
        when="after",
    )

    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await sandbox.answer(request_id)
    await deliver(temporal.client, await bureau_report(sandbox.http, request_id))
    await reaches_status(handle, LoanStatus.DISBURSED, timeout=90)
    events = await audit(handle)

    (payment,) = await sandbox.ledger(application_id)
    assert payment.status == "completed"
    assert payment.idempotency_key == f"{handle.id}:disbursement"
    stored = await sandbox.application(application_id)
    assert [h["status"] for h in stored["status_history"]] == ["submitted", "approved"]
    (failed,) = [
        e
        for e in events_of(events, AuditKind.TOOL_FAILED)
        if e.data["activity"] == "payments.disburse"
    ]
    assert "503" in failed.summary
    (lookup,) = events_of(events, AuditKind.WRITE_LOOKED_UP)
    assert lookup.data == {
        "activity": "payments.find",
        "idempotency_key": f"{handle.id}:disbursement",
        "found": True,
    }
    await handle.cancel()
    result = await handle.result()
    assert result.payment_id == payment.payment_id
    assert result.amount_disbursed == payment.amount


async def test_applicant_on_the_sanctions_list_is_declined_in_the_lending_system(
    temporal: WorkflowEnvironment, task_queue: str, sandbox: LendingSandbox
) -> None:
    application_id = new_application_id("SANCTIONS")
    application = loan_application(application_id)
    await sandbox.seed(application)
    person = application.applicant
    await sandbox.list_sanctioned(
        f"SAN-{application_id}", person.full_name.upper(), person.date_of_birth
    )

    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.REJECTED, Outcome.SANCTIONS_HIT)
    assert f"SAN-{application_id}" in result.message
    assert (await sandbox.application(application_id))["status"] == "declined"
    assert await sandbox.ledger(application_id) == []


def test_a_malformed_message_is_refused_before_anything_is_contacted() -> None:
    # Nothing listens on port 1: the refusal cannot have come from a case.
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    completed = subprocess.run(
        [str(BIN / "casework"), "deliver", "customer-reply", "APP 1", "--text", ""],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )

    assert completed.returncode == 1
    assert completed.stderr.startswith("casework: invalid CustomerReply: application_id:")
    assert "text: String should have at least 1 character" in completed.stderr


def unlisted(application: LoanApplication) -> LoanApplication:
    """The application by someone the sanctions test does not put on the list."""
    person = applicant(application.application_id, full_name="Jonas Weber")
    return application.model_copy(update={"applicant": person})


async def temporal_signal(
    temporal: WorkflowEnvironment, sandbox_url: str, case_id: str, name: str, payload: str
) -> None:
    """Send a signal with nothing but the plain Temporal CLI, as anyone with access could."""
    await run_command(
        [
            str(BIN / "temporal"),
            "workflow",
            "signal",
            "--workflow-id",
            case_id,
            "--name",
            name,
            "--input",
            payload,
            "--address",
            temporal.client.service_client.config.target_host,
            "--namespace",
            temporal.client.namespace,
            "--disable-config-file",
            "--disable-config-env",
        ],
        operator_env(temporal, sandbox_url),
    )


async def ignored(handle: LoanHandle, count: int) -> list[str]:
    """Until ``count`` messages were ignored; their reasons."""

    async def probe() -> list[str] | None:
        reasons = [
            str(e.data["reason"])
            for e in events_of(await audit(handle), AuditKind.MESSAGE_RECEIVED)
            if e.data.get("accepted") is False
        ]
        return reasons if len(reasons) >= count else None

    return await eventually(probe, what=f"{count} ignored message(s) in {handle.id}")


async def test_a_forged_credit_report_pays_nothing_and_the_bureaus_report_still_counts(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: LendingSandbox,
    sandbox_url: str,
) -> None:
    """Issue 21, Why 4: a made-up report (score 850, no debt) for a request the bureau never
    had was accepted and paid out 20,000.00; the bureau's own report was then ignored."""
    application_id = new_application_id("FORGED")
    await sandbox.seed(unlisted(loan_application(application_id)), score=610, debt="300.00")
    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await reaches_status(handle, CaseStatus.AWAITING_EXTERNAL, timeout=30)

    forged = {
        "application_id": application_id,
        "report_id": "CBREP-FORGED",
        "request_id": "NOT-A-BUREAU-REQUEST",
        "subject_id": f"ID-{application_id}",
        "score": 850,
        "monthly_debt_payments": "0",
        "defaults": 0,
        "issued_at": "2025-01-06T09:00:00Z",
    }
    await temporal_signal(temporal, sandbox_url, handle.id, "credit_report", json.dumps(forged))
    # The same forgery naming the case's real request, before the bureau has answered it.
    await temporal_signal(
        temporal,
        sandbox_url,
        handle.id,
        "credit_report",
        json.dumps(forged | {"request_id": request_id}),
    )
    reasons = await ignored(handle, 2)
    waiting = await reaches_status(handle, CaseStatus.AWAITING_EXTERNAL)

    assert reasons == [
        f"CBREP-FORGED answers request NOT-A-BUREAU-REQUEST, not this case's request {request_id}",
        f"CBREP-FORGED: the bureau has not answered request {request_id} (it is pending), so the "
        "report did not come from the bureau",
    ]
    assert f"casework deliver credit-report {request_id}" in (waiting.waiting_on or "")
    assert await sandbox.ledger(application_id) == []

    # The bureau answers; its report is delivered the documented way, and counts.
    await sandbox.answer(request_id)
    await run_command(
        [str(BIN / "casework"), "deliver", "credit-report", request_id],
        operator_env(temporal, sandbox_url),
    )
    underwriting = await reaches_status(handle, CaseStatus.AWAITING_APPROVAL, timeout=30)
    events = await audit(handle)

    accepted = [e for e in events_of(events, AuditKind.MESSAGE_RECEIVED) if e.data.get("accepted")]
    assert [e.data["message"]["score"] for e in accepted] == [610]
    assert underwriting.facts["credit_score"] == 610
    (decision,) = [
        e.data["decision"]
        for e in events_of(events, AuditKind.POLICY_DECISION)
        if "decision" in e.data
    ]
    assert decision["route"] == "underwriting"
    assert "bureau score 610 is below 700" in " ".join(decision["reasons"])
    assert await sandbox.ledger(application_id) == []
    await handle.terminate("test done")


async def test_reply_and_alert_count_only_as_their_sources_keep_them(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: LendingSandbox,
    sandbox_url: str,
    model: ScriptedModel,
) -> None:
    """A reply counts as the lending system received it, a fraud alert as fraud monitoring
    raised it (``casework deliver`` puts each there first); one sent straight to the case is
    recorded and ignored. A confirmed alert during underwriting withdraws the task (Why 7)."""
    application_id = new_application_id("REPLY")
    await sandbox.seed(
        unlisted(loan_application(application_id, documents=[freelance_statement("see invoices")]))
    )
    insufficient = json.dumps(
        {
            "assessment": "insufficient",
            "verified_monthly_income": None,
            "confidence": 0.4,
            "findings": ["DOC-FREELANCE: no figure"],
            "missing": ["bank statements"],
            "explanation": "Scripted for an integration test.",
        }
    )
    model.answer(application_id, ScriptedReply(content=insufficient))
    handle: LoanHandle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await sandbox.answer(request_id)
    await deliver(temporal.client, await bureau_report(sandbox.http, request_id))

    async def asks_applicant() -> bool | None:
        state = await handle.query("state", result_type=dict)
        return True if "a reply from the applicant" in (state.get("waiting_on") or "") else None

    await eventually(asks_applicant, what="the case to ask the applicant", timeout=30)
    # Straight to the case: nothing in the lending system backs it.
    unbacked = {"application_id": application_id, "text": "trust me, 9,000 a month"}
    await temporal_signal(temporal, sandbox_url, handle.id, "customer_reply", json.dumps(unbacked))
    assert (await ignored(handle, 1))[0].startswith("it names no message_id")
    # The documented way: stored in the lending system, then delivered; still insufficient, so
    # the case goes to an underwriter.
    await run_command(
        [
            str(BIN / "casework"),
            "deliver",
            "customer-reply",
            application_id,
            "--text",
            "Bank statements to follow",
        ],
        operator_env(temporal, sandbox_url),
    )
    task = await eventually(
        lambda: handle.query("open_task", result_type=dict | None),
        what="an underwriting task",
        timeout=30,
    )
    (stored,) = (await sandbox.http.get(f"/lending/applications/{application_id}/messages")).json()
    # A made-up alert is ignored; the one fraud monitoring raised ends the case.
    await temporal_signal(
        temporal,
        sandbox_url,
        handle.id,
        "fraud_alert",
        json.dumps({"application_id": application_id, "alert_id": "FA-MADE-UP", "reason": "x"}),
    )
    assert "fraud monitoring does not confirm alert FA-MADE-UP" in (await ignored(handle, 2))[1]
    assert (await handle.query("open_task", result_type=dict | None)) is not None
    await run_command(
        [
            str(BIN / "casework"),
            "deliver",
            "fraud-alert",
            application_id,
            "--reason",
            "payout account linked to a mule network",
        ],
        operator_env(temporal, sandbox_url),
    )
    result = await handle.result()
    events = await audit(handle)

    accepted = [
        e.summary for e in events_of(events, AuditKind.MESSAGE_RECEIVED) if e.data.get("accepted")
    ]
    assert any(
        f"(message {stored['message_id']}, read back from the lending system)" in summary
        for summary in accepted
    )
    assert any("(read back from fraud monitoring)" in summary for summary in accepted)
    assert result.outcome is Outcome.FRAUD_ALERT
    assert any(e.summary.startswith(f"withdrew task {task['task_id']}") for e in events)
    assert (await sandbox.application(application_id))["status"] == "declined"
    assert await sandbox.ledger(application_id) == []
