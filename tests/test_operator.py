"""The operator's view of a running stack: KPIs, metrics and the review queue in a browser.

One embedded stack (``casework up``: dev server, sandbox, the real worker with its metrics
endpoint, the review queue) on free ports under a temporary CASEWORK_HOME, with ``casework demo``
run once. The report and metrics tests come first and check the demo's cases; the browser tests
then start cases of their own and decide them, which changes both.

Browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright; ``.ci/run``
installs it. Without it they are skipped locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BIN

CASEWORK = str(BIN / "casework")
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


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Stack:
    env: dict[str, str]
    home: Path
    review_url: str
    metrics_url: str
    sandbox_url: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CASEWORK, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert result.returncode == 0, f"casework {args}: {result.stdout}\n{result.stderr}"
        return result

    def password(self, user: str) -> str:
        handout = (self.home / "ui" / "demo-credentials.txt").read_text()
        (line,) = [line for line in handout.splitlines() if line.startswith(f"{user} ")]
        return line.split()[1]

    def audit(self, case_id: str) -> list[dict[str, Any]]:
        trail = self.run("audit", case_id, "--jsonl").stdout
        lines = [json.loads(line) for line in trail.splitlines()]
        # Plain events, or events inside a hash-chained export (which ends with a summary line).
        return [line.get("event", line) for line in lines if not line.get("end")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("operator") / "casework"
    temporal, ui, sandbox, review, metrics = _free_ports(5)
    env = {
        **os.environ,
        "CASEWORK_HOME": str(home),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
        "CASEWORK_UI_URL": f"http://localhost:{ui}",
        "CASEWORK_SANDBOX_URL": f"http://127.0.0.1:{sandbox}",
        "CASEWORK_REVIEW_URL": f"http://127.0.0.1:{review}",
        "CASEWORK_METRICS_ADDRESS": f"127.0.0.1:{metrics}",
        "CASEWORK_TASK_QUEUE": "casework-operator-test",
    }
    env.pop("CASEWORK_MODEL", None)
    stack = Stack(
        env=env,
        home=home,
        review_url=f"http://127.0.0.1:{review}",
        metrics_url=f"http://127.0.0.1:{metrics}/metrics",
        sandbox_url=f"http://127.0.0.1:{sandbox}",
    )
    try:
        up = stack.run("up")
        assert "review queue healthy" in up.stdout and "passwords created" in up.stdout
        stack.run("demo")
        yield stack
    finally:
        stack.run("down", check=False)


# -- KPIs ---------------------------------------------------------------------------------------


def test_report_json_matches_the_demo_cases(stack: Stack) -> None:
    report = json.loads(stack.run("report", "--json").stdout)

    invoices = [f"{INVOICE_PREFIX}INV-100{n}" for n in range(1, 6)]
    tickets = [f"{TRIAGE_PREFIX}INC-100{n}" for n in range(1, 5)]
    assert report["cases"] == 9
    assert report["cases_by_process_and_status"] == {
        "invoice-exception": {
            "awaiting_approval": 1,
            "failed_compensated": 1,
            "paid": 2,
            "rejected": 1,
        },
        "ticket-triage": {"assigned": 1, "awaiting_approval": 1, "escalated": 1, "resolved": 1},
    }
    assert report["backlog_by_role"] == {"finance_manager": 1, "service_desk_lead": 1}
    assert report["sla"] | {"at_risk_tasks": None, "breached_tasks": None} == {
        "on_track": 2,
        "at_risk": 0,
        "breached": 0,
        "at_risk_tasks": None,
        "breached_tasks": None,
    }
    # Straight through by policy: INV-1001 (paid), INV-1004 (paid, then compensated) and the
    # three tickets the policy routed; INV-1002/3/5 and INC-1004 went to a person.
    assert report["auto_approval"] == {"count": 5, "of": 9, "rate": round(5 / 9, 4)}
    assert report["auto_approval_by_process"]["invoice-exception"]["count"] == 2
    assert report["auto_approval_by_process"]["ticket-triage"]["count"] == 3

    # The rest is checked against each case's own audit trail, read through `casework audit`.
    trails = {case_id: stack.audit(case_id) for case_id in invoices + tickets}
    confidences: dict[str, list[float]] = defaultdict(list)
    decisions = overrides = 0
    for case_id, events in trails.items():
        process = "invoice-exception" if case_id.startswith(INVOICE_PREFIX) else "ticket-triage"
        recommended = None
        for event in events:
            if event["kind"] == "agent_proposal":
                confidences[process].append(event["data"]["confidence"])
                recommended = event["data"]["recommended_action"]
            if event["kind"] == "human_decision" and recommended:
                decisions += 1
                overrides += event["data"]["decision"]["action"] != recommended
    # bob approved INV-1002 and carol rejected INV-1003.
    assert decisions == 2
    assert report["override"]["of"] == decisions and report["override"]["count"] == overrides
    assert report["confidence"]["count"] == 9
    assert report["confidence"]["by_process"] == {k: v for k, v in confidences.items()}
    assert sum(report["confidence"]["buckets"]) == 9

    # One model call per invoice; the triage agent's calls are those its regions recorded.
    region_calls = sum(
        1
        for ticket in tickets
        for event in stack.audit(f"{ticket}-agent")
        if event["kind"] == "model_call"
    )
    usage = report["model_usage_by_process"]
    assert (usage["invoice-exception"]["model_calls"], usage["invoice-exception"]["cases"]) == (
        5,
        5,
    )
    assert usage["ticket-triage"]["model_calls"] == region_calls >= 4
    # The offline stand-in spends nothing, and says so.
    assert report["model_usage"]["tokens"] == 0 and report["model_usage"]["cost_usd"] == 0
    assert report["model_usage"]["model_calls"] == 5 + region_calls
    assert report["model_usage_by_case"][invoices[0]]["model_calls"] == 1

    (compensation,) = report["compensations"]
    assert compensation["case_id"] == f"{INVOICE_PREFIX}INV-1004" and compensation["ok"]
    assert re.fullmatch(r"payment PAY-\d+ of 1,200\.00 EUR reversed", compensation["step"])
    (failure,) = report["failures"]
    assert failure["case_id"] == f"{INVOICE_PREFIX}INV-1004"
    assert failure["status"] == "failed_compensated" and "503" in failure["reason"]

    # Seven cases closed; their median from Temporal's own start and close times.
    closed = []
    for case_id in invoices + tickets:
        shown = json.loads(stack.run("show", case_id, "--json").stdout)
        if shown["execution_status"] == "COMPLETED":
            closed.append(case_id)
    assert report["cycle_time"]["count"] == len(closed) == 7
    assert 0 < report["cycle_time"]["median_seconds"] < 300


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


def test_worker_metrics_count_the_demo_cases_once(stack: Stack) -> None:
    metrics = _scrape(stack.metrics_url)
    invoice, triage = {"case_type": "invoice-exception"}, {"case_type": "ticket-triage"}

    assert _total(metrics, "casework_cases_started_total", **invoice) == 5
    assert _total(metrics, "casework_cases_started_total", **triage) == 4
    completed = {
        status: _total(metrics, "casework_cases_completed_total", status=status)
        for status in (
            "paid",
            "rejected",
            "failed_compensated",
            "resolved",
            "assigned",
            "escalated",
        )
    }
    assert completed == {
        "paid": 2,
        "rejected": 1,
        "failed_compensated": 1,
        "resolved": 1,
        "assigned": 1,
        "escalated": 1,
    }
    assert _total(metrics, "casework_decisions_total", kind="approve") == 1
    assert _total(metrics, "casework_decisions_total", kind="reject") == 1
    assert _total(metrics, "casework_decisions_total", kind="auto", **invoice) == 2
    assert _total(metrics, "casework_decisions_total", kind="auto", **triage) == 3
    assert _total(metrics, "casework_compensations_total", result="ok") == 1
    assert _total(metrics, "casework_agent_proposals_total") == 9
    assert _total(metrics, "casework_model_calls_total", **invoice) == 5
    assert _total(metrics, "casework_model_calls_total", **triage) >= 4
    assert _total(metrics, "casework_agent_budget_exhausted_total") == 0
    # The SDK's own runtime metrics are served beside casework's.
    assert any(name.startswith("temporal_") for name in metrics)
    assert _total(metrics, "temporal_workflow_completed_total") >= 7

    # Queries on closed cases replay them on the worker: nothing may be counted twice.
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
    assert "edited amount 99,999.00 must be above 0 and at most 12,600.00" in refusal
    assert _case_status(page) == "awaiting_approval"

    # Approve an edited amount, with a comment.
    page.fill("input[name=amount]", "12000.00")
    page.fill("textarea[name=comment]", "only the PO price")
    page.click("button.approve")
    assert "approve by carol recorded" in page.locator(".flash").inner_text()
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


def test_a_user_without_the_role_does_not_see_the_task(stack: Stack, browser: Any) -> None:
    bob = _sign_in(browser, stack, "bob")
    # bob (ap_supervisor, limit 5,000) may decide neither the 12,600 EUR invoice nor a ticket.
    assert f"{INVOICE_PREFIX}INV-1005" not in _queued(bob)
    assert f"{TRIAGE_PREFIX}INC-1004" not in _queued(bob)
    bob.goto(f"{stack.review_url}/cases/{INVOICE_PREFIX}INV-1005")
    assert bob.locator("form.decide").count() == 0
    assert "You may not decide this task" in bob.content()

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
