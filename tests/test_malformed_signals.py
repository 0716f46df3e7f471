"""Signals that cannot be decoded are recorded and ignored, and never wedge a case.

Before the handlers validated their input themselves, a ``decide`` signal with no payload (what
``temporal workflow signal --name decide`` sends without ``--input``) failed every workflow task
of the case, which then answered no query and never moved again.
"""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.case.tasks import MAX_COMMENT_CHARS, TaskDecision
from casework.testing.signing import signed
from tests.fake_systems import FakeSystems, scenario
from tests.test_invoice_workflow import audit, case_worker, open_task, start_case


async def test_malformed_decide_signals_are_recorded_and_ignored(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    systems = FakeSystems(scenario("INV-MS1", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-MS1")
        await open_task(handle)
        await handle.signal("decide")  # no payload at all
        await handle.signal("decide", args=[{"approver": "bob", "action": "approve"}, {}])
        await handle.signal("decide", {"approver": 5, "action": "approve"})
        await handle.signal("decide", [1, 2])
        await handle.signal(
            "decide",
            {"approver": "bob", "action": "approve", "comment": "x" * (MAX_COMMENT_CHARS + 1)},
        )
        await handle.signal("decide", signed(handle.id, approver="bob", action="approve"))
        # A wedged case never finishes: fail instead of hanging.
        result = await asyncio.wait_for(handle.result(), timeout=60)
        events = await audit(handle)
        history = await handle.fetch_history()

    assert result.decided_by == "bob"
    assert len(systems.payments) == 1
    refused = [e.summary for e in events if e.kind is AuditKind.DECISION_REFUSED]
    assert refused == [
        "ignored a malformed decision signal: expected one TaskDecision, got 0 payloads",
        "ignored a malformed decision signal: expected one TaskDecision, got 2 payloads",
        "ignored a malformed decision signal: invalid TaskDecision: approver: Input should be a "
        "valid string",
        "ignored a malformed decision signal: invalid TaskDecision: (whole value): Input should "
        "be a valid dictionary or instance of TaskDecision",
        "ignored a malformed decision signal: invalid TaskDecision: comment: String should have "
        f"at most {MAX_COMMENT_CHARS} characters",
    ]
    failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert not failed


def test_an_oversized_comment_is_refused_by_the_model() -> None:
    decision = TaskDecision(approver="bob", action="approve", comment="x" * MAX_COMMENT_CHARS)
    assert decision.comment is not None
    try:
        TaskDecision(approver="bob", action="approve", comment="x" * (MAX_COMMENT_CHARS + 1))
    except ValueError as error:
        assert "at most 2000 characters" in str(error)
    else:
        raise AssertionError("a comment over the limit was accepted")
