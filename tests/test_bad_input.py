"""The bad-input matrix: every row refused clearly, with nothing changed.

Runs ``reliability.matrix`` against the real dev server, worker and sandbox, driving the
``casework`` and ``temporal`` CLIs as a person would.
"""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType

from reliability.drivers import DRIVERS
from reliability.matrix import (
    GROUPS,
    Snapshot,
    render_matrix,
    run_matrix,
    same_case,
    signal_names,
    update_names,
)


async def test_every_bad_input_is_refused_and_changes_nothing() -> None:
    rows = await run_matrix()
    table = render_matrix(rows)
    print(table)

    failed = [row for row in rows if not row.passed]
    assert not failed, "\n".join(f"{row.group}: {row.sent}: {row.why}" for row in failed)
    for prefix in GROUPS:
        assert any(row.group.startswith(prefix) for row in rows), f"no row for {prefix!r}"
    for process in DRIVERS:
        assert any(process in row.group for row in rows), f"no rows for {process}"
        # Every signal and every update the process declares, found in its workflow class.
        for name in signal_names(process):
            group = f"signal payload shape: {name} (temporal CLI, {process})"
            assert sum(row.group == group for row in rows) == 3, f"no {group!r} rows"
        for name in update_names(process):
            group = f"update with a malformed body (temporal CLI, {process}): {name}"
            assert sum(row.group == group for row in rows) == 2, f"no {group!r} rows"


SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
SCHEDULED = EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
STARTED = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
TIMED_OUT = EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
FAILED = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED


def test_a_signal_may_grow_the_history_by_a_retried_workflow_task_only() -> None:
    before = Snapshot(exists=True, events=[1, SCHEDULED, STARTED, COMPLETED])
    signal = [SIGNALED, SCHEDULED, STARTED]

    def grown(*new: int) -> Snapshot:
        return Snapshot(exists=True, events=[*before.events, *new])

    assert same_case(before, grown(*signal, COMPLETED), history_may_grow=True) == ""
    retried = grown(*signal, TIMED_OUT, SCHEDULED, STARTED, COMPLETED)
    assert "timed out" in same_case(before, retried, history_may_grow=True)
    with pytest.raises(AssertionError, match="none completed after it"):
        same_case(before, grown(*signal, TIMED_OUT, SCHEDULED), history_may_grow=True)
    with pytest.raises(AssertionError, match="a workflow task failed"):
        same_case(
            before, grown(*signal, FAILED, SCHEDULED, STARTED, COMPLETED), history_may_grow=True
        )
    with pytest.raises(AssertionError, match="history gained"):
        same_case(
            before, grown(*signal, TIMED_OUT, SCHEDULED, STARTED, COMPLETED), history_may_grow=False
        )
