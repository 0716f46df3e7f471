"""Running casework as a new user does, with the embedded stack: where its home is, closed and
unreadable cases, a business key's runs, the review queue's sessions, and the CLI's rough edges.

One stack for the module, started the way a new user starts it: no CASEWORK_HOME, from a folder
with no ``.casework`` above it, so ``casework up`` creates the per-user home (``~/.casework``,
with HOME pointing at a temporary folder). Every command after it runs from somewhere else, again
without CASEWORK_HOME, so each test also shows that the home is found the same way from anywhere.
The review queue is driven over HTTP as a browser would, against the running app; the sign-in
throttle test comes last, since it leaves this client's address throttled.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from temporalio.client import Client

from casework.catalogue import discover
from casework.codec import KeyRing
from casework.converter import encrypting_converter
from casework.testing.stack import Stack, stack_on_free_ports
from casework.testing.temporal import BIN

INVOICE = "invoice-exception"


@pytest.fixture(scope="module")
def user_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("user")


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with no .casework in it or above it: commands run from here."""
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture(scope="module")
def stack(user_home: Path, elsewhere: Path) -> Iterator[Stack]:
    stack = stack_on_free_ports(
        user_home / ".casework",
        task_queue="casework-operations-test",
        env={"HOME": str(user_home)},
        home_from_env=False,
    )
    started_from = elsewhere / "first"
    started_from.mkdir()
    try:
        up = stack.run("up", cwd=started_from)
        assert "review queue healthy" in up.stdout, up.stdout + up.stderr
        assert (user_home / ".casework" / "codec-keys.json").is_file()
        assert not (started_from / ".casework").exists()
        stack.demo_stdout = stack.run("demo", cwd=elsewhere).stdout
        yield stack
    finally:
        stack.run("down", check=False, cwd=started_from)


