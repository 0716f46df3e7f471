"""The systems-of-record sandbox, exercised through its real HTTP server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from casework.sandbox import __main__ as sandbox_cli
from casework.sandbox.server import running_sandbox


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, trust_env=False, timeout=10.0)


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with running_sandbox(tmp_path / "sandbox.db") as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with _client(base_url) as http:
        yield http


def create_supplier(client: httpx.Client, supplier_id: str = "SUP-1", **fields: Any) -> dict:
    body = {
        "supplier_id": supplier_id,
        "name": "Acme GmbH",
        "country": "DE",
        "bank_account": "DE89370400440532013000",
    } | fields
    response = client.post("/erp/suppliers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_purchase_order(client: httpx.Client, po_number: str = "PO-1", **fields: Any) -> dict:
    body = {
        "po_number": po_number,
        "supplier_id": "SUP-1",
        "lines": [{"sku": "BOLT", "description": "M8 bolt", "quantity": 100, "unit_price": "0.25"}],
    } | fields
    response = client.post("/erp/purchase-orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_invoice(client: httpx.Client, invoice_id: str = "INV-1", **fields: Any) -> dict:
    body = {
        "invoice_id": invoice_id,
        "supplier_id": "SUP-1",
        "po_number": "PO-1",
        "lines": [{"sku": "BOLT", "description": "M8 bolt", "quantity": 100, "unit_price": "0.30"}],
        "exception_reason": "price differs from PO",
    } | fields
    response = client.post("/erp/invoices", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def invoice(client: httpx.Client) -> dict:
    create_supplier(client)
    create_purchase_order(client)
    return create_invoice(client)


def change_status(
    client: httpx.Client, key: str, status: str, invoice_id: str = "INV-1", note: str | None = None
) -> httpx.Response:
    return client.post(
        f"/erp/invoices/{invoice_id}/status",
        json={"status": status, "note": note},
        headers={"Idempotency-Key": key},
    )


def pay(client: httpx.Client, key: str | None, **fields: Any) -> httpx.Response:
    body = {"invoice_id": "INV-1", "supplier_id": "SUP-1", "amount": "30.00", "currency": "EUR"}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/payments", json=body | fields, headers=headers)


def ledger(client: httpx.Client, **params: str) -> list[dict]:
    response = client.get("/payments", params=params)
    assert response.status_code == 200
    return response.json()


def add_fault(client: httpx.Client, **spec: Any) -> dict:
    response = client.post("/_faults", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


# --- service ---------------------------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_root_redirects_to_documented_api(client: httpx.Client) -> None:
    assert client.get("/").headers["location"] == "/docs"
    assert client.get("/docs").status_code == 200
    openapi = client.get("/openapi.json").json()
    assert "sandbox" in openapi["info"]["title"]
    assert "Idempotency-Key" in openapi["info"]["description"]
    for path in ("/erp/invoices/{invoice_id}/status", "/payments", "/notifications", "/_faults"):
        assert path in openapi["paths"]


def test_running_sandbox_serves_on_a_free_port_and_stops_on_exit(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "a.db") as first, running_sandbox(tmp_path / "b.db") as second:
        assert first != second
        assert httpx.URL(first).host == "127.0.0.1"
        for url in (first, second):
            with _client(url) as http:
                assert http.get("/health").status_code == 200
    with _client(first) as http, pytest.raises(httpx.ConnectError):
        http.get("/health")


def test_records_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state" / "sandbox.db"
    db.parent.mkdir()
    with running_sandbox(db) as url, _client(url) as http:
        create_supplier(http)
        assert pay(http, "k-1").status_code == 201
    with running_sandbox(db) as url, _client(url) as http:
        assert http.get("/erp/suppliers/SUP-1").json()["name"] == "Acme GmbH"
        replay = pay(http, "k-1")
        assert replay.status_code == 200
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert len(ledger(http)) == 1


def test_validation_errors_are_one_readable_sentence(client: httpx.Client) -> None:
    response = client.post(
        "/erp/suppliers",
        json={"supplier_id": "SUP-1", "name": "Acme", "country": "DE", "risk": "extreme"},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.startswith("invalid request: ")
    assert "bank_account: Field required" in detail
    assert "risk: Input should be 'low', 'medium' or 'high'" in detail


def test_unknown_fields_are_rejected(client: httpx.Client) -> None:
    create_supplier(client)
    response = pay(client, "k-1", amout="12.00")
    assert response.status_code == 422
    assert "amout: Extra inputs are not permitted" in response.json()["detail"]
    assert ledger(client) == []


# --- ERP -------------------------------------------------------------------------------------


def test_supplier_defaults_lookup_and_listing(client: httpx.Client) -> None:
    created = create_supplier(client)
    assert created == {
        "supplier_id": "SUP-1",
        "name": "Acme GmbH",
        "country": "DE",
        "bank_account": "DE89370400440532013000",
        "status": "active",
        "risk": "low",
    }
    create_supplier(client, "SUP-2", status="blocked", risk="high")
    assert client.get("/erp/suppliers/SUP-1").json() == created
    listed = client.get("/erp/suppliers").json()
    assert [(s["supplier_id"], s["status"], s["risk"]) for s in listed] == [
        ("SUP-1", "active", "low"),
        ("SUP-2", "blocked", "high"),
    ]


def test_duplicate_and_unknown_supplier(client: httpx.Client) -> None:
    create_supplier(client)
    duplicate = client.post(
        "/erp/suppliers",
        json={"supplier_id": "SUP-1", "name": "Other", "country": "FR", "bank_account": "FR76"},
    )
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "supplier SUP-1 already exists"}
    assert client.get("/erp/suppliers/SUP-1").json()["name"] == "Acme GmbH"

    missing = client.get("/erp/suppliers/SUP-9")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "supplier SUP-9 not found"}


def test_purchase_order_total_is_computed_from_decimal_lines(client: httpx.Client) -> None:
    create_supplier(client)
    order = create_purchase_order(
        client,
        lines=[
            {"sku": "A", "description": "widget", "quantity": 3, "unit_price": "19.99"},
            {"sku": "B", "description": "gadget", "quantity": 1, "unit_price": 0.1},
        ],
    )
    # Exact decimal arithmetic, serialised as a string: no 60.07000000000001.
    assert order["total"] == "60.07"
    assert order["currency"] == "EUR"
    assert order["lines"][1]["unit_price"] == "0.1"
    assert client.get("/erp/purchase-orders/PO-1").json() == order
    assert client.get("/erp/purchase-orders").json() == [order]


def test_purchase_order_errors(client: httpx.Client) -> None:
    unknown_supplier = client.post(
        "/erp/purchase-orders",
        json={"po_number": "PO-1", "supplier_id": "SUP-9", "lines": [_line()]},
    )
    assert unknown_supplier.status_code == 404
    assert unknown_supplier.json() == {"detail": "supplier SUP-9 not found"}

    create_supplier(client)
    create_purchase_order(client)
    duplicate = client.post(
        "/erp/purchase-orders",
        json={"po_number": "PO-1", "supplier_id": "SUP-1", "lines": [_line()]},
    )
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "purchase order PO-1 already exists"}

    for bad_line, field in (
        ({"quantity": 0}, "lines.0.quantity"),
        ({"unit_price": "-1"}, "lines.0.unit_price"),
    ):
        response = client.post(
            "/erp/purchase-orders",
            json={"po_number": "PO-2", "supplier_id": "SUP-1", "lines": [_line() | bad_line]},
        )
        assert response.status_code == 422
        assert field in response.json()["detail"]

    missing = client.get("/erp/purchase-orders/PO-9")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "purchase order PO-9 not found"}


def _line(**fields: Any) -> dict:
    return {"sku": "BOLT", "description": "M8 bolt", "quantity": 1, "unit_price": "1.00"} | fields


def test_goods_receipts_per_purchase_order(client: httpx.Client) -> None:
    create_supplier(client)
    create_purchase_order(client, "PO-1")
    create_purchase_order(client, "PO-2")
    before = date.today().isoformat()
    first = client.post(
        "/erp/goods-receipts",
        json={"receipt_id": "GR-1", "po_number": "PO-1", "lines": [_received(60)]},
    )
    after = date.today().isoformat()
    assert first.status_code == 201
    assert first.json()["received_at"] in (before, after)
    second = client.post(
        "/erp/goods-receipts",
        json={
            "receipt_id": "GR-2",
            "po_number": "PO-1",
            "lines": [_received(40)],
            "received_at": "2024-05-02",
        },
    )
    assert second.json()["received_at"] == "2024-05-02"
    client.post(
        "/erp/goods-receipts",
        json={"receipt_id": "GR-3", "po_number": "PO-2", "lines": [_received(0)]},
    )

    for_po1 = client.get("/erp/goods-receipts", params={"po_number": "PO-1"}).json()
    assert [r["receipt_id"] for r in for_po1] == ["GR-1", "GR-2"]
    assert sum(r["lines"][0]["quantity_received"] for r in for_po1) == 100
    assert len(client.get("/erp/goods-receipts").json()) == 3
    assert client.get("/erp/goods-receipts/GR-2").json() == second.json()


def _received(quantity: int) -> dict:
    return {"sku": "BOLT", "quantity_received": quantity}


def test_goods_receipt_errors(client: httpx.Client) -> None:
    unknown_po = client.post(
        "/erp/goods-receipts",
        json={"receipt_id": "GR-1", "po_number": "PO-9", "lines": [_received(1)]},
    )
    assert unknown_po.status_code == 404
    assert unknown_po.json() == {"detail": "purchase order PO-9 not found"}

    create_supplier(client)
    create_purchase_order(client)
    negative = client.post(
        "/erp/goods-receipts",
        json={"receipt_id": "GR-1", "po_number": "PO-1", "lines": [_received(-1)]},
    )
    assert negative.status_code == 422
    assert "lines.0.quantity_received" in negative.json()["detail"]

    bad_date = client.post(
        "/erp/goods-receipts",
        json={
            "receipt_id": "GR-1",
            "po_number": "PO-1",
            "lines": [_received(1)],
            "received_at": "yesterday",
        },
    )
    assert bad_date.status_code == 422
    assert "received_at" in bad_date.json()["detail"]

    missing = client.get("/erp/goods-receipts/GR-9")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "goods receipt GR-9 not found"}


def test_invoice_is_created_in_exception_with_total_and_history(invoice: dict) -> None:
    assert invoice["status"] == "exception"
    assert invoice["total"] == "30.00"
    assert invoice["exception_reason"] == "price differs from PO"
    assert invoice["currency"] == "EUR"
    [created] = invoice["status_history"]
    assert created["status"] == "exception"
    assert datetime.fromisoformat(created["at"]).tzinfo is not None


def test_invoice_lookup_and_status_filter(client: httpx.Client, invoice: dict) -> None:
    create_invoice(client, "INV-2", po_number=None, status="open", exception_reason=None)
    assert client.get("/erp/invoices/INV-1").json() == invoice
    exceptions = client.get("/erp/invoices", params={"status": "exception"}).json()
    assert [i["invoice_id"] for i in exceptions] == ["INV-1"]
    assert [i["invoice_id"] for i in client.get("/erp/invoices").json()] == ["INV-1", "INV-2"]
    assert client.get("/erp/invoices/INV-2").json()["po_number"] is None
    bad_filter = client.get("/erp/invoices", params={"status": "lost"})
    assert bad_filter.status_code == 422
    assert "status" in bad_filter.json()["detail"]


def test_invoice_errors(client: httpx.Client) -> None:
    body = {"invoice_id": "INV-1", "supplier_id": "SUP-1", "lines": [_line()]}
    unknown_supplier = client.post("/erp/invoices", json=body)
    assert unknown_supplier.status_code == 404
    assert unknown_supplier.json() == {"detail": "supplier SUP-1 not found"}

    create_supplier(client)
    unknown_po = client.post("/erp/invoices", json=body | {"po_number": "PO-9"})
    assert unknown_po.status_code == 404
    assert unknown_po.json() == {"detail": "purchase order PO-9 not found"}

    assert client.post("/erp/invoices", json=body).status_code == 201
    duplicate = client.post("/erp/invoices", json=body)
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "invoice INV-1 already exists"}

    missing = client.get("/erp/invoices/INV-9")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "invoice INV-9 not found"}


def test_status_change_is_applied_once_per_key(client: httpx.Client, invoice: dict) -> None:
    first = change_status(client, "approve-1", "approved", note="within tolerance")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert first.json()["status"] == "approved"
    assert [(h["status"], h["note"]) for h in first.json()["status_history"][1:]] == [
        ("approved", "within tolerance")
    ]

    repeat = change_status(client, "approve-1", "approved", note="within tolerance")
    assert repeat.status_code == 200
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json() == first.json()
    assert len(client.get("/erp/invoices/INV-1").json()["status_history"]) == 2

    # A new key is a new change, even to the same status.
    assert change_status(client, "approve-2", "approved").status_code == 200
    assert len(client.get("/erp/invoices/INV-1").json()["status_history"]) == 3


def test_status_change_replay_returns_the_first_result(client: httpx.Client, invoice: dict) -> None:
    approved = change_status(client, "k-approve", "approved").json()
    change_status(client, "k-hold", "on_hold")
    replay = change_status(client, "k-approve", "approved")
    assert replay.json() == approved
    assert client.get("/erp/invoices/INV-1").json()["status"] == "on_hold"


def test_status_change_key_reused_for_another_request(client: httpx.Client, invoice: dict) -> None:
    create_invoice(client, "INV-2")
    assert change_status(client, "k-1", "approved").status_code == 200
    for other_status, other_invoice in (("rejected", "INV-1"), ("approved", "INV-2")):
        conflict = change_status(client, "k-1", other_status, invoice_id=other_invoice)
        assert conflict.status_code == 409
        assert "Idempotency-Key 'k-1' was already used" in conflict.json()["detail"]
    assert client.get("/erp/invoices/INV-1").json()["status"] == "approved"
    assert client.get("/erp/invoices/INV-2").json()["status"] == "exception"


def test_status_change_errors(client: httpx.Client, invoice: dict) -> None:
    no_key = client.post("/erp/invoices/INV-1/status", json={"status": "approved"})
    assert no_key.status_code == 400
    assert no_key.json() == {"detail": "Idempotency-Key header is required"}

    bad_status = change_status(client, "k-1", "archived")
    assert bad_status.status_code == 422
    assert "status: Input should be" in bad_status.json()["detail"]

    missing = change_status(client, "k-1", "approved", invoice_id="INV-9")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "invoice INV-9 not found"}

    # Refused requests do not use up their key.
    assert change_status(client, "k-1", "paid").json()["status"] == "paid"
    assert [h["status"] for h in client.get("/erp/invoices/INV-1").json()["status_history"]] == [
        "exception",
        "paid",
    ]


# --- payments --------------------------------------------------------------------------------


def test_payment_is_created_and_recorded(client: httpx.Client) -> None:
    response = pay(client, "pay-INV-1", reference="remittance 42")
    assert response.status_code == 201
    payment = response.json()
    created_at = payment.pop("created_at")
    assert datetime.fromisoformat(created_at).tzinfo is not None
    assert payment == {
        "payment_id": "PAY-000001",
        "invoice_id": "INV-1",
        "supplier_id": "SUP-1",
        "amount": "30.00",
        "currency": "EUR",
        "reference": "remittance 42",
        "status": "completed",
        "idempotency_key": "pay-INV-1",
        "reversed_at": None,
        "reversal_reason": None,
    }
    assert client.get("/payments/PAY-000001").json() == response.json()
    assert ledger(client) == [response.json()]


def test_payment_requires_an_idempotency_key(client: httpx.Client) -> None:
    response = pay(client, None)
    assert response.status_code == 400
    assert response.json() == {"detail": "Idempotency-Key header is required"}
    assert ledger(client) == []


def test_same_key_same_body_never_pays_twice(client: httpx.Client) -> None:
    first = pay(client, "pay-INV-1")
    # The same amount written differently is the same request.
    replay = pay(client, "pay-INV-1", amount=30)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert [p["payment_id"] for p in ledger(client)] == ["PAY-000001"]


def test_same_key_different_body_is_refused(client: httpx.Client) -> None:
    pay(client, "pay-INV-1")
    conflict = pay(client, "pay-INV-1", amount="31.00")
    assert conflict.status_code == 409
    detail = conflict.json()["detail"]
    assert "Idempotency-Key 'pay-INV-1'" in detail
    assert "different payment request" in detail
    assert [p["amount"] for p in ledger(client)] == ["30.00"]


def test_concurrent_retries_with_one_key_pay_once(base_url: str) -> None:
    def attempt(_: int) -> httpx.Response:
        with _client(base_url) as http:
            return pay(http, "pay-INV-1")

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert {r.json()["payment_id"] for r in responses} == {"PAY-000001"}
    with _client(base_url) as http:
        assert len(ledger(http)) == 1


def test_ledger_is_oldest_first_and_filters_by_invoice(client: httpx.Client) -> None:
    pay(client, "k-1", invoice_id="INV-1")
    pay(client, "k-2", invoice_id="INV-2")
    pay(client, "k-3", invoice_id="INV-1", amount="5")
    assert [p["payment_id"] for p in ledger(client)] == ["PAY-000001", "PAY-000002", "PAY-000003"]
    assert [p["payment_id"] for p in ledger(client, invoice_id="INV-1")] == [
        "PAY-000001",
        "PAY-000003",
    ]
    assert ledger(client, invoice_id="INV-9") == []


@pytest.mark.parametrize(
    ("field", "value"), [("amount", "0"), ("amount", "-5"), ("currency", "eur")]
)
def test_invalid_payment_is_refused(client: httpx.Client, field: str, value: str) -> None:
    response = pay(client, "k-1", **{field: value})
    assert response.status_code == 422
    assert f"invalid request: {field}:" in response.json()["detail"]
    assert ledger(client) == []


def test_unknown_payment(client: httpx.Client) -> None:
    assert client.get("/payments/PAY-999999").json() == {"detail": "payment PAY-999999 not found"}
    reverse = client.post(
        "/payments/PAY-999999/reverse", json={"reason": "x"}, headers={"Idempotency-Key": "r"}
    )
    assert reverse.status_code == 404
    assert reverse.json() == {"detail": "payment PAY-999999 not found"}


def test_reversal(client: httpx.Client) -> None:
    pay(client, "k-1")

    def reverse(key: str | None, reason: str = "duplicate payment") -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return client.post("/payments/PAY-000001/reverse", json={"reason": reason}, headers=headers)

    no_key = reverse(None)
    assert no_key.status_code == 400
    assert no_key.json() == {"detail": "Idempotency-Key header is required"}

    reversed_ = reverse("rev-1")
    assert reversed_.status_code == 200
    payment = reversed_.json()
    assert payment["status"] == "reversed"
    assert payment["reversal_reason"] == "duplicate payment"
    assert datetime.fromisoformat(payment["reversed_at"]) >= datetime.fromisoformat(
        payment["created_at"]
    )
    assert reverse("rev-1").headers["Idempotent-Replayed"] == "true"

    # Reversing again under a new key changes nothing, not even the reason or time.
    again = reverse("rev-2", reason="second thoughts")
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again.headers
    assert again.json() == payment
    assert ledger(client) == [payment]


# --- notifications ---------------------------------------------------------------------------


def notify(client: httpx.Client, key: str | None = None, **fields: Any) -> httpx.Response:
    body = {"to": "ap@example.com", "subject": "Invoice INV-1", "body": "Needs review."}
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/notifications", json=body | fields, headers=headers)


def test_notification_outbox(client: httpx.Client) -> None:
    first = notify(client, case_id="case-1")
    assert first.status_code == 201
    sent = first.json()
    assert sent["notification_id"] == "NTF-000001"
    assert (sent["to"], sent["subject"], sent["case_id"]) == (
        "ap@example.com",
        "Invoice INV-1",
        "case-1",
    )
    assert datetime.fromisoformat(sent["created_at"]).tzinfo is not None
    notify(client, to="cfo@example.com", case_id="case-1")
    notify(client, case_id="case-2")

    def ids(**params: str) -> list[str]:
        return [n["notification_id"] for n in client.get("/notifications", params=params).json()]

    assert ids() == ["NTF-000001", "NTF-000002", "NTF-000003"]
    assert ids(case_id="case-1") == ["NTF-000001", "NTF-000002"]
    assert ids(to="ap@example.com") == ["NTF-000001", "NTF-000003"]
    assert ids(to="ap@example.com", case_id="case-1") == ["NTF-000001"]


def test_notification_idempotency_key_is_optional_and_honoured(client: httpx.Client) -> None:
    notify(client)
    notify(client)
    first = notify(client, "notify-case-1")
    replay = notify(client, "notify-case-1")
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert len(client.get("/notifications").json()) == 3
    assert notify(client, "notify-case-1", subject="Other").status_code == 409


def test_idempotency_keys_are_scoped_per_operation(client: httpx.Client) -> None:
    assert pay(client, "shared-key").status_code == 201
    assert notify(client, "shared-key").status_code == 201


# --- faults ----------------------------------------------------------------------------------


def test_fault_before_answers_without_processing(client: httpx.Client) -> None:
    fault = add_fault(client, method="post", path="/payments")
    assert (fault["method"], fault["remaining"], fault["status"], fault["when"]) == (
        "POST",
        1,
        503,
        "before",
    )
    assert fault["id"]

    failed = pay(client, "k-1")
    assert failed.status_code == 503
    assert fault["id"] in failed.json()["detail"]
    assert ledger(client) == []
    assert client.get("/_faults").json() == []

    # The fault is used up: the retry goes through and is the first real payment.
    assert pay(client, "k-1").status_code == 201
    assert len(ledger(client)) == 1


def test_lost_response_then_retry_with_same_key_pays_once(client: httpx.Client) -> None:
    add_fault(client, method="POST", path="/payments", status=502, when="after")
    lost = pay(client, "pay-INV-1")
    assert lost.status_code == 502
    assert "processed" in lost.json()["detail"]
    [paid] = ledger(client)

    retry = pay(client, "pay-INV-1")
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == paid
    assert ledger(client) == [paid]


def test_lost_status_change_is_not_applied_twice(client: httpx.Client, invoice: dict) -> None:
    add_fault(client, method="POST", path="/erp/invoices/*/status", when="after")
    assert change_status(client, "approve-1", "approved").status_code == 503
    retry = change_status(client, "approve-1", "approved")
    assert retry.status_code == 200
    assert [h["status"] for h in retry.json()["status_history"]] == ["exception", "approved"]


def test_fault_counts_down_and_matches_method_and_glob(client: httpx.Client) -> None:
    fault = add_fault(client, method="GET", path="/erp/*", count=2, status=500)
    create_supplier(client)
    assert client.get("/payments").status_code == 200

    assert client.get("/erp/suppliers").status_code == 500
    assert client.get("/_faults").json() == [fault | {"remaining": 1}]
    assert client.get("/erp/suppliers/SUP-1").status_code == 500
    assert client.get("/_faults").json() == []
    assert client.get("/erp/suppliers/SUP-1").status_code == 200


def test_oldest_matching_fault_applies_first(client: httpx.Client) -> None:
    add_fault(client, path="/payments", status=500)
    add_fault(client, path="/payments", status=429)
    assert [client.get("/payments").status_code for _ in range(3)] == [500, 429, 200]


@pytest.mark.parametrize("status", [0, 200])
def test_delay_only_fault_processes_the_request(client: httpx.Client, status: int) -> None:
    add_fault(client, path="/payments", status=status, delay_seconds=0.3)
    started = time.monotonic()
    response = pay(client, "k-1")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 201
    assert len(ledger(client)) == 1


def test_delay_then_error(client: httpx.Client) -> None:
    add_fault(client, path="/notifications", status=504, delay_seconds=0.2)
    started = time.monotonic()
    assert notify(client).status_code == 504
    assert time.monotonic() - started >= 0.2
    assert client.get("/notifications").json() == []


def test_health_and_fault_routes_are_never_faulted(client: httpx.Client) -> None:
    add_fault(client, path="*", count=5)
    assert client.get("/health").status_code == 200
    assert client.get("/_faults").json()[0]["remaining"] == 5
    add_fault(client, path="/_faults")
    assert len(client.get("/_faults").json()) == 2


def test_clearing_faults(client: httpx.Client) -> None:
    add_fault(client, path="/payments*", count=10)
    add_fault(client, path="/notifications")
    cleared = client.delete("/_faults")
    assert cleared.status_code == 200
    assert cleared.json() == {"cleared": 2}
    assert client.get("/_faults").json() == []
    assert pay(client, "k-1").status_code == 201


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"path": "/payments", "status": 302}, "status"),
        ({"path": "/payments", "count": 0}, "count"),
        ({"path": "payments"}, "path"),
        ({"path": "/payments", "when": "during"}, "when"),
        ({"path": "/payments", "delay_seconds": -1}, "delay_seconds"),
    ],
)
def test_invalid_fault_is_refused(client: httpx.Client, spec: dict, field: str) -> None:
    response = client.post("/_faults", json=spec)
    assert response.status_code == 422
    assert f"{field}:" in response.json()["detail"]
    assert client.get("/_faults").json() == []


# --- command line ----------------------------------------------------------------------------


def test_help_says_what_it_is() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "casework.sandbox", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "systems-of-record sandbox" in result.stdout
    for option in ("--host", "--port", "--db"):
        assert option in result.stdout


def test_main_creates_the_database_directory_and_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, Any] = {}

    def fake_run(app: FastAPI, host: str, port: int) -> None:
        served.update(app=app, host=host, port=port)
        app.state.db.close()

    monkeypatch.setattr(uvicorn, "run", fake_run)
    db = tmp_path / "state" / "nested" / "sandbox.db"
    sandbox_cli.main(["--host", "127.0.0.1", "--port", "8799", "--db", str(db)])
    assert db.is_file()
    assert (served["host"], served["port"]) == ("127.0.0.1", 8799)
    assert served["app"].title == "casework systems-of-record sandbox"


def test_an_invoice_is_never_paid_more_than_its_total(client: httpx.Client, invoice: dict) -> None:
    first = pay(client, "case-1:payment", amount=invoice["total"])
    second = pay(client, "case-2:payment", amount="0.01")
    retry = pay(client, "case-1:payment", amount=invoice["total"])

    assert first.status_code == 201
    assert (retry.status_code, retry.json()["payment_id"]) == (200, first.json()["payment_id"])
    assert second.status_code == 409
    assert second.json()["detail"] == (
        f"paying 0.01 on INV-1 would pay more than its total 30.00: already paid 30.00 "
        f"({first.json()['payment_id']})"
    )
    assert [p["payment_id"] for p in ledger(client, invoice_id="INV-1")] == [
        first.json()["payment_id"]
    ]
