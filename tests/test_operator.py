"""The operator's view of a running stack: KPIs, metrics and the review queue in a browser.

One embedded stack (``casework up``: dev server, sandbox, the real worker with its metrics
endpoint, the review queue) on free ports under a temporary CASEWORK_HOME, with ``casework demo``
run once. The report and metrics tests come first and check the demo's cases, whatever processes
and scenarios the demo runs: each KPI is computed again here from sources that do not go through
the report (the demo's printed table, ``casework show``, ``casework inbox`` and each case's
exported audit trail). The browser tests then start cases of their own and decide them, which
changes both.

Browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright; ``.ci/run``
installs it. Without it they are skipped locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from datetime import time as time_of_day
from itertools import pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy
import pytest

from casework.testing.stack import Stack, demo_table, embedded_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INVOICE_PREFIX = "invoice-exception-"
TRIAGE_PREFIX = "ticket-triage-"
# The processes the demo runs at least; it may run more, and the KPI tests check those too.
DEMO_PROCESSES = {
    "invoice-exception",
    "ticket-triage",
    "refund",
    "loan-application",
    "lead-routing",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("operator") / "casework"
    with embedded_stack(home, task_queue="casework-operator-test") as stack:
        stack.demo_stdout = stack.run("demo").stdout
        yield stack


# -- the demo's cases, read without the report ---------------------------------------------------


@dataclass(frozen=True)
class DemoCase:
    """One case the demo ran: its row in the demo's table, what ``casework show`` says about it,
    and its audit trail as ``casework audit --jsonl`` exports it."""

    case_id: str
    outcome: str
    """The table's outcome column: the case's status, or "awaiting ROLE" for each open task."""
    case_type: str
    status: str
    execution: str
    """Temporal's execution status, as ``show`` prints it: RUNNING, COMPLETED ..."""
    open_tasks: list[dict[str, Any]]
    result: dict[str, Any] | None
    trail: list[dict[str, Any]]
    region_trail: list[dict[str, Any]]
    """The trail of the case's agent region (child workflow ``<case id>-agent``), if it ran one."""

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.trail if event["kind"] == kind]

    @property
    def closed(self) -> bool:
        return self.execution != "RUNNING"

    @property
    def completed(self) -> bool:
        return bool(self.events("case_completed"))

    @property
    def routed_to_a_person(self) -> bool:
        """Whether an approval task was ever opened (every task_opened names its task_kind)."""
        return any(e["data"]["task_kind"] == "approval" for e in self.events("task_opened"))

    def model_calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(agent, usage) of every model call the case paid for, counted from the calls
        themselves: a proposal from a single call carries that call's usage; an agent region's
        calls are the model_call events of the region's own trail."""
        calls = [
            (e["data"]["agent"], e["data"]["usage"])
            for e in self.events("agent_proposal")
            if "usage" in e["data"]
        ]
        for ended in self.events("agent_region_ended"):
            agent = ended["data"]["model_usage"]["agent"]
            calls += [
                (agent, e["data"]["usage"]) for e in self.region_trail if e["kind"] == "model_call"
            ]
        return calls

    def compensations(self) -> list[tuple[str, bool]]:
        """(step, worked) from the case's result: what it reports it undid, or failed to."""
        if self.result is None:
            return []
        return [(step, True) for step in self.result.get("compensated", [])] + [
            (step, False) for step in self.result.get("compensation_failed", [])
        ]


@dataclass(frozen=True)
class Demo:
    cases: dict[str, DemoCase]
    inbox: list[dict[str, Any]]
    """``casework inbox --json``: every open task."""

    def of(self, case_id: str) -> DemoCase:
        return self.cases[case_id]


