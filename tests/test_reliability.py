"""The fault suite at CI size: the real dev server, worker, sandbox and model server, with the
worker SIGKILLed, the server restarted and every fault kind injected; then the invariants.

The same code as ``make reliability``, at 9 cases per process (``reliability.suite.CI``). It
takes about 80 s on a 2-core machine.
"""

from __future__ import annotations

from reliability.drivers import DRIVERS
from reliability.drivers.base import SandboxFault
from reliability.model import ModelFault
from reliability.suite import CI, SERVER_RESTARTED, WORKER_KILLED, render, run_suite


async def test_faults_are_survived_and_nothing_is_lost_or_done_twice() -> None:
    report = await run_suite(CI)
    table = render(report)
    print(table)

    assert report.cases == CI.cases_per_process * len(DRIVERS)
    assert report.lost == 0, table
    assert report.duplicates == 0, table
    assert report.wrong_outcomes == 0, table
    assert report.task_failures == 0 and report.stuck == 0, table
    assert report.completed + report.waiting == report.cases, table
    assert report.waiting > 0, "no case was left waiting: the run would not show waiting survives"
    compensated, reversed_ = report.compensated
    assert compensated >= 1 and reversed_ == compensated, table
    # Every kind of fault really happened, not just planned.
    kinds = [WORKER_KILLED, SERVER_RESTARTED, *SandboxFault, *ModelFault]
    assert all(report.injected[kind] > 0 for kind in kinds), table
    assert report.injected[WORKER_KILLED] >= 2
    assert report.ok, table
