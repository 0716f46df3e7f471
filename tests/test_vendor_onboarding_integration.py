"""Vendor onboarding with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP, the document checker's
``llm.propose`` through litellm), the FastAPI+SQLite sandbox and a scripted OpenAI-compatible
model, all on loopback. Each test checks what the case did to the systems of record.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.case import TOOL_RETRY, CaseStatus
from casework.testing.cases import audit, events_of
from casework.testing.scripted_llm import SCRIPTED_MODEL, case_data, scripted_llm_server
from casework.testing.signing import decide
from casework.testing.temporal import scripted_worker
from tests.vendor_onboarding_support import (
    CONTACT,
    VENDOR_NAME,
    CaseHandle,
    ScriptedChecker,
    VendorSystems,
    audited,
    bank_confirmation_text,
    cancel,
    extraction_reply,
    model_calls,
    new_application,
    open_reviews,
    reached,
    run_command,
)
from workflows.vendor_onboarding import (
    Outcome,
    VendorOnboardingInput,
    VendorOnboardingWorkflow,
    VendorStatus,
)

# -- the stack, once per module -----------------------------------------------------------------


@pytest.fixture(scope="module")
def checker() -> Iterator[ScriptedChecker]:
    with scripted_llm_server() as server:
        yield ScriptedChecker(server)


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, checker: ScriptedChecker
) -> AsyncIterator[str]:
    async with scripted_worker(
        temporal.client, sandbox_url, checker.server, "vendor-integration"
    ) as queue:
        yield queue


@pytest.fixture
async def systems(sandbox_url: str) -> AsyncIterator[VendorSystems]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        client = VendorSystems(http)
        yield client
        # A test that fails before its fault is used up must not fault the next test's case.
        await client.clear_faults()


async def start_case(
    temporal: WorkflowEnvironment, task_queue: str, application_id: str
) -> CaseHandle:
    return await temporal.client.start_workflow(
        VendorOnboardingWorkflow.run,
        VendorOnboardingInput(application_id=application_id, submitted_by="alice"),
        id=VendorOnboardingWorkflow.case_id(application_id),
        task_queue=task_queue,
    )


# -- the tests ----------------------------------------------------------------------------------


async def test_vendor_is_onboarded_once_after_one_model_call_per_document_and_both_approvals(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: VendorSystems,
    checker: ScriptedChecker,
) -> None:
    vendor_application = new_application("A")
    application_id = vendor_application.application_id
    await systems.seed(vendor_application)
    checker.answer_valid(vendor_application)
    # The ERP creates the vendor, then the response is lost: the retry must not create another.
    await systems.inject_fault(
        method="POST", path="/erp/vendors", count=1, status=503, when="after"
    )

    handle = await start_case(temporal, task_queue, application_id)
    reviews = await open_reviews(handle, 2)
    await decide(handle, approver="mia", action="approve", task_id=reviews["legal_counsel"].task_id)
    await decide(handle, approver="carol", action="approve")
    result = await handle.result()

    assert (result.status, result.outcome) == (VendorStatus.ONBOARDED, Outcome.ONBOARDED)
    (vendor,) = await systems.erp_vendors(application_id)
    assert (vendor["vendor_id"], vendor["status"]) == (result.erp_vendor_id, "active")
    assert vendor["approved_by"] == ["mia", "carol"]
    portal = await systems.application(application_id)
    assert (portal["status"], portal["erp_vendor_id"]) == ("onboarded", result.erp_vendor_id)
    # Each document went to the model once, through litellm's real HTTP path, on its own, and
    # the model saw the document, never the application it is compared with.
    for document in vendor_application.documents:
        (request,) = checker.requests_for(document.document_id)
        assert request["model"] == "scripted-model"
        sent = case_data(request)
        assert sent is not None and list(sent) == ["document"]
        assert set(sent["document"]) == {"document_id", "content"}
        title, company = document.content.splitlines()[:2]
        assert sent["document"]["content"].startswith(f"{title}\n{company}\n")
    scheduled, ended = await model_calls(handle)
    assert len(scheduled) == 3 and max(scheduled) < min(ended)
    proposals = events_of(await audit(handle), AuditKind.AGENT_PROPOSAL)
    assert {event.data["usage"]["model"] for event in proposals} == {SCRIPTED_MODEL}
    assert {event.data["usage"]["prompt_tokens"] for event in proposals} == {210}
    # The history proves the retry: the creation completed on attempt 2+, after the lost
    # response, and the idempotency key made that retry a replay.
    history = await handle.fetch_history()
    (create,) = [
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == "erp.create_vendor"
    ]
    (started,) = [
        event.activity_task_started_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id == create
    ]
    assert started.attempt >= 2 and "503" in started.last_failure.message


async def test_a_vendor_created_with_every_answer_lost_is_found_in_the_erp_and_onboarded(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: VendorSystems,
    checker: ScriptedChecker,
) -> None:
    vendor_application = new_application("LOST")
    application_id = vendor_application.application_id
    await systems.seed(vendor_application)
    checker.answer_valid(vendor_application)
    # The ERP creates the vendor on the first attempt and every answer is lost: the creation
    # fails for good, and only the ERP can say the vendor exists.
    await systems.inject_fault(
        method="POST",
        path="/erp/vendors",
        count=TOOL_RETRY.maximum_attempts,
        status=503,
        when="after",
    )

    handle = await start_case(temporal, task_queue, application_id)
    reviews = await open_reviews(handle, 2)
    await decide(handle, approver="mia", action="approve", task_id=reviews["legal_counsel"].task_id)
    await decide(handle, approver="carol", action="approve")
    result = await handle.result()
    events = await audit(handle)

    assert (result.status, result.outcome) == (VendorStatus.ONBOARDED, Outcome.ONBOARDED)
    (vendor,) = await systems.erp_vendors(application_id)
    assert (vendor["vendor_id"], vendor["status"]) == (result.erp_vendor_id, "active")
    portal = await systems.application(application_id)
    assert (portal["status"], portal["erp_vendor_id"]) == ("onboarded", result.erp_vendor_id)
    (failed,) = [
        e
        for e in events_of(events, AuditKind.TOOL_FAILED)
        if e.data["activity"] == "erp.create_vendor"
    ]
    assert "503" in failed.summary
    (lookup,) = events_of(events, AuditKind.WRITE_LOOKED_UP)
    assert lookup.data == {
        "activity": "erp.find_created_vendor",
        "idempotency_key": f"{handle.id}:erp-vendor",
        "found": True,
    }


async def test_legal_approving_and_finance_rejecting_creates_no_erp_vendor(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: VendorSystems,
    checker: ScriptedChecker,
) -> None:
    vendor_application = new_application("B")
    application_id = vendor_application.application_id
    await systems.seed(vendor_application)
    checker.answer_valid(vendor_application)

    handle = await start_case(temporal, task_queue, application_id)
    await open_reviews(handle, 2)
    await decide(handle, approver="mia", action="approve")
    await decide(handle, approver="carol", action="reject", comment="payment terms not agreed")
    result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.REJECTED, Outcome.REJECTED)
    assert [(r.review, r.status.value) for r in result.reviews] == [
        ("legal", "approved"),
        ("finance", "rejected"),
    ]
    assert await systems.erp_vendors(application_id) == []
    portal = await systems.application(application_id)
    assert (portal["status"], portal["erp_vendor_id"]) == ("rejected", None)
    told = await systems.notifications(to=CONTACT, case_id=handle.id)
    assert [n.subject for n in told] == [
        f"Your vendor application {application_id} was not approved"
    ]


async def test_a_wrong_document_waits_for_a_resubmission_sent_from_the_command_line(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: VendorSystems,
    checker: ScriptedChecker,
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_url: str,
) -> None:
    wrong = bank_confirmation_text(name="Südwind Handels AG")
    vendor_application = new_application("C", bank_confirmation=wrong)
    application_id = vendor_application.application_id
    await systems.seed(vendor_application)
    checker.answer_valid(vendor_application)
    checker.answer(
        f"{application_id}-BANK",
        extraction_reply("bank_confirmation", company_name="Südwind Handels AG", iban="DE89"),
    )
    checker.answer(
        f"{application_id}-BANK-2",
        extraction_reply(
            "bank_confirmation", company_name=VENDOR_NAME, iban="DE89370400440532013000"
        ),
    )

    handle = await start_case(temporal, task_queue, application_id)
    waiting = await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    assert waiting.waiting_on is not None and "casework resubmit" in waiting.waiting_on
    # The plain Temporal CLI signal: malformed, so recorded and ignored with the reason.
    home = tmp_path_factory.mktemp("operator")
    signal = await run_command(
        temporal,
        home,
        "temporal",
        "workflow",
        "signal",
        "--workflow-id",
        handle.id,
        "--name",
        "resubmit",
        "--input",
        json.dumps({"application_id": application_id, "kind": "bank_confirmation"}),
    )
    assert signal.returncode == 0, signal.stderr
    (ignored,) = await audited(handle, AuditKind.DECISION_REFUSED)
    # casework resubmit: sends the signal and reports what the case made of it.
    letter = tmp_path_factory.mktemp("vendor") / "bank.txt"
    letter.write_text(bank_confirmation_text())
    sent = await run_command(
        temporal,
        home,
        "casework",
        "resubmit",
        handle.id,
        "--kind",
        "bank_confirmation",
        "--file",
        str(letter),
        "--document-id",
        f"{application_id}-BANK-2",
        "--as",
        CONTACT,
        sandbox_url=sandbox_url,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    again = await run_command(
        temporal,
        home,
        "casework",
        "resubmit",
        handle.id,
        "--kind",
        "bank_confirmation",
        "--text",
        "BANK CONFIRMATION",
        "--document-id",
        f"{application_id}-BANK-2",
        sandbox_url=sandbox_url,
    )
    await open_reviews(handle, 2)
    await decide(handle, approver="mia", action="approve")
    await decide(handle, approver="carol", action="approve")
    result = await handle.result()

    assert "invalid DocumentResubmission: document_id: Field required" in ignored.summary
    assert f"took document {application_id}-BANK-2" in sent.stdout
    assert again.returncode == 1
    # Another document under the same ID: the portal keeps the first, so nothing is sent.
    assert f"document {application_id}-BANK-2 already exists" in again.stderr
    # The portal holds what the case decided on, as the vendor uploaded it.
    portal = await systems.application(application_id)
    (bank,) = [d for d in portal["documents"] if d["kind"] == "bank_confirmation"]
    assert (bank["document_id"], bank["content"]) == (
        f"{application_id}-BANK-2",
        bank_confirmation_text(),
    )
    assert (result.status, result.resubmissions) == (VendorStatus.ONBOARDED, 1)
    (vendor,) = await systems.erp_vendors(application_id)
    assert vendor["documents"][-1] == f"{application_id}-BANK-2"
    (request,) = checker.requests_for(f"{application_id}-BANK-2")
    assert "Account holder: Nordwind Logistik GmbH" in request["messages"][1]["content"]
    subjects = [n.subject for n in await systems.notifications(to=CONTACT, case_id=handle.id)]
    assert subjects[:2] == [
        f"Documents needed for your vendor application {application_id}",
        f"Document {application_id}-BANK-2 accepted",
    ]


async def test_a_checker_answering_with_the_applications_iban_confirms_no_other_account(
    temporal: WorkflowEnvironment,
    task_queue: str,
    systems: VendorSystems,
    checker: ScriptedChecker,
) -> None:
    """Why 2: the bank's letter states one account, the application another, and the model
    answers with the application's. The letter's text decides, not the model: the letter is
    not accepted, the vendor is asked for one stating its account, and the ERP has no vendor."""
    letter = bank_confirmation_text(iban="DE89 3704 0044 0532 0130 00")
    vendor_application = new_application("LIE", bank_confirmation=letter).model_copy(
        update={"bank_account": "DE02120300000000202051"}
    )
    application_id = vendor_application.application_id
    await systems.seed(vendor_application)
    checker.answer_valid(vendor_application)

    handle = await start_case(temporal, task_queue, application_id)
    waiting = await reached(handle, CaseStatus.AWAITING_EXTERNAL)
    events = await audit(handle)
    await cancel(handle)

    assert waiting.facts["documents"] == (
        "company_registration valid; tax_certificate valid; bank_confirmation invalid"
    )
    (lie,) = [
        check
        for event in events_of(events, AuditKind.PROPOSAL_CHECKED)
        for check in event.data["checks"]
        if check["field"] == "iban" and check["basis"] == "document"
    ]
    assert (lie["value"], lie["verdict"]) == ("DE02120300000000202051", "unverified")
    (request,) = await systems.notifications(to=CONTACT, case_id=handle.id)
    assert (
        f"bank confirmation {application_id}-BANK invalid: it does not state the application's "
        "IBAN 'DE02120300000000202051'" in request.body
    )
    assert await systems.erp_vendors(application_id) == []