@pytest.fixture(scope="module")
def demo(stack: Stack) -> Demo:
    rows = demo_table(stack.demo_stdout)
    # Every row is a case, with its Web UI link.
    for row in rows:
        assert re.fullmatch(r"[a-z-]+-[A-Za-z0-9._:-]+", row["case"]), row
        link = f"{stack.ui_url}/namespaces/default/workflows/{quote(row['case'], safe='')}"
        assert row["Web UI"] == link, row
    assert len({row["case"] for row in rows}) == len(rows)

    def read(row: dict[str, str]) -> DemoCase:
        case_id = row["case"]
        shown = json.loads(stack.run("show", case_id, "--json").stdout)
        trail = stack.audit(case_id)
        ran_region = any(event["kind"] == "agent_region_ended" for event in trail)
        region_trail = stack.audit(f"{case_id}-agent") if ran_region else []
        # A coordinator's specialists run in regions of their own; their calls are the case's.
        for delegated in [e for e in region_trail if e["kind"] == "delegation_started"]:
            region_trail += stack.audit(delegated["data"]["region_id"])
        return DemoCase(
            case_id=case_id,
            outcome=row["outcome"],
            case_type=shown["state"]["case_type"],
            status=shown["state"]["status"],
            execution=shown["execution_status"],
            open_tasks=shown["state"]["open_tasks"],
            result=shown["result"],
            trail=trail,
            region_trail=region_trail,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        cases = {case.case_id: case for case in pool.map(read, rows)}
        # The post-incident reviews the severity-1 triage cases started are cases of their own,
        # waiting for the incident manager, though the demo's table does not list them.
        reviews = [
            {"case": case.result["incident_review"], "outcome": "awaiting incident_manager"}
            for case in cases.values()
            if case.result and case.result.get("incident_review")
        ]
        assert reviews, "the severity-1 triage case starts its post-incident review"
        cases |= {case.case_id: case for case in pool.map(read, reviews)}
    inbox = json.loads(stack.run("inbox", "--json").stdout)

    assert {case.case_type for case in cases.values()} >= DEMO_PROCESSES
    for case in cases.values():
        # The demo ends no workflow in failure: every case is running or reached an outcome.
        assert case.execution in ("RUNNING", "COMPLETED"), case
        assert case.completed == case.closed, case
        # The table says what show says: the status, or who the case waits for.
        waits = " + ".join(f"awaiting {task['role']}" for task in case.open_tasks)
        assert case.outcome == (waits or case.status), case
    # The inbox holds exactly the open tasks of the cases waiting.
    assert sorted(task["task_id"] for task in inbox) == sorted(
        task["task_id"] for case in cases.values() for task in case.open_tasks
    )
    return Demo(cases=cases, inbox=inbox)


# -- KPIs ---------------------------------------------------------------------------------------


def _rate(count: int, of: int) -> dict[str, Any]:
    return {"count": count, "of": of, "rate": round(count / of, 4) if of else None}


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


# What each process's agent proposal means for the human task that may follow
# (docs/operations.md): approving follows the agent when it recommends "approve".
RECOMMENDATION_READINGS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "invoice-exception": lambda p: "approve" if p["recommendation"] == "approve" else "reject",
    "refund": lambda p: "approve" if p["recommendation"] == "approve" else "reject",
    "ticket-triage": lambda p: "approve",
    "lead-routing": lambda p: "approve",
    "loan-application": lambda p: None,
    "vendor-onboarding": lambda p: None,
    "insurance-claim": lambda p: "approve" if p["decision"] == "pay" else "reject",
}


