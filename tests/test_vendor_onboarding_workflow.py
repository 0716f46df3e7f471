"""The vendor-onboarding workflow on the time-skipping test server, with systems faked by name."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.case import CaseStatus
from casework.testing.cases import audit, events_of, state
from casework.testing.signing import decide
from policies.vendor_onboarding import DocumentVerdict, ReviewStatus
from tests.vendor_onboarding_support import (
    CONTACT,
    FOREIGN_IBAN,
    FakeVendorSystems,
    application,
    audited,
    bank_confirmation_text,
    cancel,
    case_worker,
    documents_for,
    model_calls,
    open_reviews,
    reached,
    resubmission,
    start_case,
    tax_certificate_text,
)
from workflows.vendor_onboarding import Outcome, VendorStatus

EXPIRED_TAX = tax_certificate_text(valid_until="2020-12-31")


async def test_documents_in_order_and_both_reviews_approving_onboard_the_vendor_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-A1"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-A1")
        reviews = await open_reviews(handle, 2)
        assert set(reviews) == {"legal_counsel", "finance_manager"}
        await decide(handle, approver="mia", action="approve", comment="contract terms fine")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()
        scheduled, ended = await model_calls(handle)
        events = await audit(handle)

    assert (result.status, result.outcome) == (VendorStatus.ONBOARDED, Outcome.ONBOARDED)
    assert [check.verdict for check in result.documents] == [DocumentVerdict.VALID] * 3
    assert [(r.review, r.status, r.decided_by) for r in result.reviews] == [
        ("legal", ReviewStatus.APPROVED, "mia"),
        ("finance", ReviewStatus.APPROVED, "carol"),
    ]
    # The vendor is created once, at the end, with the case's idempotency key.
    ((key, vendor),) = systems.vendors.items()
    assert key == f"{handle.id}:erp-vendor"
    assert result.erp_vendor_id == vendor.vendor_id
    assert vendor.approved_by == ["mia", "carol"]
    assert vendor.documents == ["APP-A1-REG", "APP-A1-TAX", "APP-A1-BANK"]
    assert systems.statuses == ["onboarded"]
    assert systems.status_changes[0].erp_vendor_id == vendor.vendor_id
    assert f"Welcome: {result.vendor_name} is an approved vendor" in systems.sent_to(CONTACT)
    # One checker activity per document, all scheduled before any of them ended (in parallel),
    # each seeing only its own document and nothing of what the application claims.
    assert len(scheduled) == 3 and len(ended) == 3 and max(scheduled) < min(ended)
    assert sorted(r.context["document"]["document_id"] for r in systems.agent_requests) == [
        "APP-A1-BANK",
        "APP-A1-REG",
        "APP-A1-TAX",
    ]
    for request in systems.agent_requests:
        assert set(request.context) == {"document"}
        assert set(request.context["document"]) == {"document_id", "content"}
    assert len(events_of(events, AuditKind.AGENT_PROPOSAL)) == 3
    assert events[-1].kind is AuditKind.CASE_COMPLETED


async def test_legal_approving_and_finance_rejecting_ends_rejected_with_no_erp_vendor(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-B1"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-B1")
        reviews = await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        # Legal's approval settles nothing: the case still waits for finance.
        assert [t.task_id for t in (await state(handle)).open_tasks] == [
            reviews["finance_manager"].task_id
        ]
        await decide(handle, approver="carol", action="reject", comment="bank details unverified")
        result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.REJECTED, Outcome.REJECTED)
    assert [(r.review, r.status) for r in result.reviews] == [
        ("legal", ReviewStatus.APPROVED),
        ("finance", ReviewStatus.REJECTED),
    ]
    assert "finance review rejected by carol: bank details unverified" in result.message
    assert result.erp_vendor_id is None
    assert systems.create_calls == 0 and systems.vendors == {}
    assert systems.statuses == ["rejected"]
    assert any("was not approved" in subject for subject in systems.sent_to(CONTACT))


async def test_legal_rejecting_first_withdraws_the_finance_review_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    gate = asyncio.Event()
    systems = FakeVendorSystems(application("APP-C1"), status_gate=gate)
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-C1")
        reviews = await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="reject", comment="sanctions screening open")
        # Held while it closes the application: the finance review is already withdrawn.
        (withdrawal,) = [
            event
            for event in await audited(handle, AuditKind.POLICY_DECISION, 3)
            if event.summary.startswith("withdrew")
        ]
        assert (await state(handle)).open_tasks == []
        with pytest.raises(WorkflowUpdateFailedError) as late:
            await decide(handle, approver="carol", action="approve")
        gate.set()
        result = await handle.result()
        events = await audit(handle)

    finance = reviews["finance_manager"]
    assert f"task {finance.task_id} is no longer open (it is withdrawn)" in str(late.value.cause)
    assert withdrawal.data["task_id"] == finance.task_id
    assert "legal review rejected by mia: sanctions screening open" in withdrawal.summary
    assert [(r.review, r.status) for r in result.reviews] == [
        ("legal", ReviewStatus.REJECTED),
        ("finance", ReviewStatus.WITHDRAWN),
    ]
    assert (result.status, systems.create_calls) == (CaseStatus.REJECTED, 0)
    # The case did not wait for finance: it closed at the moment legal rejected.
    decided = events_of(events, AuditKind.HUMAN_DECISION)[0]
    assert events[-1].at - decided.at < timedelta(minutes=1)
    assert "No longer needed: Finance review of vendor Nordwind Logistik GmbH" in [
        n.subject for n in systems.notifications if n.to == "carol@example.com"
    ]


@pytest.mark.parametrize(
    ("procurement", "status"),
    [("approve", VendorStatus.ONBOARDED), ("reject", CaseStatus.REJECTED)],
)
async def test_a_risk_flag_adds_a_procurement_review_that_must_approve_too(
    time_skipping_env: WorkflowEnvironment, procurement: str, status: CaseStatus
) -> None:
    application_id = f"APP-D-{procurement}"
    documents = documents_for(
        application_id, bank_confirmation=bank_confirmation_text(iban=FOREIGN_IBAN)
    )
    systems = FakeVendorSystems(application(application_id, documents, bank_account=FOREIGN_IBAN))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, application_id)
        reviews = await open_reviews(handle, 3)
        assert set(reviews) == {"legal_counsel", "finance_manager", "procurement_manager"}
        assert (
            "bank account in GB for a vendor registered in DE" in reviews["legal_counsel"].summary
        )
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        await decide(handle, approver="liam", action=procurement, comment="single-source risk")
        result = await handle.result()
        risk = (await handle.describe()).typed_search_attributes

    assert result.status is status
    assert result.risk_flags == ["bank account in GB for a vendor registered in DE"]
    assert [r.review for r in result.reviews] == ["legal", "finance", "procurement"]
    assert {str(pair.value) for pair in risk if pair.key.name == "CaseRisk"} == {"high"}
    assert len(systems.vendors) == (1 if procurement == "approve" else 0)


async def test_an_invalid_document_waits_for_the_resubmission_signal_then_continues(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    documents = documents_for("APP-E1", tax_certificate=EXPIRED_TAX)
    systems = FakeVendorSystems(application("APP-E1", documents))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-E1")
        waiting = await reached(handle, CaseStatus.AWAITING_EXTERNAL)
        assert waiting.waiting_on is not None
        assert "resubmission of tax_certificate" in waiting.waiting_on
        assert f"casework resubmit {handle.id}" in waiting.waiting_on
        assert waiting.facts["documents"] == (
            "company_registration valid; tax_certificate invalid; bank_confirmation valid"
        )
        await handle.signal(
            "resubmit",
            systems.upload(
                resubmission("APP-E1", "APP-E1-TAX-2", "tax_certificate", tax_certificate_text())
            ),
        )
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()
        events = await audit(handle)

    (request,) = [n for n in systems.notifications if n.subject.startswith("Documents needed")]
    assert "tax certificate APP-E1-TAX invalid: it expired on 2020-12-31" in request.body
    received, read_back = events_of(events, AuditKind.MESSAGE_RECEIVED)
    assert received.data["document_id"] == read_back.data["document_id"] == "APP-E1-TAX-2"
    assert received.data["confirming"] is True
    assert read_back.summary.startswith(
        "read tax_certificate APP-E1-TAX-2 back from the vendor portal"
    )
    assert (result.status, result.resubmissions) == (VendorStatus.ONBOARDED, 1)
    assert [(c.kind, c.document_id, c.verdict) for c in result.documents][1] == (
        "tax_certificate",
        "APP-E1-TAX-2",
        DocumentVerdict.VALID,
    )
    # The resubmitted document got a checker activity of its own.
    assert len(systems.agent_requests) == 4
    (vendor,) = systems.vendors.values()
    assert vendor.documents[1] == "APP-E1-TAX-2"
    assert "Document APP-E1-TAX-2 accepted" in systems.sent_to(CONTACT)


async def test_a_missing_document_is_requested_and_a_wrong_one_asked_for_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    documents = documents_for("APP-F1", without=("bank_confirmation",))
    systems = FakeVendorSystems(application("APP-F1", documents))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-F1")
        await reached(handle, CaseStatus.AWAITING_EXTERNAL)
        wrong = bank_confirmation_text(name="Südwind Handels AG")
        await handle.signal(
            "resubmit",
            systems.upload(resubmission("APP-F1", "APP-F1-BANK-1", "bank_confirmation", wrong)),
        )
        await audited(handle, AuditKind.AGENT_PROPOSAL, 3)
        waiting = await reached(handle, CaseStatus.AWAITING_EXTERNAL)
        await handle.signal(
            "resubmit",
            systems.upload(
                resubmission(
                    "APP-F1", "APP-F1-BANK-2", "bank_confirmation", bank_confirmation_text()
                )
            ),
        )
        await open_reviews(handle, 2)
        await cancel(handle)

    assert "resubmission of bank_confirmation" in (waiting.waiting_on or "")
    (requested,) = [n for n in systems.notifications if n.subject.startswith("Documents needed")]
    assert "bank confirmation missing: not submitted" in requested.body
    (not_accepted,) = [n for n in systems.notifications if "not accepted" in n.subject]
    assert "its company name 'Südwind Handels AG' is not the application's" in not_accepted.body
    assert "Document APP-F1-BANK-2 accepted" in systems.sent_to(CONTACT)


async def test_no_resubmission_within_the_policy_window_expires_the_application(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    documents = documents_for("APP-G1", tax_certificate=EXPIRED_TAX)
    systems = FakeVendorSystems(application("APP-G1", documents))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-G1")
        await reached(handle, CaseStatus.AWAITING_EXTERNAL)
        # Awaiting the result lets the test server skip ahead through the 14-day window.
        result = await handle.result()
        events = await audit(handle)

    assert (result.status, result.outcome) == (CaseStatus.REJECTED, Outcome.DOCUMENTS_TIMED_OUT)
    assert "did not put its documents in order within 2w" in result.message
    assert systems.statuses == ["expired"]
    assert systems.create_calls == 0 and result.reviews == []
    (requested,) = [e for e in events if e.summary.startswith("wrote to the vendor: Documents")]
    (timed_out,) = events_of(events, AuditKind.TASK_TIMED_OUT)
    # 14 days after the documents were requested, as the policy says.
    assert abs(timed_out.at - requested.at - timedelta(days=14)) < timedelta(minutes=1)
    assert any(subject.endswith("expired") for subject in systems.sent_to(CONTACT))


async def test_malformed_or_wrong_resubmissions_are_recorded_and_ignored_with_the_reason(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    documents = documents_for("APP-H1", tax_certificate=EXPIRED_TAX)
    systems = FakeVendorSystems(application("APP-H1", documents))
    valid = resubmission("APP-H1", "APP-H1-TAX-2", "tax_certificate", tax_certificate_text())
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-H1")
        await reached(handle, CaseStatus.AWAITING_EXTERNAL)
        malformed = valid.model_dump(exclude={"content"}) | {"pages": 2}
        for payload in (
            malformed,
            "a tax certificate",
            valid.model_copy(update={"application_id": "APP-OTHER"}),
            valid.model_copy(update={"kind": "bank_confirmation"}),
            valid.model_copy(update={"document_id": "APP-H1-REG"}),
        ):
            await handle.signal("resubmit", payload)
        await handle.signal("resubmit")
        await handle.signal("resubmit", args=[valid, valid])
        ignored = await audited(handle, AuditKind.DECISION_REFUSED, 7)
        # Sent, but never uploaded to the portal: it does not count, and may be sent again.
        await handle.signal("resubmit", valid)
        not_uploaded = (await audited(handle, AuditKind.DECISION_REFUSED, 8))[-1]
        still = await state(handle)
        await handle.signal("resubmit", systems.upload(valid))
        await open_reviews(handle, 2)
        await cancel(handle)

    reasons = [event.summary for event in ignored]
    assert reasons[0] == (
        f"ignored resubmission from {CONTACT}: invalid DocumentResubmission: "
        "content: Field required; pages: Extra inputs are not permitted"
    )
    assert reasons[1].startswith("ignored resubmission from the vendor: invalid Document")
    assert "(whole value): Input should be a valid dictionary" in reasons[1]
    assert reasons[2].endswith("the document is for application APP-OTHER, this case is for APP-H1")
    assert reasons[3].endswith(
        "bank_confirmation is not awaited; the case waits for: tax_certificate"
    )
    assert reasons[4].endswith("document APP-H1-REG was already received")
    assert reasons[5:] == [
        "ignored resubmission from the vendor: expected one DocumentResubmission, got 0 payloads",
        "ignored resubmission from the vendor: expected one DocumentResubmission, got 2 payloads",
    ]
    assert ignored[0].data["document_id"] == "APP-H1-TAX-2"
    assert not_uploaded.summary.startswith(
        f"ignored resubmission from {CONTACT}: the vendor portal does not confirm document "
        "APP-H1-TAX-2 (RecordNotFound"
    )
    # Ignored means ignored: nothing was checked, and the case still waits.
    assert still.status == CaseStatus.AWAITING_EXTERNAL
    assert len(systems.agent_requests) == 4


async def test_a_review_nobody_decides_puts_the_application_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-I1"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-I1")
        await open_reviews(handle, 2)
        # Legal's single tier times out after 3 days, before finance's two tiers (2d + 2d) do.
        result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.ON_HOLD, Outcome.REVIEW_TIMED_OUT)
    assert [(r.review, r.status) for r in result.reviews] == [
        ("legal", ReviewStatus.TIMED_OUT),
        ("finance", ReviewStatus.WITHDRAWN),
    ]
    assert systems.statuses == ["on_hold"] and systems.create_calls == 0


async def test_a_review_that_fails_does_not_keep_the_case_waiting_for_the_others(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-O1"), failing_recipients={"carol@example.com"})
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-O1")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        events = await audit(handle)

    (withdrawn,) = [e for e in events if e.summary.startswith("withdrew")]
    assert withdrawn.data["role"] == "legal_counsel"
    assert "the finance review failed (RequestRejected: mailbox carol@example.com" in (
        withdrawn.summary
    )
    # Withdrawn at once, not after legal's three days.
    assert withdrawn.at - events[0].at < timedelta(minutes=1)
    assert not events_of(events, AuditKind.TASK_TIMED_OUT)


async def test_closing_the_application_failing_deactivates_the_new_erp_vendor(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-J1"), failing_statuses={"onboarded"})
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-J1")
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()

    (vendor,) = systems.vendors.values()
    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_COMPENSATED,
        Outcome.FAILED_COMPENSATED,
    )
    assert result.compensated == [f"ERP vendor {vendor.vendor_id} deactivated"]
    assert vendor.status == "inactive"
    assert systems.deactivations[0].idempotency_key == f"{handle.id}:erp-vendor-deactivation"


async def test_an_erp_refusing_the_vendor_puts_the_approved_application_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    refused = ApplicationError(
        "POST /erp/vendors answered 409: tax_id: vendor VEN-000007 already has tax ID DE1",
        type="RequestConflict",
        non_retryable=True,
    )
    systems = FakeVendorSystems(application("APP-N1"), create_error=refused)
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-N1")
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()

    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_NEEDS_ATTENTION,
        Outcome.ERP_REFUSED,
    )
    assert "vendor VEN-000007 already has tax ID" in result.message
    assert "nothing was written" in result.message
    assert systems.statuses == ["on_hold"] and systems.vendors == {}


async def test_an_erp_vendor_created_with_every_answer_lost_is_found_and_onboarded(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # Before the lookup, this case ended "ERP refused" with the vendor it had created active.
    systems = FakeVendorSystems(application("APP-L1"), creation_answers_lost=True)
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-L1")
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()
        events = await audit(handle)

    (vendor,) = systems.vendors.values()
    assert (result.status, result.outcome) == (VendorStatus.ONBOARDED, Outcome.ONBOARDED)
    assert result.erp_vendor_id == vendor.vendor_id and vendor.status == "active"
    assert systems.create_calls == 1
    assert systems.statuses == ["onboarded"]
    assert systems.status_changes[0].erp_vendor_id == vendor.vendor_id
    (lookup,) = events_of(events, AuditKind.WRITE_LOOKED_UP)
    assert lookup.data == {
        "activity": "erp.find_created_vendor",
        "idempotency_key": f"{handle.id}:erp-vendor",
        "found": True,
    }


async def test_an_erp_vendor_found_after_lost_answers_is_deactivated_if_the_case_fails(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(
        application("APP-L2"), creation_answers_lost=True, failing_statuses={"onboarded"}
    )
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-L2")
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()

    (vendor,) = systems.vendors.values()
    assert result.status == CaseStatus.FAILED_COMPENSATED
    assert result.compensated == [f"ERP vendor {vendor.vendor_id} deactivated"]
    assert vendor.status == "inactive"


async def test_an_erp_that_cannot_be_read_after_a_failed_creation_says_where_to_look(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(
        application("APP-L3"), creation_answers_lost=True, erp_unreadable=True
    )
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-L3")
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()

    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_NEEDS_ATTENTION,
        Outcome.ERP_REFUSED,
    )
    assert f"could not be read: check the ERP for {handle.id}:erp-vendor" in result.message
    assert "nothing was written" not in result.message
    assert systems.statuses == ["on_hold"]


async def test_a_cancelled_case_withdraws_its_open_reviews(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-K1"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-K1")
        await open_reviews(handle, 2)
        await cancel(handle)
        final = await state(handle)
        events = await audit(handle)

    assert final.status == CaseStatus.CANCELLED_COMPENSATED
    assert final.open_tasks == []
    withdrawn = [e for e in events if e.summary.startswith("withdrew")]
    assert [e.data["role"] for e in withdrawn] == ["legal_counsel", "finance_manager"]
    assert events[-1].summary == "cancelled; compensated: nothing to undo"
    assert systems.create_calls == 0


async def test_a_document_the_checker_cannot_read_goes_to_the_reviewers_unverified(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(
        application("APP-L1"),
        extractions={
            "APP-L1-BANK": ApplicationError(
                "request rejected by model", type="LlmRequestRejected", non_retryable=True
            )
        },
    )
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-L1")
        reviews = await open_reviews(handle, 2)
        events = await audit(handle)
        await cancel(handle)

    summary = reviews["finance_manager"].summary
    assert "bank confirmation APP-L1-BANK unverified: the document checker could not read it" in (
        summary
    )
    assert "check it yourself" in summary
    (failed,) = events_of(events, AuditKind.AGENT_FAILED)
    assert failed.data["document_id"] == "APP-L1-BANK"
    # The vendor is not asked to resubmit what the model could not read.
    assert not any(n.to == CONTACT for n in systems.notifications)


async def test_a_closed_application_is_refused_at_start(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeVendorSystems(application("APP-M1", status="onboarded"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-M1")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ApplicationAlreadyClosed"
    assert "APP-M1 is already onboarded" in cause.message


# -- the bank account the ERP pays to -------------------------------------------------------------


async def test_an_iban_the_bank_letter_does_not_state_never_reaches_the_erp_even_approved(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Why 2: the checker could not read the bank letter, so the reviewers were asked to look;
    they approve. The letter states another account than the application: nothing is written."""
    letter = bank_confirmation_text(iban="DE02 1203 0000 0000 2020 51")
    systems = FakeVendorSystems(
        application("APP-G1", documents_for("APP-G1", bank_confirmation=letter)),
        extractions={
            "APP-G1-BANK": ApplicationError("model unavailable", non_retryable=True),
        },
    )
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-G1")
        await open_reviews(handle, 2)
        await decide(handle, approver="mia", action="approve")
        await decide(handle, approver="carol", action="approve")
        result = await handle.result()
        events = await audit(handle)

    assert [check.verdict for check in result.documents] == [
        DocumentVerdict.VALID,
        DocumentVerdict.VALID,
        DocumentVerdict.UNVERIFIED,
    ]
    assert (result.status, result.outcome) == (
        CaseStatus.FAILED_NEEDS_ATTENTION,
        Outcome.BANK_ACCOUNT_UNCONFIRMED,
    )
    assert (
        "the bank confirmation APP-G1-BANK does not state the application's IBAN "
        "'DE89370400440532013000'" in result.message
    )
    assert result.erp_vendor_id is None
    assert systems.create_calls == 0 and systems.vendors == {}
    assert systems.statuses == ["on_hold"]
    (refusal,) = [
        e for e in events_of(events, AuditKind.POLICY_DECISION) if "not written" in e.summary
    ]
    assert refusal.data["reasons"] == [
        "the bank confirmation APP-G1-BANK does not state the application's IBAN "
        "'DE89370400440532013000'"
    ]