def run(
    stack: Stack, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``casework ARGS`` from ``cwd``, failing the test on a traceback whatever the exit code."""
    result = subprocess.run(
        [str(BIN / "casework"), *args],
        env=env or stack.env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def temporal(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "temporal"), *args], env=stack.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def shown(stack: Stack, case_id: str, cwd: Path) -> dict[str, Any]:
    return json.loads(run(stack, "show", case_id, "--json", cwd=cwd).stdout)


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return value


def seed_invoice(stack: Stack, number: int, unit_price: str = "31.50", quantity: int = 400) -> None:
    """PO, goods receipt and invoice: ``quantity`` units at 30.00, invoiced at ``unit_price``
    (by default a 5% variance on 12,600.00 EUR, which waits for a finance_manager)."""
    line = {"sku": "BRK-220", "description": "Brake assembly", "quantity": quantity}
    with httpx.Client(base_url=stack.sandbox_url, timeout=10, trust_env=False) as sandbox:
        for path, body in [
            (
                "/erp/purchase-orders",
                {
                    "po_number": f"PO-{number}",
                    "supplier_id": "SUP-ACME",
                    "lines": [line | {"unit_price": "30.00"}],
                },
            ),
            (
                "/erp/goods-receipts",
                {
                    "receipt_id": f"GR-{number}",
                    "po_number": f"PO-{number}",
                    "lines": [{"sku": "BRK-220", "quantity_received": quantity}],
                },
            ),
            (
                "/erp/invoices",
                {
                    "invoice_id": f"INV-{number}",
                    "supplier_id": "SUP-ACME",
                    "po_number": f"PO-{number}",
                    "lines": [line | {"unit_price": unit_price}],
                },
            ),
        ]:
            response = sandbox.post(path, json=body)
            assert response.status_code == 201, response.text


def invoice_input(number: int, submitted_by: str = "alice") -> str:
    return json.dumps({"invoice_id": f"INV-{number}", "submitted_by": submitted_by})


def waiting_invoice(stack: Stack, number: int, cwd: Path, *extra: str) -> str:
    seed_invoice(stack, number)
    started = run(
        stack, "start", INVOICE, "--input", invoice_input(number), "--wait", *extra, cwd=cwd
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "waiting for finance_manager" in started.stdout
    return started.stdout.splitlines()[0].removeprefix("started ")


# -- defect 4: one home from anywhere, never plaintext by accident ------------------------------


def test_status_from_anywhere_reports_the_stack_the_per_user_home_runs(
    stack: Stack, user_home: Path, elsewhere: Path
) -> None:
    status = run(stack, "status", cwd=elsewhere)
    assert status.returncode == 0, status.stdout
    assert f"home      {user_home / '.casework'} (the per-user default)" in status.stdout
    for component in ("codec", "temporal", "sandbox", "worker", "ui"):
        assert re.search(rf"^{component}\s+healthy \(pid \d+\)$", status.stdout, re.M), component
    # From the user's home folder too, and from deep inside it.
    deep = user_home / "projects" / "x"
    deep.mkdir(parents=True)
    assert run(stack, "status", cwd=deep).returncode == 0


def test_a_project_home_without_the_key_ring_never_sends_plaintext(
    stack: Stack, elsewhere: Path
) -> None:
    # A project with a .casework of its own (empty: no stack, no key ring), used from inside.
    project = elsewhere / "project"
    inside = project / "src" / "deep"
    inside.mkdir(parents=True)
    (project / ".casework").mkdir()
    real_home = Path(stack.env["HOME"]) / ".casework"

    status = run(stack, "status", cwd=inside)
    assert status.returncode == 1
    assert f"{project / '.casework'} (the nearest .casework above {inside})" in status.stdout
    # It says which stack runs, and whose home that is.
    assert "another process listens on its port" in status.stdout
    assert f"CASEWORK_HOME={real_home}" in status.stdout

    seed_invoice(stack, 6001)
    start = run(stack, "start", INVOICE, "--input", invoice_input(6001), cwd=inside)
    assert start.returncode == 1
    assert "refusing to send unencrypted" in start.stderr
    assert f"its home: {real_home}" in start.stderr
    # Nothing was started; the case can still be started encrypted from the right home.
    missing = run(stack, "show", f"{INVOICE}-INV-6001", cwd=elsewhere)
    assert missing.returncode == 1 and "no case" in missing.stderr
    # Reading an encrypted case from there says why it cannot, not a traceback.
    read = run(stack, "show", f"{INVOICE}-INV-1001", cwd=inside)
    assert read.returncode == 1
    assert "encrypted" in read.stderr and str(project / ".casework") in read.stderr
    # Named explicitly, the same home works from the project too.
    named = run(
        stack,
        "show",
        f"{INVOICE}-INV-1001",
        cwd=inside,
        env={**stack.env, "CASEWORK_HOME": str(real_home)},
    )
    assert named.returncode == 0 and "paid" in named.stdout


# -- defect 6: closed cases stop looking open ---------------------------------------------------


def test_a_terminated_case_leaves_the_inbox_and_the_report_counts_it(
    stack: Stack, elsewhere: Path
) -> None:
    kept, ended = waiting_invoice(stack, 6101, elsewhere), waiting_invoice(stack, 6102, elsewhere)
    temporal(stack, "workflow", "terminate", "--workflow-id", ended, "--reason", "entered twice")

    inbox = json.loads(run(stack, "inbox", "--json", cwd=elsewhere).stdout)
    listed = {task["case_id"] for task in inbox}
    assert kept in listed and ended not in listed

    show = run(stack, "show", ended, cwd=elsewhere)
    assert show.returncode == 0
    assert "case status:   workflow_terminated (it was awaiting_approval" in show.stdout
    assert "casework approve" not in show.stdout and "open task:" not in show.stdout
    assert "terminated:    entered twice" in show.stdout
    assert shown(stack, ended, elsewhere)["open_tasks"] == []

    report = json.loads(run(stack, "report", "--json", cwd=elsewhere).stdout)
    assert set(report["cases_by_ending"]) == {
        "running",
        "completed",
        "failed",
        "terminated",
        "cancelled",
        "timed_out",
    }
    assert report["cases_by_ending"]["terminated"] >= 1
    assert sum(report["cases_by_ending"].values()) == report["cases"]
    assert report["cases_by_process_and_status"][INVOICE]["workflow_terminated"] >= 1
    # The report's backlog is the inbox's, task for task.
    approvals = Counter(task["role"] for task in inbox if task["kind"] == "approval")
    assert report["backlog_by_role"] == dict(approvals)


def test_a_case_that_fails_at_start_reads_as_failed(stack: Stack, elsewhere: Path) -> None:
    # casework refuses an unknown submitter before starting; the Temporal CLI does not.
    seed_invoice(stack, 6201)
    refused = run(stack, "start", INVOICE, "--input", invoice_input(6201, "zed"), cwd=elsewhere)
    assert refused.returncode == 1
    assert "submitted_by: 'zed' is not in the approval directory" in refused.stderr
    assert "no case" in run(stack, "show", f"{INVOICE}-INV-6201", cwd=elsewhere).stderr

    case_id = f"{INVOICE}-INV-6201"
    temporal(
        stack,
        "workflow",
        "start",
        "--task-queue",
        stack.env["CASEWORK_TASK_QUEUE"],
        "--type",
        "InvoiceException",
        "--workflow-id",
        case_id,
        "--search-attribute",
        f'CaseType="{INVOICE}"',
        "--input",
        invoice_input(6201, "zed"),
    )
    failed = until(
        lambda: (s := shown(stack, case_id, elsewhere))["execution_status"] == "FAILED" and s,
        f"{case_id} to fail",
    )
    assert failed["status"] == "workflow_failed"
    assert "is not in the approval directory" in failed["failure"]
    text = run(stack, "show", case_id, cwd=elsewhere).stdout
    assert "workflow_failed (it was analysing when its workflow failed)" in text
    report = json.loads(run(stack, "report", "--json", cwd=elsewhere).stdout)
    (failure,) = [f for f in report["failures"] if f["case_id"] == case_id]
    assert failure["status"] == "workflow_failed"
    assert "analysing" not in report["cases_by_process_and_status"][INVOICE]


# -- defect 7: a business key's runs ------------------------------------------------------------


def test_a_case_is_its_workflow_id_however_many_runs(stack: Stack, elsewhere: Path) -> None:
    case_id = f"{INVOICE}-INV-6301"
    # 3,000.00 EUR matching PO and receipt: approved by policy and paid.
    seed_invoice(stack, 6301, unit_price="30.00", quantity=100)
    # A first run that fails (unknown submitter, started without casework's check) ...
    temporal(
        stack,
        "workflow",
        "start",
        "--task-queue",
        stack.env["CASEWORK_TASK_QUEUE"],
        "--type",
        "InvoiceException",
        "--workflow-id",
        case_id,
        "--search-attribute",
        f'CaseType="{INVOICE}"',
        "--input",
        invoice_input(6301, "zed"),
    )
    until(lambda: shown(stack, case_id, elsewhere)["execution_status"] == "FAILED", "failure")
    # ... may be started again: the business key's last run did not complete.
    again = run(stack, "start", INVOICE, "--input", invoice_input(6301), "--wait", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert "paid:" in again.stdout
    # A completed one may not.
    third = run(stack, "start", INVOICE, "--input", invoice_input(6301), cwd=elsewhere)
    assert third.returncode == 1
    assert f"case {case_id} already exists and ended paid" in third.stderr

    show = run(stack, "show", case_id, cwd=elsewhere).stdout
    assert "2 runs under this case ID; shown: the latest" in show
    assert re.search(r"started .* UTC: workflow_failed", show)
    data = shown(stack, case_id, elsewhere)
    assert data["status"] == "paid" and len(data["runs"]) == 2
    earlier = [r["run_id"] for r in data["runs"] if r["execution_status"] == "failed"]
    old = run(stack, "show", case_id, "--run", earlier[0], cwd=elsewhere).stdout
    assert "workflow_failed" in old and "shown: run" in old
    audit = run(stack, "audit", case_id, cwd=elsewhere).stdout
    assert "2 runs under this case ID" in audit

    report = json.loads(run(stack, "report", "--json", cwd=elsewhere).stdout)
    listed = json.loads(
        temporal(stack, "workflow", "list", "--query", "CaseType IS NOT NULL", "-o", "json").stdout
    )
    # A case is a run of a process's workflow, top-level or the child of another case (a
    # post-incident review a severity-1 triage starts); agent regions are their parents'.
    cases = [w for w in listed if w["type"]["name"] in discover().case_workflow_types]
    assert report["runs"] == len(cases)
    assert report["cases"] == len({w["execution"]["workflowId"] for w in cases})
    assert report["cases"] < report["runs"]
    statuses = report["cases_by_process_and_status"][INVOICE]
    assert sum(statuses.values()) == report["cases_by_process"][INVOICE]


# -- one unreadable case never takes down a list ------------------------------------------------


async def _poison(stack: Stack, case_id: str) -> None:
    """Signal ``case_id`` with a payload under a key the stack does not hold: the worker cannot
    decode it, so the case's workflow task fails on every attempt and its queries with it."""
    foreign = await Client.connect(
        stack.env["TEMPORAL_ADDRESS"], data_converter=encrypting_converter(KeyRing.generate())
    )
    await foreign.get_workflow_handle(case_id).signal("decide", {"approver": "carol"})


def test_an_unreadable_case_is_named_and_left_out(stack: Stack, elsewhere: Path) -> None:
    readable, poisoned = (
        waiting_invoice(stack, 6401, elsewhere),
        waiting_invoice(stack, 6402, elsewhere),
    )
    asyncio.run(_poison(stack, poisoned))
    until(
        lambda: run(stack, "show", poisoned, cwd=elsewhere).returncode == 1,
        "the poisoned case to stop answering",
    )

    show = run(stack, "show", poisoned, cwd=elsewhere)
    assert "unreadable:    the case cannot answer queries" in show.stdout
    audit = run(stack, "audit", poisoned, cwd=elsewhere)
    assert audit.returncode == 1 and f"the audit trail of {poisoned} cannot be read" in audit.stderr

    inbox = run(stack, "inbox", cwd=elsewhere)
    assert inbox.returncode == 0
    assert readable in inbox.stdout and poisoned not in inbox.stdout
    assert f"left out {poisoned}, which cannot be read" in inbox.stderr
    for role in ("finance_manager", "cfo"):
        assert run(stack, "inbox", "--role", role, cwd=elsewhere).returncode == 0

    report = run(stack, "report", "--json", cwd=elsewhere)
    assert report.returncode == 0
    assert poisoned in json.loads(report.stdout)["unreadable_audit"]

    page = ReviewQueue(stack).sign_in("carol")
    queue = page.get("/")
    assert queue.status_code == 200
    assert readable in queue.text
    (note,) = re.findall(
        r'<div class="refused" role="alert" id="unreadable">(.*?)</div>', queue.text, re.S
    )
    assert poisoned in note
    assert page.get(f"/cases/{quote(poisoned, safe='')}").status_code == 503
    temporal(stack, "workflow", "terminate", "--workflow-id", poisoned, "--reason", "poisoned")


# -- rough edges --------------------------------------------------------------------------------


def test_show_of_an_agent_region_and_of_input_that_never_decoded(
    stack: Stack, elsewhere: Path
) -> None:
    region = run(stack, "show", "ticket-triage-INC-1001-agent", cwd=elsewhere)
    assert region.returncode == 0, region.stderr
    assert "result:        answered:" in region.stdout

    temporal(
        stack,
        "workflow",
        "start",
        "--task-queue",
        stack.env["CASEWORK_TASK_QUEUE"],
        "--type",
        "InvoiceException",
        "--workflow-id",
        "undecodable-input",
        "--input",
        '{"invoiceId": 1}',
    )
    failed = until(
        lambda: (
            (r := run(stack, "show", "undecodable-input", cwd=elsewhere)).returncode == 0
            and "failed:" in r.stdout
            and r
        ),
        "the undecodable case to fail",
    )
    assert "invalid InvoiceExceptionInput: invoice_id: Field required" in failed.stdout
    assert "workflow_failed" in failed.stdout


def test_bad_case_ids_and_inputs_are_refused_up_front(stack: Stack, elsewhere: Path) -> None:
    long = run(
        stack, "start", INVOICE, "--input", invoice_input(6501), "--id", "x" * 1100, cwd=elsewhere
    )
    assert long.returncode == 1
    assert "--id is 1,100 bytes long; a case ID is at most 1,000" in long.stderr
    spaced = run(
        stack, "start", INVOICE, "--input", invoice_input(6501), "--id", "a b", cwd=elsewhere
    )
    assert spaced.returncode == 1 and "no spaces" in spaced.stderr
    folder = run(stack, "start", INVOICE, "--input", f"@{elsewhere}", cwd=elsewhere)
    assert folder.returncode == 1 and "is a directory, not a JSON file" in folder.stderr
    bare = run(stack, "start", INVOICE, "--input", "@", cwd=elsewhere)
    assert bare.returncode == 1 and "--input @ needs a file name" in bare.stderr


def test_acknowledge_on_a_case_without_the_step_says_so(stack: Stack, elsewhere: Path) -> None:
    result = run(stack, "acknowledge", f"{INVOICE}-INV-1005", "--as", "ivy", cwd=elsewhere)
    assert result.returncode == 1
    assert "(InvoiceException) has no acknowledge step" in result.stderr
    assert "expected but not found" not in result.stderr


def test_inbox_by_role_lists_what_the_role_may_decide(stack: Stack, elsewhere: Path) -> None:
    everything = json.loads(run(stack, "inbox", "--json", cwd=elsewhere).stdout)
    cfo = json.loads(run(stack, "inbox", "--role", "cfo", "--json", cwd=elsewhere).stdout)
    # dave (cfo) may decide the finance_manager's invoices: cfo is among their eligible roles.
    assert {t["task_id"] for t in cfo} == {
        t["task_id"] for t in everything if "cfo" in t["eligible_roles"]
    }
    assert any(t["role"] == "finance_manager" for t in cfo)
    unknown = run(stack, "inbox", "--role", "boss", cwd=elsewhere)
    assert unknown.returncode == 1 and "no role 'boss' in the directory; roles:" in unknown.stderr


def test_a_case_id_with_shell_characters_is_quoted_and_opens_in_the_queue(
    stack: Stack, elsewhere: Path
) -> None:
    case_id = "acme/INV-6601&co"
    started = waiting_invoice(stack, 6601, elsewhere, "--id", case_id)
    assert started == case_id
    show = run(stack, "show", case_id, cwd=elsewhere).stdout
    assert "casework approve 'acme/INV-6601&co' --as USER" in show

    page = ReviewQueue(stack).sign_in("carol")
    queue = page.listing("INV-6601")
    (href,) = re.findall(r'href="(/cases/[^"]*INV-6601[^"]*)"', queue)
    case_page = page.get(href)
    assert case_page.status_code == 200
    assert 'id="case-status">awaiting_approval<' in case_page.text


def test_audit_verify_checks_the_file_is_the_cases(stack: Stack, elsewhere: Path) -> None:
    export = elsewhere / "inv-1001.jsonl"
    export.write_text(run(stack, "audit", f"{INVOICE}-INV-1001", "--jsonl", cwd=elsewhere).stdout)
    mine = run(stack, "audit", f"{INVOICE}-INV-1001", "--verify", str(export), cwd=elsewhere)
    assert mine.returncode == 0 and "verified" in mine.stdout
    other = run(stack, "audit", f"{INVOICE}-INV-1002", "--verify", str(export), cwd=elsewhere)
    assert other.returncode == 1
    assert f"is the audit trail of {INVOICE}-INV-1001, not of {INVOICE}-INV-1002" in other.stderr


# -- defect 5: the review queue's sessions and sign-in (last: it throttles this address) --------


class ReviewQueue:
    """The running review queue, as a browser uses it: cookies kept, forms with their token."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.review_url, trust_env=False, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def token(self, path: str = "/login") -> str:
        (token,) = re.findall(r'name="csrf_token" value="([0-9a-f]+)"', self.get(path).text)[:1]
        return token

    def try_sign_in(self, user: str, password: str) -> httpx.Response:
        return self.http.post(
            "/login", data={"user": user, "password": password, "csrf_token": self.token()}
        )

    def sign_in(self, user: str) -> ReviewQueue:
        response = self.try_sign_in(user, self.stack.password(user))
        assert response.status_code == 303 and response.headers["location"] == "/", response.text
        return self

    def listing(self, text: str) -> str:
        """The queue's list once it shows ``text``: it reads the server's visibility store,
        which sees a new case's status a moment after the case does."""

        def shown() -> str | None:
            page = self.get("/").text
            return page if text in page else None

        return str(until(shown, f"{text} in the queue"))


def test_signing_out_ends_the_session_on_the_server(stack: Stack, elsewhere: Path) -> None:
    case_id = waiting_invoice(stack, 6701, elsewhere)
    carol = ReviewQueue(stack).sign_in("carol")
    assert case_id in carol.listing(case_id)
    kept_cookies = dict(carol.http.cookies)
    token = carol.token(f"/cases/{quote(case_id, safe='')}")

    signed_out = carol.http.post("/logout", data={"csrf_token": token})
    assert signed_out.status_code == 303

    # The cookie copied before sign-out: no page, no decision.
    with httpx.Client(base_url=stack.review_url, trust_env=False, cookies=kept_cookies) as old:
        page = old.get("/")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        decided = old.post(
            f"/cases/{quote(case_id, safe='')}/decide",
            data={"csrf_token": token, "action": "reject", "comment": "after sign-out"},
        )
        assert decided.status_code == 403 and "not signed in" in decided.text
    assert shown(stack, case_id, elsewhere)["status"] == "awaiting_approval"
    # From elsewhere, as the other commands here: a .casework in the checkout would be found.
    decisions = [e for e in stack.audit(case_id, cwd=elsewhere) if e["kind"] == "human_decision"]
    assert not decisions


def test_sign_in_attempts_are_throttled_per_user_and_per_address(stack: Stack) -> None:
    browser = ReviewQueue(stack)
    for _ in range(5):
        wrong = browser.try_sign_in("erin", "not her password")
        assert wrong.status_code == 303 and "error=1" in wrong.headers["location"]
    # The sixth is refused before the password is looked at, a right one too.
    for password in ("still wrong", stack.password("erin")):
        refused = browser.try_sign_in("erin", password)
        assert refused.status_code == 429
        assert "Too many failed sign-ins for erin: try again in 15 minutes." in refused.text
    # Someone else on this address may still sign in ...
    assert ReviewQueue(stack).sign_in("frank")
    # ... until this address has failed 20 times, whoever it tried.
    for attempt in range(15):
        browser.try_sign_in(f"guess{attempt}", "x")
    refused = ReviewQueue(stack).try_sign_in("frank", stack.password("frank"))
    assert refused.status_code == 429
    assert "Too many failed sign-ins from this address" in refused.text
