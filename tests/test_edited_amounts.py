"""Amounts in decisions, in real cases on the time-skipping server (systems faked by name): an
amount that cannot be approved is refused with its reason before anything moves, by update,
by signal and in the review queue, and no amount can fail a workflow task.

The rules on their own (minor units, bounds, limits, the typed form) are in ``test_amounts.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState
from casework.case.tasks import DecisionReceipt
from casework.config import Settings
from casework.converter import data_converter
from casework.testing.cases import open_task
from casework.testing.signing import decide, signed_as_sent
from casework.testing.temporal import eventually
from casework.web.app import create_app
from casework.web.auth import Credentials
from tests.fake_systems import FakeSystems, scenario
from tests.loan_application_support import (
    FakeLending,
    credit_report,
    loan_application,
    loan_worker,
    payslip,
    start_loan,
)
from tests.refund_support import FakeRefundSystems, order
from tests.test_invoice_workflow import audit, case_worker, start_case
from tests.test_refund_workflow import case_worker as refund_worker
from tests.test_refund_workflow import issued, now
from tests.test_refund_workflow import open_task as refund_task
from tests.test_refund_workflow import start_case as start_refund
from workflows.loan_application import CREDIT_REPORT
from workflows.loan_application import Outcome as LoanOutcome
from workflows.refund import Outcome as RefundOutcome


def waits_for_carol(invoice_id: str) -> FakeSystems:
    """12,600.00 EUR with a 5% price variance: carol (finance_manager) decides."""
    return FakeSystems(scenario(invoice_id, quantity=400, invoice_price="31.50"))


async def refused_update(handle: WorkflowHandle, decision: Any) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("decide", decision, result_type=DecisionReceipt)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def refusal(handle: WorkflowHandle, **fields: Any) -> str:
    """Why the case refused ``TaskDecision(**fields)``, signed and sent as the update."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await decide(handle, **fields)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DecisionRefused", cause
    return cause.message


async def refusals(handle: WorkflowHandle, count: int) -> list[AuditEvent]:
    async def recorded() -> list[AuditEvent] | None:
        found = [e for e in await audit(handle) if e.kind is AuditKind.DECISION_REFUSED]
        return found if len(found) >= count else None

    return await eventually(recorded, what=f"{count} refused decision(s) in the audit trail")


async def no_failed_workflow_task(handle: WorkflowHandle) -> bool:
    history = await handle.fetch_history()
    failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return all(event.event_type != failed for event in history.events)


