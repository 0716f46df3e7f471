"""What every row needs besides the testing kit (``casework.testing``): a fresh dev server and
systems sandbox to run on, seeding, histories, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from casework.sandbox.server import sandbox_process
from casework.signing_keys import keys_environment
from casework.testing.temporal import BIN, dev_server
from workflows.invoice_exception import (
    InvoiceExceptionInput,
    InvoiceExceptionResult,
    InvoiceExceptionWorkflow,
)

T = TypeVar("T")
SUPPLIER_ID = "SUP-BENCH"
SEED_CONCURRENCY = 16
# Matches PO and receipt exactly: the policy auto-approves (within tolerance, <= 10,000.00).
STRAIGHT_THROUGH = Decimal(0)
# 4% over the PO on 3,000.00: outside tolerance, within ap_supervisor's 5,000.00 limit, so the
# case waits for bob.
NEEDS_APPROVAL = Decimal(4)


def progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def db_size_bytes(db_file: Path) -> int:
    """SQLite keeps recent writes in the -wal file; the database's size is all three files."""
    paths = [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]
    return sum(path.stat().st_size for path in paths if path.exists())


async def gather_limited(limit: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


class Sandbox:
    """Seeds and reads the systems sandbox over its HTTP API, as the demo does."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    async def ensure_supplier(self) -> None:
        if (await self.http.get(f"/erp/suppliers/{SUPPLIER_ID}")).status_code == 404:
            await self.post(
                "/erp/suppliers",
                {
                    "supplier_id": SUPPLIER_ID,
                    "name": "Benchmark Supplies",
                    "country": "DE",
                    "bank_account": "DE89370400440532013000",
                },
            )

    async def seed_invoice(self, invoice_id: str, variance_percent: Decimal) -> None:
        """PO for 100 widgets at 30.00, a full goods receipt, and an invoice priced
        ``variance_percent`` above the PO."""
        po_number = f"PO-{invoice_id}"
        line = {"sku": "W-1", "description": "Widget", "quantity": 100}
        price = Decimal("30.00") * (1 + variance_percent / 100)
        await self.post(
            "/erp/purchase-orders",
            {
                "po_number": po_number,
                "supplier_id": SUPPLIER_ID,
                "lines": [line | {"unit_price": "30.00"}],
            },
        )
        await self.post(
            "/erp/goods-receipts",
            {
                "receipt_id": f"GR-{invoice_id}",
                "po_number": po_number,
                "lines": [{"sku": "W-1", "quantity_received": 100}],
            },
        )
        await self.post(
            "/erp/invoices",
            {
                "invoice_id": invoice_id,
                "supplier_id": SUPPLIER_ID,
                "po_number": po_number,
                "lines": [line | {"unit_price": str(price)}],
                "exception_reason": "benchmark",
            },
        )

    async def seed_invoices(self, invoice_ids: list[str], variance_percent: Decimal) -> None:
        await self.ensure_supplier()
        await gather_limited(
            SEED_CONCURRENCY,
            (lambda i=i: self.seed_invoice(i, variance_percent) for i in invoice_ids),
        )

    async def payment_created_at(self, invoice_id: str) -> float | None:
        """When the sandbox recorded the invoice's payment (epoch seconds), or None if unpaid."""
        response = await self.http.get("/payments", params={"invoice_id": invoice_id})
        response.raise_for_status()
        rows = response.json()
        if not rows:
            return None
        return datetime.fromisoformat(rows[0]["created_at"]).timestamp()


async def start_invoice_case(client: Client, invoice_id: str, task_queue: str) -> WorkflowHandle:
    return await client.start_workflow(
        "InvoiceException",
        InvoiceExceptionInput(invoice_id=invoice_id, submitted_by="alice"),
        id=InvoiceExceptionWorkflow.case_id(invoice_id),
        task_queue=task_queue,
        result_type=InvoiceExceptionResult,
    )


async def activity_types(client: Client, workflow_id: str) -> list[str]:
    """The activities a workflow scheduled, in order, read from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def wait_for_count(
    client: Client, query: str, expected: int, *, timeout: float, interval: float = 0.25
) -> float:
    """Poll visibility until ``query`` matches ``expected`` workflows; the seconds it took."""
    started = time.monotonic()
    while (found := await count(client, query)) < expected:
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"only {found}/{expected} workflows match {query!r} after {timeout}s"
            )
        await asyncio.sleep(interval)
    return time.monotonic() - started


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, not an interpolation between two."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


TEMPORAL = BIN / "temporal"


@dataclass(frozen=True)
class BenchStack:
    client: Client
    address: str
    sandbox_url: str
    sandbox: Sandbox
    db_file: Path
    work: Path


@contextlib.asynccontextmanager
async def bench_stack(work_root: Path) -> AsyncIterator[BenchStack]:
    """A fresh dev server and systems sandbox, their databases in a new directory of
    ``work_root``."""
    with tempfile.TemporaryDirectory(prefix="casework-bench-", dir=work_root) as tmp:
        work = Path(tmp)
        db_file = work / "temporal.db"
        # Decision keys of this run's own: workers in this process (their policies.load) and the
        # worker process of row 3 read them from the environment; casework.testing.signing
        # signs with them.
        os.environ.update(keys_environment(work / "keys"))
        progress(f"starting a fresh dev server ({TEMPORAL}) and the sandbox in {work}")
        async with dev_server(db_file, log_level="error") as env:
            client = env.client
            address = client.service_client.config.target_host
            with sandbox_process(work / "sandbox.db", work / "sandbox.log") as sandbox_url:
                async with httpx.AsyncClient(base_url=sandbox_url, timeout=30.0) as http:
                    yield BenchStack(client, address, sandbox_url, Sandbox(http), db_file, work)
