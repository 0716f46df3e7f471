"""The bad-input matrix: every row refused clearly, with nothing changed.

Runs ``reliability.matrix`` against the real dev server, worker and sandbox, driving the
``casework`` and ``temporal`` CLIs as a person would.
"""

from __future__ import annotations

from reliability.drivers import DRIVERS
from reliability.matrix import GROUPS, render_matrix, run_matrix


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