async def test_an_application_with_an_invalid_iban_is_refused_before_anything_is_read(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Why 2: ``DE00 1234`` in the application and the letter alike is no IBAN at all."""
    letter = bank_confirmation_text(iban="DE00 1234")
    systems = FakeVendorSystems(
        application(
            "APP-G2", documents_for("APP-G2", bank_confirmation=letter), bank_account="DE00 1234"
        )
    )
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-G2")
        result = await handle.result()

    assert (result.status, result.outcome) == (CaseStatus.REJECTED, Outcome.REJECTED)
    assert result.message == (
        "rejected: the application's IBAN 'DE00 1234' is not a valid IBAN: DE IBANs have 22 "
        "characters, this one has 8; no ERP vendor created"
    )
    assert systems.agent_requests == []
    assert systems.create_calls == 0
    assert systems.statuses == ["rejected"]
    assert any("was not approved" in subject for subject in systems.sent_to(CONTACT))


async def test_a_bank_letter_stating_an_invalid_iban_is_asked_for_again(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The checker reads the letter faithfully; the account it states is off by a digit, which
    the ISO 13616 checksum catches: the vendor is asked for a letter with its real account."""
    typo = "DE89370400440532013001"
    letter = bank_confirmation_text(iban=typo)
    systems = FakeVendorSystems(
        application("APP-G3", documents_for("APP-G3", bank_confirmation=letter))
    )
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "APP-G3")
        await reached(handle, CaseStatus.AWAITING_EXTERNAL)
        events = await audit(handle)
        await cancel(handle)

    (bank,) = [
        e.data["check"]
        for e in events_of(events, AuditKind.POLICY_DECISION)
        if e.data.get("document_id") == "APP-G3-BANK"
    ]
    assert bank["verdict"] == DocumentVerdict.INVALID
    assert bank["reasons"] == [
        f"its IBAN {typo!r} is not valid: its check digits do not match (mod-97 checksum fails)",
        f"its IBAN {typo!r} is not the application's 'DE89370400440532013000'",
    ]
    (checked,) = [
        e
        for e in events_of(events, AuditKind.PROPOSAL_CHECKED)
        if any(c["field"] == "iban" for c in e.data["checks"])
    ]
    assert [(c["basis"], c["verdict"]) for c in checked.data["checks"] if c["field"] == "iban"] == [
        ("document", "verified"),
        ("validator", "unverified"),
    ]
    assert systems.create_calls == 0
    (request,) = [n for n in systems.notifications if n.to == CONTACT]
    assert "mod-97 checksum fails" in request.body
