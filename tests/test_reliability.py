"""The fault suite at CI size: the real dev server, worker, sandbox and model server, with the
worker SIGKILLed, the server restarted and every fault kind injected; then the invariants.

The same code as ``make reliability``, at 9 cases per process (``reliability.suite.CI``), for
every process with a driver (every process in the catalogue: ``tests/test_reliability_plan.py``).
The processes run side by side: with six it takes about 150 s on a busy 2-core machine, most of
it waiting out the timeouts of what the killed workers had in flight, not per case.
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
    # Each process ran its cases and ended with nothing done twice and nothing lost.
    for driver in DRIVERS.values():
        own = [v for v in report.verdicts if v.case.driver is driver]
        assert len(own) == CI.cases_per_process, driver.process
        assert not any(v.ledger.duplicates or not v.settled for v in own), table
    assert report.ok, table
