"""The invoice analyst in an agent region: under a policy that gives it read-only tools, the
analyst of an invoice exception looks further than the records the case hands it (the payments
ledger, the supplier, the PO) before it proposes; its proposal is checked as a consulted one's.

Through the real stack: dev server, worker, sandbox and the scripted model behind litellm (and
the offline stand-in), with the catalogue's policies copied and the analyst given tools.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from casework.audit import AuditKind
from casework.governance.loader import catalogue_policy_dir
from casework.testing.cases import audit, events_of, open_task
from casework.testing.scripted_llm import ScriptedModel, ScriptedReply, scripted_llm_server
from casework.testing.temporal import scripted_settings
from casework.worker import running_worker
from tests.integration_support import SandboxClient
from tests.triage_support import scheduled_activities, tool_messages
from workflows.invoice_exception import InvoiceExceptionInput, InvoiceExceptionWorkflow

ANALYST_WITH_TOOLS = """agents:
  invoice_analyst:
    model: null
    fallback_models: []
    allowed_tools: [get_purchase_order, get_supplier, list_invoice_payments]
    budget: {max_model_calls: 4, max_tool_calls: 6}
    max_tokens_per_call: 800
"""


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The catalogue's policies, with the invoice analyst given tools (a new version)."""
    directory = tmp_path_factory.mktemp("policies") / "policies"
    shutil.copytree(catalogue_policy_dir(), directory)
    path = directory / "invoice_exception.yaml"
    text = path.read_text()
    before, _, _ = text.partition("agents:\n")
    path.write_text(before.replace("version: 2", "version: 99") + ANALYST_WITH_TOOLS)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CASEWORK_POLICY_DIR", str(directory))
        yield directory


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with scripted_llm_server() as server:
        yield ScriptedModel(server, "invoice", "invoice_id")


@pytest.fixture(scope="module")
async def queues(
    temporal: WorkflowEnvironment, sandbox_url: str, model: ScriptedModel, policies: Path
) -> AsyncIterator[dict[str, str]]:
    """A worker on the scripted model, and one on the offline stand-in."""
    scripted = scripted_settings(f"invoice-region-{uuid.uuid4().hex}", sandbox_url, model.server)
    offline = scripted.model_copy(
        update={"model": None, "task_queue": f"invoice-region-offline-{uuid.uuid4().hex}"}
    )
    async with (
        running_worker(temporal.client, scripted),
        running_worker(temporal.client, offline),
    ):
        yield {"scripted": scripted.task_queue, "offline": offline.task_queue}


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        yield SandboxClient(http)


def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:8]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def final(**fields: Any) -> ScriptedReply:
    proposal = {
        "recommendation": "approve",
        "confidence": 0.9,
        "explanation": "4% over the PO price",
        "rationale": "nothing paid yet; a known surcharge",
        "evidence": ["line W-1"],
    } | fields
    return ScriptedReply(tool_calls=[call("final_answer", proposal)])


async def start(client: Client, queue: str, invoice_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        InvoiceExceptionWorkflow.run,
        InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice"),
        id=InvoiceExceptionWorkflow.case_id(invoice_id),
        task_queue=queue,
    )


async def cancel(handle: WorkflowHandle) -> None:
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def test_the_analyst_looks_further_with_its_tools_and_its_proposal_is_checked(
    temporal: WorkflowEnvironment,
    queues: dict[str, str],
    model: ScriptedModel,
    sandbox: SandboxClient,
) -> None:
    invoice_id = f"INV-RGN-{uuid.uuid4().hex[:8]}"
    await sandbox.seed_invoice(invoice_id, price_variance_percent=Decimal(4))
    model.script(
        invoice_id,
        ScriptedReply(
            tool_calls=[
                call("list_invoice_payments", {"invoice_id": invoice_id}),
                call("get_supplier", {"supplier_id": f"SUP-{invoice_id}"}),
            ]
        ),
        # It lies: more than the invoice's total. The check catches it.
        final(suggested_amount="99999.00"),
    )

    handle = await start(temporal.client, queues["scripted"], invoice_id)
    task = await open_task(handle, "an approval task")
    region = temporal.client.get_workflow_handle(f"{handle.id}-agent")

    assert task.role == "ap_supervisor"  # outside tolerance: a person decides, as before
    assert await scheduled_activities(region) == [
        "llm.chat",
        "payments.list_invoice_payments",
        "erp.get_supplier",
        "llm.chat",
    ]
    _, second = model.requests_for(invoice_id)
    ledger, supplier = tool_messages(second)
    assert ledger == "<tool_result>\n[]\n</tool_result>"
    assert f'"supplier_id": "SUP-{invoice_id}"' in supplier
    events = await audit(handle)
    (ended,) = events_of(events, AuditKind.AGENT_REGION_ENDED)
    assert ended.data["outcome"] == "answered"
    assert ended.data["model_usage"]["model_calls"] == 2
    (proposed,) = events_of(events, AuditKind.AGENT_PROPOSAL)
    assert proposed.data["recommended_action"] == "approve"
    (checked,) = events_of(events, AuditKind.PROPOSAL_CHECKED)
    assert checked.data["unverified"] == 1
    assert "suggested_amount" in checked.summary
    # The policy the case decided by is the one that gave the analyst tools.
    (decided,) = events_of(events, AuditKind.POLICY_DECISION)
    assert decided.data["decision"]["policy"]["version"] == 99
    await cancel(handle)


async def test_offline_the_stand_in_reads_the_ledger_before_it_proposes(
    temporal: WorkflowEnvironment, queues: dict[str, str], sandbox: SandboxClient
) -> None:
    invoice_id = f"INV-RGN-OFF-{uuid.uuid4().hex[:8]}"
    await sandbox.seed_invoice(invoice_id, price_variance_percent=Decimal(4))

    handle = await start(temporal.client, queues["offline"], invoice_id)
    await open_task(handle, "an approval task")
    region = temporal.client.get_workflow_handle(f"{handle.id}-agent")

    assert await scheduled_activities(region) == [
        "llm.chat",
        "payments.list_invoice_payments",
        "llm.chat",
    ]
    (proposed,) = events_of(await audit(handle), AuditKind.AGENT_PROPOSAL)
    evidence = proposed.data["proposal"]["evidence"]
    assert (
        f"offline stand-in rule: the payments ledger holds 0 payment(s) for invoice {invoice_id}"
        in evidence
    )
    await cancel(handle)