def test_report_json_matches_the_demo_cases(stack: Stack, demo: Demo) -> None:
    report = json.loads(stack.run("report", "--json").stdout)
    cases = list(demo.cases.values())
    processes = sorted({case.case_type for case in cases})

    # Cases by process and status, as `show` reads them.
    assert report["cases"] == len(cases)
    assert report["cases_by_process"] == dict(Counter(case.case_type for case in cases))
    by_status: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        by_status[case.case_type][case.status] += 1
    assert report["cases_by_process_and_status"] == {k: dict(v) for k, v in by_status.items()}
    assert report["unreadable_audit"] == []

    # Backlog and SLA from the inbox's open tasks, judged at the report's own time.
    approvals = [task for task in demo.inbox if task["kind"] == "approval"]
    questions = [task for task in demo.inbox if task["kind"] == "question"]
    assert report["backlog_by_role"] == dict(Counter(task["role"] for task in approvals))
    assert report["questions_by_role"] == dict(Counter(task["role"] for task in questions))
    now = datetime.fromisoformat(report["generated_at"])
    sla: dict[str, list[str]] = {"on_track": [], "at_risk": [], "breached": []}
    for task in approvals:
        opened, due = (
            datetime.fromisoformat(task["opened_at"]),
            datetime.fromisoformat(task["due_at"]),
        )
        if now > due:
            sla["breached"].append(task["task_id"])
        elif now >= opened + (due - opened) * 0.8:
            sla["at_risk"].append(task["task_id"])
        else:
            sla["on_track"].append(task["task_id"])
    assert report["sla"] | {"at_risk_tasks": None, "breached_tasks": None} == {
        "on_track": len(sla["on_track"]),
        "at_risk": len(sla["at_risk"]),
        "breached": len(sla["breached"]),
        "at_risk_tasks": None,
        "breached_tasks": None,
    }
    assert sorted(report["sla"]["at_risk_tasks"]) == sorted(sla["at_risk"])
    assert sorted(report["sla"]["breached_tasks"]) == sorted(sla["breached"])
    # The lead the demo leaves for sales ops is in their backlog, and so on for each waiting case.
    (lead_review,) = demo.of("lead-routing-LEAD-1004").open_tasks
    assert lead_review["role"] == "sales_ops" and report["backlog_by_role"]["sales_ops"] >= 1
    assert lead_review["task_id"] in sla["on_track"]
    assert demo.of("loan-application-APP-1003").outcome == "awaiting underwriter"
    assert demo.of(f"{INVOICE_PREFIX}INV-1005").outcome == "awaiting finance_manager"
    assert demo.of(f"{TRIAGE_PREFIX}INC-1004").outcome == "awaiting service_desk_lead"

    # Auto-approval: completed without an approval task, of those plus cases routed to a person.
    decided: Counter[str] = Counter()
    automatic: Counter[str] = Counter()
    for case in cases:
        decided[case.case_type] += case.routed_to_a_person or case.completed
        automatic[case.case_type] += case.completed and not case.routed_to_a_person
    assert report["auto_approval"] == _rate(sum(automatic.values()), sum(decided.values()))
    assert report["auto_approval_by_process"] == {
        k: _rate(automatic[k], decided[k]) for k in processes
    }
    # INV-1001 and INV-1004 went straight through; INV-1002/3/5 to a person.
    assert not demo.of(f"{INVOICE_PREFIX}INV-1001").routed_to_a_person
    assert all(demo.of(f"{INVOICE_PREFIX}INV-100{n}").routed_to_a_person for n in (2, 3, 5))

    # Each proposal says what it means for the task in its process's terms, and carries the
    # agent's own confidence.
    for case in cases:
        for event in case.events("agent_proposal"):
            proposal = event["data"]["proposal"]
            assert event["data"]["confidence"] == proposal["confidence"], event
            if case.case_type in RECOMMENDATION_READINGS:
                reading = RECOMMENDATION_READINGS[case.case_type](proposal)
                assert event["data"]["recommended_action"] == reading, (case.case_id, event)

    # Overrides: human decisions against the agent's recommended action, from each trail.
    with_recommendation: Counter[str] = Counter()
    overrides: list[dict[str, Any]] = []
    decisions: set[tuple[str, str, str]] = set()
    for case in cases:
        recommended = None
        for event in case.trail:
            if event["kind"] == "agent_proposal":
                recommended = event["data"]["recommended_action"]
            elif event["kind"] == "human_decision":
                decision = event["data"]["decision"]
                decisions.add((case.case_id, decision["approver"], decision["action"]))
                if recommended:
                    with_recommendation[case.case_type] += 1
                    if decision["action"] != recommended:
                        overrides.append(
                            {
                                "case_id": case.case_id,
                                "task_id": event["data"]["task_id"],
                                "approver": decision["approver"],
                                "recommended": recommended,
                                "decided": decision["action"],
                            }
                        )
    # bob approved INV-1002, carol rejected INV-1003; judy approved a refund, kate confirmed fraud.
    assert {
        (f"{INVOICE_PREFIX}INV-1002", "bob", "approve"),
        (f"{INVOICE_PREFIX}INV-1003", "carol", "reject"),
        ("refund-ORD-1002", "judy", "approve"),
        ("refund-ORD-1003", "kate", "reject"),
    } <= decisions
    overridden = Counter(demo.of(item["case_id"]).case_type for item in overrides)
    assert report["override"] == _rate(len(overrides), sum(with_recommendation.values()))
    assert report["override"]["of"] >= 4
    assert report["override_by_process"] == {
        k: _rate(overridden[k], with_recommendation[k]) for k in processes
    }
    key = itemgetter("case_id", "task_id")
    assert sorted(report["overrides"], key=key) == sorted(overrides, key=key)

    # Confidence: every proposal's own, by process.
    confidences: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        for event in case.events("agent_proposal"):
            confidences[case.case_type].append(event["data"]["proposal"]["confidence"])
    values = [value for by_process in confidences.values() for value in by_process]
    buckets = [0] * 10
    for value in values:
        buckets[min(int(value * 10), 9)] += 1
    conf = report["confidence"]
    assert conf["count"] == len(values) and conf["buckets"] == buckets
    assert {k: sorted(v) for k, v in conf["by_process"].items()} == {
        k: sorted(v) for k, v in confidences.items()
    }
    assert conf["mean"] == round(statistics.fmean(values), 4)
    assert conf["median"] == round(statistics.median(values), 4)

    # Model usage, per case, process and in all, from the model calls themselves.
    spend: dict[str, dict[str, Any]] = {}
    for case in cases:
        calls = case.model_calls()
        spend[case.case_id] = {
            "model_calls": len(calls),
            "tokens": sum(u["prompt_tokens"] + u["completion_tokens"] for _, u in calls),
            "cost_usd": sum(u["cost_usd"] or 0 for _, u in calls),
        }
        # The offline stand-in answers every call, spends nothing, and says so.
        assert all(usage["stand_in"] for _, usage in calls), case.case_id
    by_case = report["model_usage_by_case"]
    assert sorted(by_case) == sorted(spend)
    for case_id, expected in spend.items():
        got = by_case[case_id]
        assert (got["model_calls"], got["tokens"]) == (
            expected["model_calls"],
            expected["tokens"],
        ), case_id
        assert got["cost_usd"] == pytest.approx(expected["cost_usd"]), case_id
    for process in processes:
        of_process = [spend[case.case_id] for case in cases if case.case_type == process]
        got = report["model_usage_by_process"][process]
        assert got["cases"] == len(of_process)
        assert got["model_calls"] == sum(item["model_calls"] for item in of_process)
        assert got["tokens"] == sum(item["tokens"] for item in of_process)
    total = report["model_usage"]
    assert total["cases"] == len(cases)
    assert total["model_calls"] == sum(item["model_calls"] for item in spend.values())
    assert total["tokens"] == 0 and total["cost_usd"] == 0
    # One analyst call per invoice; the triage agent's calls are those its regions recorded.
    for n in range(1, 6):
        assert by_case[f"{INVOICE_PREFIX}INV-100{n}"]["model_calls"] == 1
    for n in range(1, 5):
        triage = demo.of(f"{TRIAGE_PREFIX}INC-100{n}")
        region_calls = sum(1 for e in triage.region_trail if e["kind"] == "model_call")
        assert by_case[triage.case_id]["model_calls"] == region_calls >= 1

    # Compensations: what each case's result says it undid.
    compensations = sorted(
        (case.case_id, case.case_type, step, ok)
        for case in cases
        for step, ok in case.compensations()
    )
    assert compensations == sorted(
        (c["case_id"], c["case_type"], c["step"], c["ok"]) for c in report["compensations"]
    )
    for case in cases:
        assert len(case.events("compensation")) == len(case.compensations()), case.case_id
    assert report["compensations_by_process"] == dict(Counter(c[1] for c in compensations))
    steps = {(c[0], c[2]) for c in compensations if c[3]}
    (payment,) = [step for case_id, step in steps if case_id == f"{INVOICE_PREFIX}INV-1004"]
    assert re.fullmatch(r"payment PAY-\d+ of 1,200\.00 EUR reversed", payment)
    (refund,) = [step for case_id, step in steps if case_id == "refund-ORD-1004"]
    assert re.fullmatch(r"refund REF-\d+ of 25\.00 EUR reversed", refund)
    loan = sorted(step for case_id, step in steps if case_id == "loan-application-APP-1002")
    assert loan[0] == "approval of APP-1002 reversed"
    assert re.fullmatch(r"disbursement PAY-\d+ of 15,000\.00 EUR reversed", loan[1])

    # Failures: cases ending failed_*, with the last failed tool call, else their own message.
    failures = []
    for case in cases:
        if case.status.startswith("failed"):
            tool_failures = case.events("tool_failed")
            assert case.result is not None
            reason = tool_failures[-1]["summary"] if tool_failures else case.result["message"]
            failures.append(
                {
                    "case_id": case.case_id,
                    "case_type": case.case_type,
                    "status": case.status,
                    "reason": reason,
                }
            )
    by_id = itemgetter("case_id")
    assert sorted(report["failures"], key=by_id) == sorted(failures, key=by_id)
    assert report["failure_reasons"] == dict(
        Counter(f["reason"].split(":")[0].strip()[:80] for f in failures)
    )
    failed = {f["case_id"]: f for f in report["failures"]}
    assert failed[f"{INVOICE_PREFIX}INV-1004"]["status"] == "failed_compensated"
    assert "503" in failed[f"{INVOICE_PREFIX}INV-1004"]["reason"]
    assert failed["refund-ORD-1004"]["status"] == "failed_compensated"
    assert failed["refund-ORD-1004"]["reason"].startswith("crm.add_refund_note failed")
    assert "fraud alert" in failed["loan-application-APP-1002"]["reason"]

    # Cycle time over the closed cases. Temporal's start and close times (the report's) bracket
    # each case's first and last audit event, so each median is at least the trails' and, on a
    # demo of seconds, not far above it.
    closed = [case for case in cases if case.closed]
    assert report["cycle_time"]["count"] == len(closed)
    assert {k: v["count"] for k, v in report["cycle_time_by_process"].items()} == dict(
        Counter(case.case_type for case in closed)
    )

    def trail_median(of: list[DemoCase]) -> float:
        return statistics.median(
            (_at(case.events("case_completed")[-1]) - _at(case.trail[0])).total_seconds()
            for case in of
        )

    medians = [(report["cycle_time"], closed)] + [
        (report["cycle_time_by_process"][k], [case for case in closed if case.case_type == k])
        for k in report["cycle_time_by_process"]
    ]
    for got, of in medians:
        assert trail_median(of) - 0.001 <= got["median_seconds"] <= trail_median(of) + 30


