"""The suite's planning and bookkeeping, without running anything: every fault kind is planned
for every process that can meet it, and a report fails on any broken invariant."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from casework.case import CaseState
from casework.catalogue import discover
from reliability.drivers import DRIVERS
from reliability.drivers.base import Ledger, Outcome, People
from reliability.suite import CI, NO_OWN_FAULT, CaseVerdict, Report, _own_faults, plan_cases, render


def test_every_fault_kind_is_planned_for_every_process_that_can_meet_it() -> None:
    cases = plan_cases(DRIVERS.values(), CI, "T")
    for driver in DRIVERS.values():
        own = [case for case in cases if case.driver is driver]
        assert {c.model_fault for c in own} >= set(driver.model_faults)
        assert {c.sandbox_fault for c in own} >= set(driver.sandbox_faults)
        assert any(c.scenario.people is People.LEAVE for c in own), "nothing left waiting"
        for case in own:
            if case.sandbox_fault is not None:
                assert driver.compatible(case.scenario, case.sandbox_fault)
    assert len({case.case_id for case in cases}) == len(cases)


def _report(ledger: Ledger, *, status: str = "paid", execution: str = "COMPLETED") -> Report:
    case = plan_cases([DRIVERS["invoice-exception"]], CI, "T")[1]
    state = CaseState(
        case_id=case.case_id,
        case_type="invoice-exception",
        status=status,
        title="",
        open_task=None,
        facts={},
    )
    outcome = Outcome(execution=execution, state=state, audit=[])
    verdict = CaseVerdict(
        case=case,
        outcome=outcome,
        ledger=ledger,
        problems=case.driver.problems(case, outcome, ledger),
        settled=execution != "RUNNING",
    )
    return Report(CI, 1.0, [verdict], Counter(), Counter(), Path("."))


def test_a_clean_case_passes() -> None:
    report = _report(Ledger(writes=Counter(payment=1), reversals={"PAY-1": False}))
    assert report.ok and report.completed == 1


def test_a_second_payment_is_a_duplicate() -> None:
    report = _report(Ledger(writes=Counter(payment=2), reversals={"PAY-1": False, "PAY-2": False}))
    assert report.duplicates == 1 and not report.ok


def test_a_compensated_case_without_its_reversal_fails() -> None:
    report = _report(
        Ledger(writes=Counter(payment=1), reversals={"PAY-1": False}), status="failed_compensated"
    )
    assert report.compensated == (1, 0) and not report.ok


def test_a_case_still_running_at_the_deadline_is_lost() -> None:
    report = _report(Ledger(), status="executing", execution="RUNNING")
    assert report.lost == 1 and not report.ok


def test_a_planned_fault_that_never_fired_fails_the_run() -> None:
    report = _report(Ledger(writes=Counter(payment=1), reversals={"PAY-1": False}))
    report.planned["sandbox 5xx"] = 1
    assert report.unfired == ["sandbox 5xx"] and not report.ok


def test_the_table_has_a_row_per_process_and_fault_kind() -> None:
    cases = plan_cases(DRIVERS.values(), CI, "T")
    verdicts = [
        CaseVerdict(
            case=case,
            outcome=Outcome(execution="COMPLETED", state=None, audit=[]),
            ledger=Ledger(),
            problems=[],
        )
        for case in cases
    ]
    table = render(Report(CI, 1.0, verdicts, Counter(), Counter(), Path(".")))

    lines = table.splitlines()
    for driver in DRIVERS.values():
        own = [c for c in cases if c.driver is driver]
        kinds = {str(f) for c in own for f in (c.model_fault, c.sandbox_fault) if f}
        for kind in [*kinds, NO_OWN_FAULT]:
            count = sum(kind in _own_faults(c) for c in own)
            if not count:  # every case met a fault of its own: no row for none
                continue
            assert any(
                line.startswith(driver.process) and f" {kind} " in line and f" {count} " in line
                for line in lines
            ), f"no row for {driver.process}, {kind}:\n{table}"


def test_every_process_in_the_catalogue_has_a_driver() -> None:
    # The suite and the bad-input matrix run what has a driver: a process without one would
    # never be killed mid-case nor sent bad input.
    assert set(DRIVERS) == set(discover().processes)
