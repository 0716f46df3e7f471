"""Acting on tasks from the review queue in Chromium, and who may see which case.

One embedded stack (``casework up``) whose worker calls a scripted OpenAI-compatible server over
HTTP: every agent answers as its offline stand-in would, except the triage agent of one ticket,
which asks a service-desk lead a question first. The tests start cases of their own (an invoice
for a finance manager, a severity-1 ticket that pages on-call, a ticket whose agent asks, a lead
for sales ops) and act on them as the directory's people, in the browser: each act moves the
case on, and is refused, with the case's reason, for someone it is not allowed to.

Browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright; ``.ci/run``
installs it. Without it they are skipped locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from activities.agents.invoice_exception import INVOICE_PROPOSAL
from activities.agents.lead_routing import LEAD_READ
from activities.agents.ticket_triage import TRIAGE_PROPOSAL
from casework.case.tasks import PageAcknowledgement, TaskAnswer
from casework.signing import sign_act
from casework.signing_keys import load_signing_key
from casework.testing.scripted_llm import (
    SCRIPTED_API_KEY,
    SCRIPTED_MODEL,
    ScriptedReply,
    case_value,
    scripted_llm_server,
    turn_of,
)
from casework.testing.stack import Stack, embedded_stack
from casework.testing.stand_in_llm import StandInResponder
from demos.invoice_exception import SUPPLIER
from demos.lead_routing import ACCOUNT_EXECUTIVES
from tests.triage_support import calls, final, tool_call

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
RUN = uuid.uuid4().hex[:6].upper()
ASKING_TICKET = f"INC-ASK-{RUN}"
QUESTION = "Is there planned VPN maintenance tonight?"


class Model:
    """The stand-ins for every agent, but the asking ticket's triage agent: it asks, then
    assigns the ticket once answered."""

    def __init__(self) -> None:
        self.stand_in = StandInResponder([INVOICE_PROPOSAL, TRIAGE_PROPOSAL, LEAD_READ])

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        if case_value(body, "ticket", "ticket_id") == ASKING_TICKET:
            if turn_of(body) == 0:
                return calls(tool_call("ask_human", {"question": QUESTION}))
            return final()
        return self.stand_in(body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("queue-acts") / "casework"
    with scripted_llm_server() as server:
        server.responder = Model()
        model_env = {
            "CASEWORK_MODEL": SCRIPTED_MODEL,
            "CASEWORK_LLM_API_BASE": server.base_url,
            "CASEWORK_LLM_API_KEY": SCRIPTED_API_KEY,
        }
        with embedded_stack(home, "casework-queue-acts-test", model_env) as stack:
            yield stack


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


# -- helpers ------------------------------------------------------------------------------------


def _sandbox(stack: Stack, *records: tuple[str, dict[str, Any]]) -> None:
    with httpx.Client(base_url=stack.sandbox_url, timeout=10, trust_env=False) as sandbox:
        for path, body in records:
            response = sandbox.post(path, json=body)
            assert response.status_code in (201, 409), response.text


def _start(stack: Stack, process: str, **fields: str) -> None:
    stack.run("start", process, "--input", json.dumps(fields))


def _sign_in(browser: Any, stack: Stack, user: str) -> Any:
    page = browser.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{stack.review_url}/")
    assert "/login" in page.url
    page.fill("#user", user)
    page.fill("#password", stack.password(user))
    page.click("button[type=submit]")
    page.wait_for_selector("h1")
    return page


def _until(
    page: Any,
    what: str,
    check: Callable[[], bool],
    timeout: float = 90,
    why: Callable[[], str] | None = None,
) -> None:
    """Reload ``page`` until ``check`` holds, or fail saying what never happened (and, with
    ``why``, how things stand instead)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            instead = f"; instead: {why()}" if why else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{instead}")
        page.wait_for_timeout(300)
        page.reload()


def _open(page: Any, stack: Stack, case_id: str) -> int:
    """Open the case page; its HTTP status."""
    response = page.goto(f"{stack.review_url}/cases/{quote(case_id, safe='')}")
    return response.status


def _queued(page: Any, stack: Stack) -> list[str]:
    page.goto(f"{stack.review_url}/")
    return page.locator("#queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.case)")


def _act(page: Any, task_index: int, act: str, reason: str, to: str = "") -> None:
    """Fill the task's hand-over form and press the act's button."""
    task = page.locator("section.task").nth(task_index)
    details = task.locator("details.handover")
    # A refused act comes back with its form open.
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    if to:
        task.locator("input[name=to]").fill(to)
    task.locator("textarea[name=reason]").fill(reason)
    task.locator(f"button.act-{act}").click()


