"""Helpers for the invoice-exception tests that run casework's real parts together.

The sandbox is seeded and inspected over its HTTP API only, exactly as an operator would; the
scripted model answers per invoice so one test's script can never be consumed by another's case.
The servers, the worker and waiting come from ``casework.testing``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from activities.erp import Invoice
from activities.payments import Payment
from casework.systems.notifications import Notification
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedModel


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


class ScriptedAgent(ScriptedModel):
    """Scripts the model behind the invoice analyst one invoice at a time."""

    def __init__(self, server: ScriptedLlmServer) -> None:
        super().__init__(server, "invoice", "invoice_id")


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