async def test_a_signed_huge_amount_by_signal_is_recorded_and_ignored_and_the_case_goes_on(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = waits_for_carol("INV-AM1")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-AM1")
        await open_task(handle)
        # Issue 20, defect 1: this signal failed every workflow task of the case for good.
        await handle.signal("decide", signed_as_sent(handle.id, "carol", "1E+400"))
        (refused,) = await refusals(handle, 1)
        state = await handle.query("state", result_type=CaseState)
        await decide(handle, approver="carol", action="approve")
        result = await asyncio.wait_for(handle.result(), timeout=60)
        healthy = await no_failed_workflow_task(handle)

    assert refused.summary == (
        "ignored a malformed decision signal: invalid TaskDecision: amount: Value error, "
        "1E+400 has more than 15 digits before the decimal point"
    )
    assert [task.status.value for task in state.open_tasks] == ["open"]
    assert result.amount_paid == Decimal("12600.00")
    assert [p.amount for p in systems.payments.values()] == [Decimal("12600.00")]
    assert healthy


async def test_a_huge_amount_by_update_is_refused_with_the_reason(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = waits_for_carol("INV-AM2")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-AM2")
        await open_task(handle)
        # It was refused as "[<class 'decimal.InvalidOperation'>]".
        cause = await refused_update(handle, signed_as_sent(handle.id, "carol", "1E+30"))
        still_open = await handle.query("open_tasks")
        await decide(handle, approver="carol", action="reject", comment="not this one")
        await handle.result()

    assert cause.type == "InvalidInput"
    assert cause.message == (
        "invalid TaskDecision: amount: Value error, 1E+30 has more than 15 digits before the "
        "decimal point"
    )
    assert len(still_open) == 1
    assert systems.payments == {}


async def test_an_edited_amount_finer_than_the_currency_is_refused_before_anything_is_paid(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = waits_for_carol("INV-AM3")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-AM3")
        await open_task(handle)
        sub_cent = await refusal(handle, approver="carol", action="approve", amount="0.001")
        above = await refusal(handle, approver="carol", action="approve", amount="12600.001")
        await handle.signal("decide", signed_as_sent(handle.id, "carol", "0.005"))
        (ignored,) = await refusals(handle, 1)
        paid_before = dict(systems.payments)
        receipt = await decide(handle, approver="carol", action="approve", amount="12599.99")
        result = await handle.result()
        events = await audit(handle)

    assert sub_cent == ("decision refused: edited amount 0.001 EUR has 3 decimal places; EUR has 2")
    # It read "edited amount 12,600.00 must be above 0 and at most 12,600.00".
    assert above == (
        "decision refused: edited amount 12,600.001 EUR is above 12,600.00 EUR, the amount this "
        "task is for; edited amount 12,600.001 EUR has 3 decimal places; EUR has 2"
    )
    assert ignored.summary == (
        "ignored decision from carol: edited amount 0.005 EUR has 3 decimal places; EUR has 2"
    )
    assert paid_before == {}
    assert (receipt.amount, receipt.currency) == (Decimal("12599.99"), "EUR")
    assert receipt.message.startswith("approve of 12,599.99 EUR by carol recorded for ")
    assert result.amount_paid == Decimal("12599.99")
    assert [p.amount for p in systems.payments.values()] == [Decimal("12599.99")]
    decided = [e.summary for e in events if e.kind is AuditKind.HUMAN_DECISION]
    assert decided == ["carol chose approve for 12599.99 EUR"]


async def test_a_refund_in_another_currency_waits_for_a_person_and_keeps_its_minor_unit(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    in_kwd = order("ORD-AM1", await now(time_skipping_env), total="49.99").model_copy(
        update={"currency": "KWD"}
    )
    systems = FakeRefundSystems(in_kwd)
    async with refund_worker(time_skipping_env, systems) as queue:
        handle = await start_refund(time_skipping_env, queue, systems)
        # Under 50.00 EUR automatic-refund limit, but in KWD: not issued without a person.
        task = await refund_task(handle)
        finer = await refusal(handle, approver="dave", action="approve", amount="0.00001")
        await decide(handle, approver="dave", action="approve", amount="40.125")
        result = await handle.result()

    assert (task.role, task.currency) == ("cfo", "KWD")
    assert "the amount is in KWD, the policy's amounts are in EUR: a person decides" in (
        task.summary
    )
    assert finer == "decision refused: edited amount 0.00001 KWD has 5 decimal places; KWD has 3"
    assert (result.outcome, result.decided_by) == (RefundOutcome.APPROVED, "dave")
    assert [(r.amount, r.currency) for r in issued(systems)] == [(Decimal("40.125"), "KWD")]


async def test_an_edited_loan_below_the_policy_minimum_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeLending(
        loan_application(
            "APP-AM1",
            amount="150000.00",
            term_months=240,
            declared_income="9000.00",
            documents=[payslip("9000.00")],
        )
    )
    async with loan_worker(time_skipping_env, systems) as queue:
        handle = await start_loan(time_skipping_env, queue, "APP-AM1")
        await handle.signal(CREDIT_REPORT, credit_report("APP-AM1"))
        task = await open_task(handle)
        refused = await refusal(handle, approver="olivia", action="approve", amount="1.00")
        await decide(handle, approver="olivia", action="approve", amount="1000.00")
        result = await handle.result()

    assert (task.min_amount, task.max_amount) == (Decimal("1000.00"), Decimal("500000.00"))
    # Issue 21: an edited amount of 1.00 was disbursed below the policy's minimum.
    assert refused == (
        "decision refused: edited amount 1.00 EUR is below 1,000.00 EUR, the policy's minimum"
    )
    assert (result.outcome, result.amount_disbursed) == (LoanOutcome.APPROVED, Decimal("1000.00"))


GARBAGE: list[list[Any]] = [
    [],
    [{"approver": "carol", "action": "approve"}, {}],
    ["approve"],
    [[[[["nested"]]]]],
    [{"approver": {"nested": ["garbage"]}, "action": None, "amount": {"x": 1}}],
    [{"approver": "carol", "action": "approve", "amount": "NaN"}],
    [{"approver": "carol", "action": "approve", "amount": "Infinity"}],
    [{"approver": "carol", "action": "approve", "amount": "1E+400"}],
    [{"approver": "carol", "action": "approve", "amount": -1}],
    [{"responder": "carol", "text": "x" * 5000}],
]
"""None, several, a string, nested lists, wrong types, amounts that are no numbers or absurd or
negative, an oversized answer: what `temporal workflow signal/update` can send."""


async def test_no_payload_fails_a_workflow_task_of_decide_or_answer(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = waits_for_carol("INV-AM5")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-AM5")
        await open_task(handle)
        for name in ("decide", "answer"):
            for payloads in GARBAGE:
                await handle.signal(name, args=payloads)
        refused = await refusals(handle, 2 * len(GARBAGE))
        rejected = []
        for name in ("decide", "answer"):
            for payloads in GARBAGE:
                with pytest.raises(WorkflowUpdateFailedError) as update:
                    await handle.execute_update(name, args=payloads, result_type=DecisionReceipt)
                rejected.append(update.value.cause)
        still_open = await handle.query("open_tasks")
        await decide(handle, approver="carol", action="approve")
        result = await asyncio.wait_for(handle.result(), timeout=60)
        healthy = await no_failed_workflow_task(handle)

    assert len(refused) == 2 * len(GARBAGE)
    assert all(e.summary.startswith("ignored ") for e in refused), [e.summary for e in refused]
    assert len(rejected) == 2 * len(GARBAGE)
    assert len(still_open) == 1
    assert [p.amount for p in systems.payments.values()] == [Decimal("12600.00")]
    assert result.decided_by == "carol"
    assert healthy


# -- the review queue ---------------------------------------------------------------------------


@contextmanager
def review_queue(env: WorkflowEnvironment, state_dir: Path) -> Iterator[TestClient]:
    """The review queue app on the test server, signed in as carol."""
    target = env.client.service_client.config.target_host

    async def connect() -> Client:
        return await Client.connect(target, data_converter=data_converter)

    password = Credentials(state_dir).set_password("carol", "correct horse")
    app = create_app(Settings(state_dir=state_dir), connect)
    with TestClient(app, base_url="http://127.0.0.1:8790") as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
        assert token, form.text
        signed_in = client.post(
            "/login",
            data={"user": "carol", "password": password, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        yield client


def post_decision(client: TestClient, case_id: str, **fields: str) -> Any:
    page = client.get(f"/cases/{case_id}")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert token, page.text
    return client.post(f"/cases/{case_id}/decide", data={"csrf_token": token.group(1), **fields})


async def test_the_review_queue_refuses_a_locale_formatted_amount_and_shows_the_one_approved(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    systems = waits_for_carol("INV-AM4")
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-AM4")
        task = await open_task(handle)

        def in_the_browser() -> tuple[Any, Any, Any]:
            with review_queue(time_skipping_env, tmp_path) as client:
                european = post_decision(
                    client, handle.id, action="approve", amount="12.600,00", task_id=task.task_id
                )
                american = post_decision(
                    client, handle.id, action="approve", amount="12,600.00", task_id=task.task_id
                )
                approved = post_decision(
                    client, handle.id, action="approve", amount="12600.00", task_id=task.task_id
                )
                return european, american, approved

        # In a thread: the worker serving the case runs on this event loop.
        european, american, approved = await asyncio.to_thread(in_the_browser)
        result = await handle.result()

    # Issue 20, defect 3: "12.600,00" was read as 12.60 and paid.
    assert european.status_code == 409
    assert "amount &#39;12.600,00&#39; has a comma" in european.text
    assert american.status_code == 409
    assert "amount &#39;12,600.00&#39; has a comma" in american.text
    assert approved.status_code == 200
    assert "approve of 12,600.00 EUR by carol recorded for" in approved.text
    assert result.amount_paid == Decimal("12600.00")
    assert [p.amount for p in systems.payments.values()] == [Decimal("12600.00")]
