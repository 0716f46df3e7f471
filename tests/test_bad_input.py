"""The bad-input matrix: every row refused clearly, with nothing changed.

Runs ``reliability.matrix`` against the real dev server, worker and sandbox, driving the
``casework`` and ``temporal`` CLIs as a person would.
"""

from __future__ import annotations

from reliability.drivers import DRIVERS
from reliability.matrix import GROUPS, render_matrix, run_matrix, signal_names, update_names


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