# -- where cases stall, and the event log, from the demo's trails ----------------------------------


def _p90(values: list[float]) -> float:
    return float(numpy.percentile(values, 90))


def _close(got: float | None, want: float) -> bool:
    return got is not None and abs(got - want) <= 0.002


def test_report_flow_matches_the_demo_trails(stack: Stack, demo: Demo) -> None:
    flow = json.loads(stack.run("report", "--json").stdout)["flow"]
    cases = list(demo.cases.values())

    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    edges: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    tasks: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    met: Counter[str] = Counter()
    closed_tasks: Counter[str] = Counter()
    for case in cases:
        trail = sorted(case.trail, key=itemgetter("seq"))
        for before, after in pairwise(trail):
            wait = (_at(after) - _at(before)).total_seconds()
            steps[case.case_type][before["kind"]].append(wait)
            edges[case.case_type][(before["kind"], after["kind"])].append(wait)
        opened = {e["data"]["task_id"]: e for e in case.events("task_opened")}
        for event in trail:
            if event["kind"] not in ("human_decision", "human_answer", "task_timed_out"):
                continue
            start = opened[event["data"]["task_id"]]
            label = f"{start['data']['task_kind']} ({start['data']['role']})"
            tasks[case.case_type][label].append((_at(event) - _at(start)).total_seconds())
            closed_tasks[case.case_type] += 1
            on_time = _at(event) <= datetime.fromisoformat(start["data"]["due_at"])
            met[case.case_type] += event["kind"] != "task_timed_out" and on_time

    assert set(flow["step_times"]) == set(steps)
    for kind, by_step in steps.items():
        assert set(flow["step_times"][kind]) == set(by_step), kind
        for step, waits in by_step.items():
            got = flow["step_times"][kind][step]
            assert got["count"] == len(waits), (kind, step)
            assert _close(got["median_seconds"], statistics.median(waits)), (kind, step, got)
            assert _close(got["p90_seconds"], _p90(waits)), (kind, step, got)
    # Demo cases wait for people: at least the invoices, refunds and loans had tasks closed.
    assert {"invoice-exception", "refund"} <= set(tasks)
    assert {k: set(v) for k, v in flow["task_times"].items()} == {
        k: set(v) for k, v in tasks.items()
    }
    for kind, by_task in tasks.items():
        for label, seconds in by_task.items():
            got = flow["task_times"][kind][label]
            assert got["count"] == len(seconds)
            assert _close(got["median_seconds"], statistics.median(seconds)), (kind, label)
            assert _close(got["p90_seconds"], _p90(seconds)), (kind, label)
    assert flow["sla_attainment"] == _rate(sum(met.values()), sum(closed_tasks.values()))
    assert flow["sla_attainment_by_process"] == {
        k: _rate(met[k], closed_tasks[k]) for k in closed_tasks
    }

    # Throughput: every closed case once, on the day it closed (the day of its last entry,
    # which is milliseconds before the workflow closes).
    closed = [case for case in cases if case.closed]
    assert sum(flow["throughput_per_day"].values()) == len(closed)
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    for case in closed:
        by_day[case.case_type][_at(case.trail[-1]).date().isoformat()] += 1
    near_midnight = any(_at(case.trail[-1]).time() >= time_of_day(23, 59, 50) for case in closed)
    if not near_midnight:
        assert flow["throughput_per_day_by_process"] == {k: dict(v) for k, v in by_day.items()}

    # The process map of each process is its directly-follows graph, with median waits.
    for kind, by_edge in edges.items():
        process_map = flow["process_maps"][kind]
        assert process_map["cases"] == sum(1 for case in cases if case.case_type == kind)
        got = {(e["source"], e["target"]): e for e in process_map["edges"]}
        assert set(got) == set(by_edge), kind
        for edge, waits in by_edge.items():
            assert got[edge]["count"] == len(waits)
            assert _close(got[edge]["median_wait_seconds"], statistics.median(waits))
        kinds = Counter(e["kind"] for case in cases if case.case_type == kind for e in case.trail)
        assert process_map["activities"] == dict(kinds)


