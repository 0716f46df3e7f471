"""``casework signal`` and ``casework acknowledge``: any process's messages and steps, one path.

Neither command knows a process: each looks the case's workflow up in the catalogue and sends
what its handlers declare. A Temporal CLI dev server, the real worker (real activities over
HTTP, agents through litellm to a scripted OpenAI-compatible model) and the sandbox run on
loopback; the commands run as subprocesses, as an operator runs them, and each test checks what
the case recorded and did to the systems of record.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.vendors import DocumentResubmission
from casework.audit import AuditEvent, AuditKind
from casework.case import CaseStatus
from casework.codec import ensure_key_ring
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedReply, scripted_llm_server
from casework.testing.stack import free_ports
from casework.testing.temporal import BIN, eventually, scripted_worker
from tests.loan_application_support import (
    LendingSandbox,
    loan_application,
    new_application_id,
    reaches_status,
    start_loan,
)
from tests.triage_support import (
    Itsm,
    ScriptedTriageModel,
    calls,
    final,
    itsm_client,
    new_ticket_id,
    tool_call,
)
from tests.vendor_onboarding_support import (
    CONTACT,
    ScriptedChecker,
    VendorSystems,
    audited,
    bank_confirmation_text,
    extraction_reply,
    new_application,
    open_reviews,
    reached,
)
from workflows.loan_application import LoanStatus
from workflows.ticket_triage import TicketTriageInput, TicketTriageWorkflow
from workflows.vendor_onboarding import (
    VendorOnboardingInput,
    VendorOnboardingWorkflow,
    VendorStatus,
)

NO_CODEC_SERVER = "http://127.0.0.1:1"
"""Nothing listens on port 1: a codec server a developer runs must not count as the stack's."""

# -- the stack, once per module -----------------------------------------------------------------


@dataclass
class Models:
    """One scripted model server behind the document checker and the triage agent: each request
    is answered by the script of the ticket or document its case data names."""

    server: ScriptedLlmServer
    checker: ScriptedChecker
    triage: ScriptedTriageModel

    def answer(self, body: dict[str, Any]) -> ScriptedReply:
        return self.triage._answer(body) if self.triage.key_of(body) else self.checker._answer(body)


@pytest.fixture(scope="module")
def models() -> Iterator[Models]:
    with scripted_llm_server() as server:
        models = Models(server, ScriptedChecker(server), ScriptedTriageModel(server))
        server.responder = models.answer
        yield models


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, models: Models
) -> AsyncIterator[str]:
    async with scripted_worker(temporal.client, sandbox_url, models.server, "cli-signals") as queue:
        yield queue


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture
def operator(temporal: WorkflowEnvironment, sandbox_url: str, tmp_path: Path) -> dict[str, str]:
    """An operator's shell pointed at the test's dev server, with a home of its own: without a
    key ring, as the test's worker has none, and nothing a developer's stack set."""
    keys = ("CASEWORK_SIGNING_KEYS_DIR", "CASEWORK_DECISION_KEYS_FILE")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEMPORAL_", "CASEWORK_")) or name in keys
    }
    return env | {
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal.client.namespace,
        "CASEWORK_HOME": str(tmp_path / "home"),
        "CASEWORK_SANDBOX_URL": sandbox_url,
        "CASEWORK_CODEC_URL": NO_CODEC_SERVER,
    }


