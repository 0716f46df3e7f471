"""``casework demo``: seed the sandbox and run one case per outcome on the running stack.

Invoice exceptions and ticket triage run side by side; the demo plays the approvers' and the
on-call engineer's parts and leaves one case of each process waiting for a person.

Each run uses a fresh batch of invoice numbers (INV-1001.., INV-2001.., ...) so it can be run
again on the same stack without colliding with earlier cases' business keys.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowHandle

from casework.case import CaseState, CaseStatus
from casework.case.tasks import HumanTask, TaskDecision
from casework.cli.cases import CommandError, command, directory_users, drive_case, link
from casework.cli.output import table
from casework.cli.seeding import (
    DemoCase,
    ProcessDemo,
    create_once,
    decide_as_demo_user,
    sandbox_request,
)
from casework.config import Settings
from demos import lead_routing as demo_lead_routing
from demos import loan_application as demo_loan_application
from demos import refund as demo_refund
from demos import ticket_triage as demo_triage
from demos import vendor_onboarding as demo_vendor_onboarding
from workflows.invoice_exception import InvoiceExceptionInput, InvoiceExceptionWorkflow

SUPPLIER = {
    "supplier_id": "SUP-ACME",
    "name": "Acme Industrial Supplies",
    "country": "DE",
    "bank_account": "DE89 3704 0044 0532 0130 00",
}


# The processes whose demos seed, start and drive their own cases beside the two above.
PROCESS_DEMOS: tuple[ProcessDemo, ...] = (
    demo_refund.run,
    demo_vendor_onboarding.run,
    demo_loan_application.run,
    demo_lead_routing.run,
)


@dataclass(frozen=True)
class Scenario:
    suffix: int
    story: str
    quantity: int
    received: int
    po_price: Decimal
    invoice_price: Decimal
    decision: TaskDecision | None = None
    """What the demo's approver does once the task is open; None: leave it to the policy."""
    erp_fails: bool = False
    """Make the ERP refuse to mark the invoice paid, so the payment must be reversed."""
    leave_waiting: bool = False
    expected: str = CaseStatus.PAID


SCENARIOS = [
    Scenario(1, "matches PO and receipt", 80, 80, Decimal("30.00"), Decimal("30.00")),
    Scenario(
        2,
        "4% price variance, approved by the tier that covers it",
        104,
        104,
        Decimal("30.00"),
        Decimal("31.20"),
        decision=TaskDecision(approver="bob", action="approve", comment="freight surcharge agreed"),
    ),
    Scenario(
        3,
        "billed for goods not received",
        600,
        500,
        Decimal("30.00"),
        Decimal("30.00"),
        decision=TaskDecision(
            approver="carol", action="reject", comment="100 units never arrived; ask for credit"
        ),
        expected=CaseStatus.REJECTED,
    ),
    Scenario(
        4,
        "paid, then the ERP refuses the status update",
        40,
        40,
        Decimal("30.00"),
        Decimal("30.00"),
        erp_fails=True,
        expected=CaseStatus.FAILED_COMPENSATED,
    ),
    Scenario(
        5,
        "5% price variance above 5,000: waits for finance",
        400,
        400,
        Decimal("30.00"),
        Decimal("31.50"),
        leave_waiting=True,
        expected="awaiting finance_manager",
    ),
]


async def run_demo(client: Client, settings: Settings) -> int:
    async with httpx.AsyncClient(base_url=settings.sandbox_url, timeout=10.0) as sandbox:
        await _check_sandbox(sandbox, settings)
        batch = await next_batch(sandbox)
        await create_once(
            sandbox, f"/erp/suppliers/{SUPPLIER['supplier_id']}", "/erp/suppliers", SUPPLIER
        )
        print(f"seeding the sandbox at {settings.sandbox_url} with demo batch {batch} ...")
        invoice_ids = {s.suffix: await seed_invoice(sandbox, batch, s) for s in SCENARIOS}
        ticket_ids = await demo_triage.seed(sandbox, batch)
        for scenario in SCENARIOS:
            if scenario.erp_fails:
                await fail_erp_status_updates(sandbox, invoice_ids[scenario.suffix])

        print("starting one case per scenario ...")
        handles = {
            s.suffix: await client.start_workflow(
                "InvoiceException",
                InvoiceExceptionInput(invoice_id=invoice_ids[s.suffix], submitted_by="alice"),
                id=InvoiceExceptionWorkflow.case_id(invoice_ids[s.suffix]),
                task_queue=settings.task_queue,
            )
            for s in SCENARIOS
        }
        triage_handles = await demo_triage.start(client, settings, ticket_ids)
        _, *process_cases = await asyncio.gather(
            asyncio.gather(
                *(drive_case(handles[s.suffix], _approver(s, settings)) for s in SCENARIOS),
                *(
                    drive_case(triage_handles[s.suffix], demo_triage.on_call(s))
                    for s in demo_triage.SCENARIOS
                ),
            ),
            *(demo(client, settings, sandbox, batch) for demo in PROCESS_DEMOS),
        )

    rows = []
    waiting: list[tuple[WorkflowHandle, HumanTask]] = []
    agent_model = ""
    cases = [DemoCase(handles[s.suffix], s.story, s.expected) for s in SCENARIOS] + [
        DemoCase(triage_handles[s.suffix], s.story, s.expected) for s in demo_triage.SCENARIOS
    ]
    cases += [case for demo_cases in process_cases for case in demo_cases]
    for case in cases:
        handle, story = case.handle, case.story
        state = await handle.query("state", result_type=CaseState)
        agent_model = agent_model or str(state.facts.get("agent_model", ""))
        if state.open_tasks:
            waiting.extend((handle, task) for task in state.open_tasks)
            outcome = " + ".join(f"awaiting {task.role}" for task in state.open_tasks)
        else:
            outcome = state.status
        rows.append(
            [
                handle.id,
                story,
                outcome,
                _shorten(str(state.facts.get("message", "")), 60),
                link(settings, client, handle.id),
            ]
        )
    print()
    print(table(["case", "scenario", "outcome", "detail", "Web UI"], rows))
    print()
    if agent_model:
        print(f"agent model: {agent_model}")
    casework, temporal = _command("casework"), _command("temporal")
    for handle, task in waiting:
        approver = demo_approver(task.role)
        print(f"{handle.id} is waiting for {task.role}. Approve it with:")
        print(f"  {command(casework, 'approve', handle.id, '--as', approver, '--comment', 'ok')}")
        print("or with the Temporal CLI (cases accept only decisions signed by the approver):")
        sign = command(casework, "sign", handle.id, "--as", approver, "--action", "approve")
        signal = command(temporal, "workflow", "signal", "--workflow-id", handle.id)
        print(f'  {signal} --name decide --input "$({sign})"')
    if waiting:
        print(
            f"or decide in the review queue at {settings.review_url}, signed in as "
            + " / ".join(sorted({demo_approver(task.role) for _, task in waiting}))
            + f" (passwords in {settings.state_dir / 'ui' / 'demo-credentials.txt'})"
        )
    print(f"KPIs: {casework} report, or {settings.review_url}/report")
    print(f"\nthe stack keeps running: {casework} inbox | show CASE | audit CASE;")
    print("stop it with: make down")
    outcomes = [row[2] for row in rows]
    return 0 if outcomes == [case.expected for case in cases] else 1