def test_the_event_log_of_the_demo_reads_back_in_pm4py(
    stack: Stack, demo: Demo, tmp_path: Path
) -> None:
    import pm4py

    xes = tmp_path / "demo.xes"
    exported = stack.run("eventlog", "--format", "xes", "--output", str(xes))
    cases = demo.cases.values()
    assert f"read {len(demo.cases)} of {len(demo.cases)} cases" in exported.stderr
    total = sum(len(case.trail) for case in cases)
    assert f"{len(demo.cases)} cases, {total} events (xes)" in exported.stdout

    log = pm4py.read_xes(str(xes))
    traces = log.groupby("case:concept:name", sort=False)
    # One trace per case, its events the case's audit trail, named and timestamped.
    assert set(traces.groups) == set(demo.cases)
    for case_id, events in traces:
        trail = demo.of(case_id).trail
        assert list(events["concept:name"]) == [e["kind"] for e in trail], case_id
        assert [t.to_pydatetime() for t in events["time:timestamp"]] == [_at(e) for e in trail]
    decided = log[log["concept:name"] == "human_decision"]
    assert {"bob", "carol"} <= set(decided["org:resource"])

    # One process's log discovers a model whose activities are that process's audit kinds.
    refunds = tmp_path / "refund.xes"
    stack.run("eventlog", "--format", "xes", "--process", "refund", "--output", str(refunds))
    refund_log = pm4py.read_xes(str(refunds))
    refund_kinds = {e["kind"] for c in cases if c.case_type == "refund" for e in c.trail}
    net, _, _ = pm4py.discover_petri_net_inductive(refund_log)
    assert {t.label for t in net.transitions if t.label} == refund_kinds
    later = stack.run(
        "eventlog", "--format", "xes", "--since", "2999-01-01", "--output", str(refunds)
    )
    assert "0 cases, 0 events" in later.stdout

    ocel_path = tmp_path / "demo.jsonocel"
    stack.run("eventlog", "--format", "ocel", "--output", str(ocel_path))
    ocel = pm4py.read_ocel2_json(str(ocel_path))
    types = set(pm4py.ocel_get_object_types(ocel))
    assert {"case", "task", "invoice", "ticket", "order"} <= types, types
    assert len(ocel.events) == total
    by_case = pm4py.ocel_flattening(ocel, "case")
    assert set(by_case["case:concept:name"]) == set(demo.cases)
    dfg, starts, _ = pm4py.discover_dfg(by_case)
    assert {a for edge in dfg for a in edge} == {e["kind"] for c in cases for e in c.trail}
    assert set(starts) == {"case_started"}