async def casework(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # In a thread: the worker serving the case runs on this event loop and must keep running.
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "casework"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


async def signals_received(handle: WorkflowHandle) -> list[str]:
    history = await handle.fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def bureau_request_id(sandbox: LendingSandbox, application_id: str) -> str:
    async def probe() -> str | None:
        request = await sandbox.bureau_request(application_id)
        return None if request is None else str(request["request_id"])

    return await eventually(probe, what=f"a credit report request for {application_id}")


# -- the tests ----------------------------------------------------------------------------------


async def test_a_credit_report_sent_with_casework_signal_is_read_back_and_disburses(
    temporal: WorkflowEnvironment,
    task_queue: str,
    http: httpx.AsyncClient,
    operator: dict[str, str],
    tmp_path: Path,
) -> None:
    sandbox = LendingSandbox(http)
    application_id = new_application_id("SIGNAL")
    await sandbox.seed(loan_application(application_id))
    handle = await start_loan(temporal, task_queue, application_id)
    request_id = await bureau_request_id(sandbox, application_id)
    await sandbox.answer(request_id)
    # The bureau's report as the bureau keeps it: what its own systems would send the lender.
    report = (await http.get(f"/credit-bureau/requests/{request_id}")).json()["report"]
    report_file = tmp_path / "report.json"
    report_file.write_text(json.dumps(report))

    malformed = await casework(
        operator, "signal", handle.id, "credit_report", "--input", '{"report_id": "CBREP-X"}'
    )
    sent = await casework(
        operator, "signal", handle.id, "credit_report", "--input", f"@{report_file}"
    )
    disbursed = await reaches_status(handle, LoanStatus.DISBURSED, timeout=60)
    events = await handle.query("audit", result_type=list[AuditEvent])
    await handle.cancel()

    # A payload the case cannot use reaches it, is recorded with the reason, and is reported.
    assert malformed.returncode == 1, malformed.stdout + malformed.stderr
    assert f"sent credit_report to {handle.id}" in malformed.stdout
    assert f"casework: {handle.id} ignored the credit_report signal: ignored credit report: " in (
        malformed.stderr
    )
    assert "malformed" in malformed.stderr and "application_id" in malformed.stderr
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"sent credit_report to {handle.id}" in sent.stdout
    # The command waited past "received, it counts once read back" for the case's verdict.
    assert f"read back by request {request_id}" in sent.stdout
    (accepted,) = [
        event
        for event in events
        if event.kind is AuditKind.MESSAGE_RECEIVED and event.data.get("accepted") is True
    ]
    assert f"read back by request {request_id}" in accepted.summary
    assert f"recorded: message_received: {accepted.summary}" in sent.stdout
    assert await signals_received(handle) == ["credit_report", "credit_report"]
    (payment,) = await sandbox.ledger(application_id)
    assert (payment.status, payment.amount) == ("completed", Decimal("20000.00"))
    assert disbursed.facts["payment_id"] == payment.payment_id


async def test_a_signal_or_step_the_process_does_not_define_is_refused_before_sending(
    temporal: WorkflowEnvironment,
    task_queue: str,
    http: httpx.AsyncClient,
    operator: dict[str, str],
) -> None:
    sandbox = LendingSandbox(http)
    application_id = new_application_id("NOSIGNAL")
    await sandbox.seed(loan_application(application_id))
    handle = await start_loan(temporal, task_queue, application_id)
    await bureau_request_id(sandbox, application_id)  # it waits for the bureau now

    unknown = await casework(operator, "signal", handle.id, "resubmit", "--input", "{}")
    no_step = await casework(operator, "acknowledge", handle.id, "--as", "ivy")
    missing = await casework(
        operator, "signal", f"{handle.id}-NOPE", "credit_report", "--input", "{}"
    )
    sent_before_closing = await signals_received(handle)
    await handle.cancel()
    await eventually(lambda: _closed(handle), what=f"{handle.id} to close after its cancellation")
    closed = await casework(operator, "signal", handle.id, "fraud_alert", "--input", "{}")

    assert unknown.returncode == 1
    assert (
        f"case {handle.id} (LoanApplication) has no signal 'resubmit'; it takes: answer, "
        "credit_report, customer_reply, decide, delegate, escalate, fraud_alert, reassign"
        in unknown.stderr
    )
    assert no_step.returncode == 1
    assert (
        f"case {handle.id} (LoanApplication) has no acknowledge step: nobody was paged by it. "
        "Its process takes: answer, decide, delegate, escalate, reassign" in no_step.stderr
    )
    assert missing.returncode == 1 and f"no case '{handle.id}-NOPE'" in missing.stderr
    assert sent_before_closing == []
    assert closed.returncode == 1
    assert f"case {handle.id} is no longer running; it takes no signals" in closed.stderr


async def _closed(handle: WorkflowHandle) -> bool | None:
    return (await handle.describe()).close_time is not None or None


async def test_a_vendor_document_and_signed_decisions_sent_with_casework_signal(
    temporal: WorkflowEnvironment,
    task_queue: str,
    http: httpx.AsyncClient,
    models: Models,
    operator: dict[str, str],
) -> None:
    systems = VendorSystems(http)
    vendor_application = new_application(
        "SIGNAL", bank_confirmation=bank_confirmation_text(name="Südwind Handels AG")
    )
    application_id = vendor_application.application_id
    await systems.seed(vendor_application)
    models.checker.answer_valid(vendor_application)
    models.checker.answer(
        f"{application_id}-BANK",
        extraction_reply("bank_confirmation", company_name="Südwind Handels AG", iban="DE89"),
    )
    models.checker.answer(
        f"{application_id}-BANK-2",
        extraction_reply(
            "bank_confirmation",
            company_name=vendor_application.vendor_name,
            iban=vendor_application.bank_account,
        ),
    )
    handle = await temporal.client.start_workflow(
        VendorOnboardingWorkflow.run,
        VendorOnboardingInput(application_id=application_id, submitted_by="alice"),
        id=VendorOnboardingWorkflow.case_id(application_id),
        task_queue=task_queue,
    )
    await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    # The vendor uploads the right letter to the portal, and the portal tells the case.
    document = DocumentResubmission(
        application_id=application_id,
        document_id=f"{application_id}-BANK-2",
        kind="bank_confirmation",
        filename="bank.pdf",
        content=bank_confirmation_text(),
        submitted_by=CONTACT,
    )
    uploaded = await http.post(
        f"/vendors/applications/{application_id}/documents",
        json=document.model_dump(include={"document_id", "kind", "filename", "content"}),
    )
    assert uploaded.status_code == 201, uploaded.text

    resubmitted = await casework(
        operator, "signal", handle.id, "resubmit", "--input", document.model_dump_json()
    )
    reviews = await open_reviews(handle, 2)
    decisions = []
    for approver, task in (("mia", reviews["legal_counsel"]), ("carol", None)):
        task_flag = ["--task", task.task_id] if task else []
        signed = await casework(
            operator, "sign", handle.id, "--as", approver, "--action", "approve", *task_flag
        )
        assert signed.returncode == 0, signed.stderr
        decisions.append(
            await casework(operator, "signal", handle.id, "decide", "--input", signed.stdout)
        )
    result = await handle.result()

    assert resubmitted.returncode == 0, resubmitted.stdout + resubmitted.stderr
    (taken,) = [
        event
        for event in await audited(handle, AuditKind.MESSAGE_RECEIVED)
        if not event.data.get("confirming")
    ]
    assert taken.data["document_id"] == f"{application_id}-BANK-2"
    assert f"recorded: message_received: {taken.summary}" in resubmitted.stdout
    for decided in decisions:
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert "recorded: human_decision: " in decided.stdout
    assert (result.status, result.resubmissions) == (VendorStatus.ONBOARDED, 1)
    (vendor,) = await systems.erp_vendors(application_id)
    assert vendor["documents"][-1] == f"{application_id}-BANK-2"
    assert vendor["approved_by"] == ["mia", "carol"]


async def test_casework_acknowledge_answers_a_page_through_the_update_the_process_declares(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox_url: str,
    models: Models,
    operator: dict[str, str],
) -> None:
    ticket_id = new_ticket_id("cli-ack")
    ci_id = f"CI-{ticket_id}"
    async with itsm_client(sandbox_url) as itsm:
        await _outage(itsm, ticket_id, ci_id)
        models.triage.script(
            ticket_id,
            calls(tool_call("get_configuration_item", {"ci_id": ci_id})),
            final(
                category="database",
                severity=1,
                action="escalate",
                team="database-ops",
                affected_ci=ci_id,
                confidence=0.95,
            ),
        )
        handle = await temporal.client.start_workflow(
            TicketTriageWorkflow.run,
            TicketTriageInput(ticket_id=ticket_id, submitted_by="erin"),
            id=TicketTriageWorkflow.case_id(ticket_id),
            task_queue=task_queue,
        )
        await eventually(
            lambda: _paged(handle), what=f"{handle.id} to page the item's on-call", timeout=60
        )

        not_paged = await casework(operator, "acknowledge", handle.id, "--as", "henry")
        acknowledged = await casework(operator, "acknowledge", handle.id, "--as", "ivy")
        result = await handle.result()
        ticket = await itsm.ticket(ticket_id)

    assert not_paged.returncode == 1
    assert "henry was not paged; paged so far: ivy" in not_paged.stderr
    assert acknowledged.returncode == 0, acknowledged.stdout + acknowledged.stderr
    assert acknowledged.stdout.strip() == f"ivy acknowledged the page for {handle.id}"
    assert result.page is not None
    assert (result.page.acknowledged_by, result.page.paged) == ("ivy", ["ivy"])
    assert (ticket["status"], ticket["team"], ticket["severity"]) == (
        "assigned",
        "major-incidents",
        1,
    )


async def _outage(itsm: Itsm, ticket_id: str, ci_id: str) -> None:
    await itsm.create_ci(
        ci_id,
        name="payments database",
        kind="database",
        owner_team="database-ops",
        oncall="ivy",
        criticality="critical",
    )
    await itsm.create_ticket(
        ticket_id,
        title="Payments database down",
        description="The payments database is not responding; all checkouts fail.",
        ci_id=ci_id,
        severity=1,
    )


async def _paged(handle: WorkflowHandle) -> bool | None:
    events = await handle.query("audit", result_type=list[AuditEvent])
    return any(event.kind is AuditKind.PAGE_SENT for event in events) or None


@pytest.mark.parametrize(
    ("serves", "refused"),
    [("unnamed", True), ("this server", True), ("another server", False)],
)
async def test_a_signal_is_not_sent_unencrypted_to_a_stack_that_encrypts(
    temporal: WorkflowEnvironment,
    operator: dict[str, str],
    tmp_path: Path,
    serves: str,
    refused: bool,
) -> None:
    # The stack's codec server, serving the key ring of the stack's home; the operator's home
    # has none. A stack that says it runs another Temporal server (a user's, beside a test
    # session's) has no say in what is sent to this one.
    stack_home = tmp_path / "stack-home"
    ensure_key_ring(stack_home)
    (port,) = free_ports(1)
    addresses = {
        "unnamed": [],
        "this server": ["--temporal-address", operator["TEMPORAL_ADDRESS"]],
        "another server": ["--temporal-address", "127.0.0.1:1"],
    }
    codec = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casework.codec_server",
            "--port",
            str(port),
            "--state-dir",
            str(stack_home),
            *addresses[serves],
        ],
        env={**os.environ, "CASEWORK_HOME": str(stack_home)},
    )
    codec_url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _answers(codec_url), what="the codec server to answer")
        sent = await casework(
            operator | {"CASEWORK_CODEC_URL": codec_url},
            "signal",
            "loan-application-APP-ANY",
            "credit_report",
            "--input",
            "{}",
        )
    finally:
        codec.terminate()
        codec.wait(timeout=10)

    assert sent.returncode == 1
    if refused:
        assert "refusing to send unencrypted" in sent.stderr
        assert f"its home: {stack_home.resolve()}" in sent.stderr
    else:
        assert "refusing to send unencrypted" not in sent.stderr
        assert "loan-application-APP-ANY" in sent.stderr, sent.stderr


async def _answers(url: str) -> bool | None:
    try:
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            return (await client.get(f"{url}/health")).status_code == 200 or None
    except httpx.TransportError:
        return None


def test_a_payload_that_is_not_a_json_object_is_refused_before_anything_is_contacted(
    tmp_path: Path,
) -> None:
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    # Nothing listens on port 1: the refusals cannot have come from a case.
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    not_json = subprocess.run(
        [str(BIN / "casework"), "signal", "CASE", "resubmit", "--input", "{document: 1}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    not_object = subprocess.run(
        [str(BIN / "casework"), "signal", "CASE", "resubmit", "--input", f"@{listed}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )

    assert not_json.returncode == 1 and "--input is not valid JSON" in not_json.stderr
    assert not_object.returncode == 1
    assert f"{listed} must be a JSON object, got list" in not_object.stderr