def _refusal(page: Any) -> str:
    return page.locator("#refused").inner_text()


def _flash(page: Any) -> str:
    page.wait_for_selector(".flash, #refused")
    refused = page.locator("#refused")
    assert not refused.count(), refused.inner_text()
    return page.locator(".flash").inner_text()


def _audit_text(page: Any) -> str:
    return page.locator("#audit").inner_text()


def _keys_dir(stack: Stack) -> Path:
    named = stack.env.get("CASEWORK_SIGNING_KEYS_DIR")
    return Path(named) if named else stack.home / "signing"


def _signal(stack: Stack, case_id: str, name: str, payload: dict[str, Any]) -> str:
    """Send a signal as ``temporal workflow signal`` would: what the case made of it."""
    sent = stack.run("signal", case_id, name, "--input", json.dumps(payload), check=False)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    return sent.stderr


# -- an invoice: evidence, reassign, delegate, escalate ------------------------------------------


def _invoice_for_carol(stack: Stack, number: str) -> str:
    """Over 5,000 with a 5% price variance: waits for a finance_manager, then the cfo."""
    line = {"sku": "BRK-220", "description": "Brake assembly", "quantity": 400}
    po = f"PO-{number}"
    _sandbox(
        stack,
        (
            "/erp/purchase-orders",
            {"po_number": po, "supplier_id": "SUP-ACME", "lines": [line | {"unit_price": "30.00"}]},
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
    )
    _start(stack, "invoice-exception", invoice_id=f"INV-{number}", submitted_by="alice")
    return f"invoice-exception-INV-{number}"


def _ensure_supplier(stack: Stack) -> None:
    with httpx.Client(base_url=stack.sandbox_url, timeout=10, trust_env=False) as sandbox:
        if sandbox.get(f"/erp/suppliers/{SUPPLIER['supplier_id']}").status_code == 404:
            assert sandbox.post("/erp/suppliers", json=SUPPLIER).status_code == 201


def test_evidence_is_tables_and_a_task_is_reassigned_delegated_and_escalated_from_the_queue(
    stack: Stack, browser: Any
) -> None:
    _ensure_supplier(stack)
    case_id = _invoice_for_carol(stack, f"7{RUN}")
    carol = _sign_in(browser, stack, "carol")
    _until(carol, "the invoice in carol's queue", lambda: case_id in _queued(carol, stack))
    assert _open(carol, stack, case_id) == 200

    # Evidence for people: the invoice line beside the PO line and the receipts, as a table.
    evidence = carol.locator("section.task .evidence")
    headers = evidence.locator("table.records th").all_inner_texts()
    for column in ("sku", "invoiced_unit_price", "po_unit_price", "received_quantity"):
        assert column in headers, headers
    line = evidence.locator("table.records tbody tr").first.inner_text()
    assert "BRK-220" in line and "31.5" in line and "30" in line and "400" in line
    assert "price variance" in evidence.locator("ul").first.inner_text()
    assert "{" not in evidence.inner_text() and '"' not in evidence.inner_text()
    assert carol.locator("#policy .policy-reasons li").count() >= 1

    # Reassign: refused to someone not eligible, then to the cfo.
    _act(carol, 0, "reassign", "bob knows the supplier", to="bob")
    assert "bob (ap_supervisor) is not eligible for task" in _refusal(carol)
    _act(carol, 0, "reassign", "the cfo follows this supplier", to="dave")
    assert "carol reassigned" in _flash(carol) and "to dave" in _flash(carol)
    assert carol.locator("section.task .assigned").inner_text().startswith("dave (cfo)")
    assert "carol reassigned" in _audit_text(carol)

    # Delegate: carol no longer holds it; dave does, and hands it back with a reason.
    _act(carol, 0, "delegate", "I can take it back", to="carol")
    assert "carol does not hold task" in _refusal(carol)
    dave = _sign_in(browser, stack, "dave")
    assert _open(dave, stack, case_id) == 200
    _act(dave, 0, "delegate", "travelling until Friday", to="carol")
    assert "dave delegated" in _flash(dave)
    assert dave.locator("section.task .assigned").inner_text().startswith("carol (finance_manager)")
    assert "travelling until Friday" in _audit_text(dave)

    # Escalate: refused to the submitter, who may see the case but not act on it; carol may.
    alice = _sign_in(browser, stack, "alice")
    assert _open(alice, stack, case_id) == 200
    _act(alice, 0, "escalate", "please hurry")
    assert "alice (ap_clerk) may not act on task" in _refusal(alice)
    _open(carol, stack, case_id)
    _act(carol, 0, "escalate", "the amount needs the cfo's eye")
    assert "carol escalated" in _flash(carol) and "to cfo" in _flash(carol)
    _until(
        carol,
        "the cfo's task",
        lambda: "cfo (may decide: cfo)" in carol.locator("section.task").first.inner_text(),
    )
    assert "the amount needs the cfo's eye" in _audit_text(carol)

    # The case moves on to the end: the cfo approves it.
    _open(dave, stack, case_id)
    dave.fill("textarea[name=comment]", "fine")
    dave.click("button.approve")
    _until(
        dave, "the invoice to be paid", lambda: dave.locator("#case-status").inner_text() == "paid"
    )


# -- a severity-1 page: acknowledged from the queue -------------------------------------------


def test_a_page_is_acknowledged_from_the_queue_and_unsigned_or_forged_ones_are_refused(
    stack: Stack, browser: Any
) -> None:
    ticket_id = f"INC-SEV1-{RUN}"
    _sandbox(
        stack,
        (
            "/itsm/cis",
            {
                "ci_id": "CI-PAYDB",
                "name": "payments database",
                "kind": "database",
                "owner_team": "database-ops",
                "oncall": "ivy",
                "criticality": "critical",
            },
        ),
        (
            "/itsm/tickets",
            {
                "ticket_id": ticket_id,
                "title": "Payments database down",
                "description": "The payments database is not responding; all users see "
                "checkout errors.",
                "requester": "erin",
                "ci_id": "CI-PAYDB",
            },
        ),
    )
    _start(stack, "ticket-triage", ticket_id=ticket_id, submitted_by="erin")
    case_id = f"ticket-triage-{ticket_id}"
    ivy = _sign_in(browser, stack, "ivy")
    _until(
        ivy,
        "ivy to be paged",
        lambda: _open(ivy, stack, case_id) == 200 and bool(ivy.locator("section.page").count()),
    )

    # Unsigned, and signed by henry but claiming to be ivy: recorded and ignored, with why.
    unsigned = _signal(stack, case_id, "acknowledge", {"responder": "ivy"})
    henrys = sign_act(
        "acknowledge",
        PageAcknowledgement(responder="henry"),
        case_id,
        load_signing_key("henry", _keys_dir(stack)),
    )
    forged = _signal(
        stack, case_id, "acknowledge", henrys.model_copy(update={"responder": "ivy"}).model_dump()
    )
    assert "the acknowledge is not signed" in unsigned
    assert "the signature is not ivy's on this acknowledge" in forged

    # henry has no part in the case: no such case for him.
    henry = _sign_in(browser, stack, "henry")
    assert _open(henry, stack, case_id) == 404
    # erin submitted it and may see it, but was not paged: the case refuses her acknowledgement.
    erin = _sign_in(browser, stack, "erin")
    assert _open(erin, stack, case_id) == 200
    erin.click("section.page button[value=acknowledge]")
    assert "erin was not paged; paged so far: ivy" in _refusal(erin)

    _open(ivy, stack, case_id)
    ivy.click("section.page button[value=acknowledge]")
    assert f"ivy acknowledged the page for {case_id}" in _flash(ivy)
    _until(ivy, "the page to close", lambda: ivy.locator("section.page").count() == 0)
    assert "ivy acknowledged the page" in _audit_text(ivy)
    trail = stack.audit(case_id)
    refused = [e["summary"] for e in trail if e["kind"] == "decision_refused"]
    assert len(refused) == 2, refused


# -- an agent's question: answered from the queue -----------------------------------------------


def test_an_agents_question_is_answered_from_the_queue_and_unsigned_or_forged_answers_refused(
    stack: Stack, browser: Any
) -> None:
    _sandbox(
        stack,
        (
            "/itsm/tickets",
            {
                "ticket_id": ASKING_TICKET,
                "title": "VPN drops every evening",
                "description": "The VPN disconnects around 22:00 every day.",
                "requester": "erin",
            },
        ),
    )
    _start(stack, "ticket-triage", ticket_id=ASKING_TICKET, submitted_by="erin")
    region_id = f"ticket-triage-{ASKING_TICKET}-agent"
    frank = _sign_in(browser, stack, "frank")
    _until(frank, "the question in frank's queue", lambda: region_id in _queued(frank, stack))

    unsigned = _signal(stack, region_id, "answer", {"responder": "frank", "text": "yes"})
    graces = sign_act(
        "answer",
        TaskAnswer(responder="grace", text="yes"),
        region_id,
        load_signing_key("grace", _keys_dir(stack)),
    )
    forged = _signal(
        stack, region_id, "answer", graces.model_copy(update={"responder": "frank"}).model_dump()
    )
    assert "the answer is not signed" in unsigned
    assert "the signature is not frank's on this answer" in forged

    # grace (incident_manager) has no part in it: no such case, and her answer is refused too.
    grace = _sign_in(browser, stack, "grace")
    assert _open(grace, stack, region_id) == 404
    csrf = grace.locator("input[name=csrf_token]").first.get_attribute("value")
    posted = grace.request.post(
        f"{stack.review_url}/cases/{quote(region_id, safe='')}/act",
        form={"csrf_token": csrf, "act": "answer", "text": "yes"},
    )
    assert posted.status == 404

    assert _open(frank, stack, region_id) == 200
    question = frank.locator("section.task").first
    assert QUESTION in question.inner_text()
    question.locator("textarea[name=text]").fill("Yes, from 22:00 to 23:00.")
    question.locator("button[value=answer]").click()
    assert "answer from frank recorded" in _flash(frank)
    # The agent goes on with the answer and the case past it; frank, who answered, now has a
    # part in the case, and the submitter in the question.
    case_id = f"ticket-triage-{ASKING_TICKET}"
    _until(
        frank,
        "the case to move on past its agent",
        lambda: _open(frank, stack, case_id) == 200 and "agent_region_ended" in _audit_text(frank),
    )
    assert _open(frank, stack, region_id) == 200
    assert "frank answered: Yes, from 22:00 to 23:00." in _audit_text(frank)
    assert frank.locator("#no-open-tasks").is_visible()
    erin = _sign_in(browser, stack, "erin")
    assert _open(erin, stack, region_id) == 200
    assert region_id not in _queued(frank, stack)


# -- who may see what -----------------------------------------------------------------------------


def test_a_case_is_shown_only_to_its_people_and_to_the_auditor_masked(
    stack: Stack, browser: Any
) -> None:
    lead_id = f"LEAD-{RUN}"
    domain = f"colette-{RUN.lower()}.example"
    _sandbox(
        stack,
        *[("/crm/account-executives", ae) for ae in ACCOUNT_EXECUTIVES],
        (
            "/crm/firmographics",
            {
                "domain": domain,
                "company_name": "Atelier Colette",
                "industry": "retail",
                "employees": 12,
                "country": "FR",
            },
        ),
        (
            "/crm/leads",
            {
                "lead_id": lead_id,
                "contact_name": "Colette Martin",
                "email": f"colette@{domain}",
                "company": "Atelier Colette",
                "domain": domain,
                "country": "FR",
                "job_title": "Owner",
                "message": "Hi, just browsing your website. What do you do exactly?",
            },
        ),
    )
    _start(stack, "lead-routing", lead_id=lead_id)
    case_id = f"lead-routing-{lead_id}"

    paul = _sign_in(browser, stack, "paul")
    _until(
        paul,
        "the lead in paul's queue",
        lambda: case_id in _queued(paul, stack),
        why=lambda: stack.run("show", case_id, check=False).stdout,
    )
    assert _open(paul, stack, case_id) == 200
    assert "Colette Martin" in paul.locator("main").inner_text()

    # No part in the case: the page says there is no such case, as for one that does not exist,
    # and no list shows it.
    for outsider in ("henry", "bob"):
        page = _sign_in(browser, stack, outsider)
        assert case_id not in _queued(page, stack)
        assert _open(page, stack, case_id) == 404
        assert page.locator("h1").inner_text() == f"No case {case_id}"
        assert "Colette" not in page.content()
        assert _open(page, stack, f"{case_id}-NOPE") == 404

    # The auditor reads every case and lists every open task, with what the masking policy does
    # not clear for the auditor's role masked wherever it appears.
    una = _sign_in(browser, stack, "una")
    assert "you read every case" in una.locator("h1").inner_text()
    assert case_id in _queued(una, stack)
    assert _open(una, stack, case_id) == 200
    shown = una.locator("main").inner_text()
    assert "Colette Martin" not in shown and f"colette@{domain}" not in shown
    assert "[[PERSON:" in shown
    assert "You may not decide this task." in shown