def _scrape(url: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """Prometheus text format: metric name -> {labels: value}."""
    metrics: dict[str, dict[frozenset[tuple[str, str]], float]] = defaultdict(dict)
    text = httpx.get(url, timeout=10, trust_env=False).text
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ([-+\w.]+)", line)
        if not match or line.startswith("#"):
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        metrics[match.group(1)][labels] = float(match.group(3))
    return metrics


def _total(metrics: dict[str, dict[frozenset[tuple[str, str]], float]], name: str, **want: str):
    return sum(
        value for labels, value in metrics.get(name, {}).items() if set(want.items()) <= set(labels)
    )


def _by(
    metrics: dict[str, dict[frozenset[tuple[str, str]], float]], name: str, *labels: str
) -> dict[tuple[str, ...], float]:
    """A counter summed by ``labels``, leaving out zeros."""
    sums: Counter[tuple[str, ...]] = Counter()
    for label_set, value in metrics.get(name, {}).items():
        named = dict(label_set)
        sums[tuple(named.get(label, "") for label in labels)] += value
    return {key: value for key, value in sums.items() if value}


def _nonzero(counts: Counter[tuple[str, ...]]) -> dict[tuple[str, ...], float]:
    return {key: value for key, value in counts.items() if value}


HUMAN_DECISION_KINDS = {
    "human_answer": "answer",
    "decision_refused": "refused",
    "task_timed_out": "timed_out",
    "task_escalated": "escalated",
}


def test_worker_metrics_count_the_demo_cases_once(stack: Stack, demo: Demo) -> None:
    metrics = _scrape(stack.metrics_url)
    cases = list(demo.cases.values())
    closed = [case for case in cases if case.closed]

    started = Counter((case.case_type,) for case in cases)
    assert _by(metrics, "casework_cases_started_total", "case_type") == _nonzero(started)
    # Each completed case once, under the status `show` reports for it: a process sets its
    # final status before it records case_completed.
    completed = Counter((case.case_type, case.status) for case in closed)
    assert _by(metrics, "casework_cases_completed_total", "case_type", "status") == _nonzero(
        completed
    )

    # Decisions from the trails: people's (in cases and in their agent regions), and "auto" for
    # a case completed without an approval task.
    decisions: Counter[tuple[str, str]] = Counter()
    for case in cases:
        for case_type, trail in ((case.case_type, case.trail), ("agent-region", case.region_trail)):
            for event in trail:
                if event["kind"] == "human_decision":
                    decisions[(case_type, event["data"]["decision"]["action"])] += 1
                elif event["kind"] in HUMAN_DECISION_KINDS:
                    decisions[(case_type, HUMAN_DECISION_KINDS[event["kind"]])] += 1
        if case.completed and not case.routed_to_a_person:
            decisions[(case.case_type, "auto")] += 1
    assert _by(metrics, "casework_decisions_total", "case_type", "kind") == _nonzero(decisions)
    assert decisions[("invoice-exception", "approve")] >= 1  # bob, INV-1002
    assert decisions[("refund", "reject")] >= 1  # kate, ORD-1003

    proposals = Counter(
        (case.case_type, e["data"]["agent"], e["data"]["recommended_action"] or "none")
        for case in cases
        for e in case.events("agent_proposal")
    )
    assert _by(
        metrics, "casework_agent_proposals_total", "case_type", "agent", "recommended_action"
    ) == _nonzero(proposals)

    checks = Counter(
        (case.case_type, e["data"]["agent"], check["basis"], check["verdict"])
        for case in cases
        for e in case.events("proposal_checked")
        for check in e["data"]["checks"]
    )
    assert _by(
        metrics, "casework_proposal_checks_total", "case_type", "agent", "basis", "verdict"
    ) == _nonzero(checks)
    assert {agent for _, agent, _, _ in checks} >= {"invoice_analyst", "triage_agent"}

    # Model calls, tokens and cost from the calls themselves (the stand-in's cost nothing).
    calls: Counter[tuple[str, str]] = Counter()
    tokens: Counter[tuple[str, str, str]] = Counter()
    cost: Counter[tuple[str, str]] = Counter()
    for case in cases:
        for agent, usage in case.model_calls():
            calls[(case.case_type, agent)] += 1
            for token_type in ("prompt", "completion"):
                tokens[(case.case_type, agent, token_type)] += usage[f"{token_type}_tokens"]
            cost[(case.case_type, agent)] += round((usage["cost_usd"] or 0) * 1_000_000)
    assert _by(metrics, "casework_model_calls_total", "case_type", "agent") == _nonzero(calls)
    assert {case_type for case_type, _ in calls} >= DEMO_PROCESSES
    assert _by(
        metrics, "casework_model_tokens_total", "case_type", "agent", "token_type"
    ) == _nonzero(tokens)
    assert _by(metrics, "casework_model_cost_microdollars_total", "case_type", "agent") == (
        _nonzero(cost)
    )

    budget = Counter(
        (case.case_type, e["data"]["model_usage"]["agent"])
        for case in cases
        for e in case.events("agent_region_ended")
        if e["data"]["outcome"] == "budget_exhausted"
    )
    assert _by(metrics, "casework_agent_budget_exhausted_total", "case_type", "agent") == (
        _nonzero(budget)
    )
    compensations = Counter(
        (case.case_type, "ok" if ok else "failed")
        for case in cases
        for _, ok in case.compensations()
    )
    assert _by(metrics, "casework_compensations_total", "case_type", "result") == _nonzero(
        compensations
    )
    assert compensations[("refund", "ok")] >= 1 and compensations[("loan-application", "ok")] >= 2
    # Every casework series is one of those checked above.
    assert {name for name in metrics if name.startswith("casework_")} <= {
        "casework_cases_started_total",
        "casework_cases_completed_total",
        "casework_decisions_total",
        "casework_agent_proposals_total",
        "casework_proposal_checks_total",
        "casework_model_calls_total",
        "casework_model_tokens_total",
        "casework_model_cost_microdollars_total",
        "casework_agent_budget_exhausted_total",
        "casework_compensations_total",
    }

    # The SDK's own runtime metrics are served beside casework's.
    assert any(name.startswith("temporal_") for name in metrics)
    assert _total(metrics, "temporal_workflow_completed_total") >= len(closed)

    # Queries on closed cases replay them on the worker (reading the cases above did, and the
    # report does again): nothing may be counted twice.
    stack.run("report", "--json")
    again = _scrape(stack.metrics_url)
    for name in [n for n in metrics if n.startswith("casework_")]:
        assert again[name] == metrics[name], name


# -- the review queue in a browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _sign_in(browser: Any, stack: Stack, user: str) -> Any:
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{stack.review_url}/")
    assert "/login" in page.url
    page.fill("#user", user)
    page.fill("#password", stack.password(user))
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Tasks you may decide')")
    return page


def _until(page: Any, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Reload ``page`` until ``check`` holds, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        page.wait_for_timeout(250)
        page.reload()


def _queued(page: Any) -> list[str]:
    return page.locator("#queue tbody tr").evaluate_all("rows => rows.map(row => row.dataset.case)")


def _start_invoices_for_carol(stack: Stack, numbers: list[int]) -> list[str]:
    """Invoices over 5,000 with a 5% price variance: they wait for a finance_manager."""
    with httpx.Client(base_url=stack.sandbox_url, timeout=10, trust_env=False) as sandbox:
        for number in numbers:
            line = {"sku": "BRK-220", "description": "Brake assembly", "quantity": 400}
            po = f"PO-{number}"
            for path, body in [
                (
                    "/erp/purchase-orders",
                    {
                        "po_number": po,
                        "supplier_id": "SUP-ACME",
                        "lines": [line | {"unit_price": "30.00"}],
                    },
                ),
                (
                    "/erp/goods-receipts",
                    {
                        "receipt_id": f"GR-{number}",
                        "po_number": po,
                        "lines": [{"sku": "BRK-220", "quantity_received": 400}],
                    },
                ),
                (
                    "/erp/invoices",
                    {
                        "invoice_id": f"INV-{number}",
                        "supplier_id": "SUP-ACME",
                        "po_number": po,
                        "lines": [line | {"unit_price": "31.50"}],
                    },
                ),
            ]:
                response = sandbox.post(path, json=body)
                assert response.status_code == 201, response.text
    for number in numbers:
        stack.run(
            "start",
            "invoice-exception",
            "--input",
            json.dumps({"invoice_id": f"INV-{number}", "submitted_by": "alice"}),
        )
    return [f"{INVOICE_PREFIX}INV-{number}" for number in numbers]


def _case_status(page: Any) -> str:
    return page.locator("#case-status").inner_text()


def test_an_approver_decides_in_the_browser_and_the_cases_move_on(
    stack: Stack, browser: Any
) -> None:
    approve_id, reject_id = _start_invoices_for_carol(stack, [9001, 9002])
    page = _sign_in(browser, stack, "carol")

    _until(
        page,
        "both new cases in carol's queue",
        lambda: {approve_id, reject_id} <= set(_queued(page)),
    )
    queued = _queued(page)
    # carol is a finance_manager: the demo's waiting invoice is hers, the ticket review is not.
    assert f"{INVOICE_PREFIX}INV-1005" in queued
    assert f"{TRIAGE_PREFIX}INC-1004" not in queued
    assert page.locator(f'tr[data-case="{approve_id}"] .sla').inner_text() == "on track"
    # Filters: by process, and by a role nothing of hers is assigned to.
    page.goto(f"{stack.review_url}/?process=ticket-triage")
    assert _queued(page) == [] and page.locator("#queue-empty").is_visible()
    page.goto(f"{stack.review_url}/?process=invoice-exception&role=finance_manager")
    assert {approve_id, reject_id} <= set(_queued(page))

    # The case page: recommendation, policy, the audit trail and the Web UI link.
    page.click(f"a:text-is('{approve_id}')")
    assert page.locator("#recommendation").inner_text().count("invoice_analyst") >= 1
    assert "Confidence" in page.locator("#recommendation").inner_text()
    policy = page.locator("#policy").inner_text()
    assert "invoice_exception" in policy and "Version" in policy
    assert page.locator("#audit tbody tr").count() >= 10
    assert "task_opened" in page.locator("#audit").inner_text()
    web_ui = page.locator("a:has-text('open in the Temporal Web UI')").get_attribute("href")
    assert web_ui.endswith(f"/namespaces/default/workflows/{approve_id}")
    assert _case_status(page) == "awaiting_approval"

    # An amount above the invoice is refused by the case, and the page says why.
    page.fill("input[name=amount]", "99999")
    page.fill("textarea[name=comment]", "pay it all")
    page.click("button.approve")
    refusal = page.locator("#refused").inner_text()
    assert "edited amount 99,999 EUR is above 12,600.00 EUR, the amount this task is for" in refusal
    assert _case_status(page) == "awaiting_approval"

    # Approve an edited amount, with a comment.
    page.fill("input[name=amount]", "12000.00")
    page.fill("textarea[name=comment]", "only the PO price")
    page.click("button.approve")
    assert "approve of 12,000.00 EUR by carol recorded" in page.locator(".flash").inner_text()
    _until(page, f"{approve_id} to be paid", lambda: _case_status(page) == "paid")
    assert (
        "carol chose approve for 12000.00 EUR: only the PO price"
        in page.locator("#audit").inner_text()
    )
    assert page.locator("#no-open-tasks").is_visible()

    # Reject the other one.
    page.goto(f"{stack.review_url}/cases/{reject_id}")
    page.fill("textarea[name=comment]", "surcharge not agreed with the supplier")
    page.click("button.reject")
    assert "reject by carol recorded" in page.locator(".flash").inner_text()
    _until(page, f"{reject_id} to be rejected", lambda: _case_status(page) == "rejected")

    # Both have left the queue; the demo's invoice is still there.
    page.goto(f"{stack.review_url}/")
    queued = _queued(page)
    assert approve_id not in queued and reject_id not in queued
    assert f"{INVOICE_PREFIX}INV-1005" in queued

    # The report page shows the KPIs as charts.
    page.goto(f"{stack.review_url}/report")
    assert page.locator("svg.chart").count() >= 6
    assert "Override rate" in page.locator("#headline").inner_text()
    # Where cases stall, and a process map per process, drawn on the server.
    assert "of closed human tasks on time" in page.locator("#sla-attainment").inner_text()
    assert page.locator("#step-times tbody tr").count() >= 10
    assert page.locator("#task-times tbody tr").count() >= 3
    maps = page.locator("#process-maps svg.process-map")
    assert maps.count() >= len(DEMO_PROCESSES)
    assert "task_opened" in page.locator("#process-maps").inner_text()


def test_a_user_without_the_role_does_not_see_the_task(stack: Stack, browser: Any) -> None:
    bob = _sign_in(browser, stack, "bob")
    # bob (ap_supervisor, limit 5,000) may decide neither the 12,600 EUR invoice nor a ticket.
    assert f"{INVOICE_PREFIX}INV-1005" not in _queued(bob)
    assert f"{TRIAGE_PREFIX}INC-1004" not in _queued(bob)
    # Nor, having no part in it, may he see it: the page says there is no such case.
    shown = bob.goto(f"{stack.review_url}/cases/{INVOICE_PREFIX}INV-1005")
    assert shown.status == 404
    assert bob.locator("h1").inner_text() == f"No case {INVOICE_PREFIX}INV-1005"
    assert bob.locator("form.decide").count() == 0

    frank = _sign_in(browser, stack, "frank")
    assert _queued(frank) == [f"{TRIAGE_PREFIX}INC-1004"]
    # alice (ap_clerk) submits invoices and decides none.
    alice = _sign_in(browser, stack, "alice")
    assert _queued(alice) == []


def test_a_forged_form_post_is_refused(stack: Stack, browser: Any) -> None:
    case_id = f"{INVOICE_PREFIX}INV-1005"
    page = _sign_in(browser, stack, "carol")
    session = {c["name"]: c["value"] for c in page.context.cookies()}
    decide = f"{stack.review_url}/cases/{case_id}/decide"
    form = {"action": "approve", "comment": "forged"}

    with httpx.Client(trust_env=False, timeout=10, cookies=session) as http:
        # With carol's session but no CSRF token, or a made-up one.
        missing = http.post(decide, data=form)
        wrong = http.post(decide, data=form | {"csrf_token": "0" * 64})
    with httpx.Client(trust_env=False, timeout=10) as http:
        anonymous = http.post(decide, data=form | {"csrf_token": "0" * 64})
    assert (missing.status_code, wrong.status_code, anonymous.status_code) == (403, 403, 403)
    assert "CSRF" in missing.text

    # A page on another site posting the form in carol's browser: her cookie stays home.
    forged = page.context.new_page()
    forged.set_content(
        f'<form method="post" action="{decide}"><input name="action" value="approve">'
        '<input name="comment" value="forged"><button id="go">go</button></form>'
    )
    with forged.expect_navigation():
        forged.click("#go")
    assert "refused" in forged.content()

    # The task is still open, and carol's own form still works.
    page.goto(f"{stack.review_url}/cases/{case_id}")
    assert _case_status(page) == "awaiting_approval"
    assert page.locator("form.decide").count() == 1
    trail = stack.audit(case_id)
    assert not any(event["kind"] == "human_decision" for event in trail)