def _command(name: str) -> str:
    """How to type ``name`` so a pasted command works: bare when on PATH, else its venv path."""
    installed = Path(sys.prefix) / "bin" / name
    on_path = shutil.which(name)
    if on_path and Path(on_path).resolve() == installed.resolve():
        return name
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def demo_approver(role: str) -> str:
    return next(iter(directory_users([role])), "<user>")


def _approver(
    scenario: Scenario, settings: Settings
) -> Callable[[WorkflowHandle, CaseState], Awaitable[bool]]:
    """The scenario's approver: decides once when the task opens, then leaves the case be."""
    pending = [scenario.decision] if scenario.decision else []

    async def respond(handle: WorkflowHandle, state: CaseState) -> bool:
        if not pending or state.open_task is None:
            return False
        await decide_as_demo_user(handle, settings, pending.pop())
        return True

    return respond


async def _check_sandbox(sandbox: httpx.AsyncClient, settings: Settings) -> None:
    try:
        (await sandbox.get("/health")).raise_for_status()
    except httpx.HTTPError as error:
        raise CommandError(
            f"the systems sandbox at {settings.sandbox_url} is not answering ({error!r}); "
            "start the stack with: casework up"
        ) from error


async def next_batch(sandbox: httpx.AsyncClient) -> int:
    invoices = await sandbox_request(sandbox, "GET", "/erp/invoices")
    numbers = [
        int(invoice["invoice_id"][4:])
        for invoice in invoices
        if invoice["invoice_id"].startswith("INV-") and invoice["invoice_id"][4:].isdigit()
    ]
    return max(numbers, default=0) // 1000 + 1


async def seed_invoice(sandbox: httpx.AsyncClient, batch: int, scenario: Scenario) -> str:
    number = batch * 1000 + scenario.suffix
    invoice_id, po_number = f"INV-{number}", f"PO-{number}"
    line = {"sku": "BRK-220", "description": "Brake assembly, heavy duty"}
    await sandbox_request(
        sandbox,
        "POST",
        "/erp/purchase-orders",
        {
            "po_number": po_number,
            "supplier_id": SUPPLIER["supplier_id"],
            "lines": [
                {**line, "quantity": scenario.quantity, "unit_price": str(scenario.po_price)}
            ],
        },
    )
    await sandbox_request(
        sandbox,
        "POST",
        "/erp/goods-receipts",
        {
            "receipt_id": f"GR-{number}",
            "po_number": po_number,
            "lines": [{"sku": line["sku"], "quantity_received": scenario.received}],
        },
    )
    await sandbox_request(
        sandbox,
        "POST",
        "/erp/invoices",
        {
            "invoice_id": invoice_id,
            "supplier_id": SUPPLIER["supplier_id"],
            "po_number": po_number,
            "lines": [
                {**line, "quantity": scenario.quantity, "unit_price": str(scenario.invoice_price)}
            ],
            "exception_reason": scenario.story,
        },
    )
    return invoice_id


async def fail_erp_status_updates(sandbox: httpx.AsyncClient, invoice_id: str) -> None:
    # 503 on every attempt the workflow's retry policy allows (4): Temporal retries with
    # backoff, then gives up, and the saga reverses the payment.
    await sandbox_request(
        sandbox,
        "POST",
        "/_faults",
        {"method": "POST", "path": f"/erp/invoices/{invoice_id}/status", "count": 4, "status": 503},
    )
