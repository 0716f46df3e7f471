"""The sandbox systems the refund process uses (orders, CRM customers, fraud signals, and
refunds in the payments system), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.sandbox.server import running_sandbox


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with running_sandbox(tmp_path / "sandbox.db") as url:
        yield url


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, trust_env=False, timeout=10.0)


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with _client(base_url) as http:
        yield http


def create_order(client: httpx.Client, order_id: str = "ORD-1", **fields: Any) -> dict:
    body = {
        "order_id": order_id,
        "customer_id": "CUS-1",
        "lines": [
            {"sku": "MUG", "description": "Mug", "quantity": 2, "unit_price": "12.50"},
            {"sku": "TEA", "description": "Tea", "quantity": 1, "unit_price": "5"},
        ],
        "placed_at": "2025-05-01T10:00:00+02:00",
        "delivered_at": "2025-05-03T09:00:00Z",
    } | fields
    response = client.post("/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def create_customer(client: httpx.Client, customer_id: str = "CUS-1", **fields: Any) -> dict:
    body = {"customer_id": customer_id, "name": "Ann Lee", "email": "ann@example.com"} | fields
    response = client.post("/crm/customers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def refund(client: httpx.Client, key: str | None, **fields: Any) -> httpx.Response:
    body = {"order_id": "ORD-1", "customer_id": "CUS-1", "amount": "30.00", "currency": "EUR"}
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/payments/refunds", json=body | fields, headers=headers)


def refund_ledger(client: httpx.Client, **params: str) -> list[dict]:
    response = client.get("/payments/refunds", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- orders ------------------------------------------------------------------------------------


def test_order_total_defaults_lookup_and_history(client: httpx.Client) -> None:
    created = create_order(client)
    assert created["total"] == "30.00"
    assert (created["payment_status"], created["fulfilment_status"]) == ("captured", "delivered")
    assert created["currency"] == "EUR"
    assert client.get("/orders/ORD-1").json() == created
    create_order(client, "ORD-2", customer_id="CUS-2")
    create_order(client, "ORD-3")
    assert [o["order_id"] for o in client.get("/orders").json()] == ["ORD-1", "ORD-2", "ORD-3"]
    history = client.get("/orders", params={"customer_id": "CUS-1"}).json()
    assert [o["order_id"] for o in history] == ["ORD-1", "ORD-3"]


def test_order_errors(client: httpx.Client) -> None:
    create_order(client)
    no_lines = client.post("/orders", json={"order_id": "ORD-0", "customer_id": "C", "lines": []})
    assert no_lines.status_code == 422 and "lines: List should have" in no_lines.json()["detail"]
    again = client.post(
        "/orders",
        json={
            "order_id": "ORD-1",
            "customer_id": "CUS-1",
            "lines": [{"sku": "A", "description": "a", "quantity": 1, "unit_price": "1"}],
        },
    )
    assert (again.status_code, again.json()) == (409, {"detail": "order ORD-1 already exists"})
    missing = client.get("/orders/ORD-9")
    assert (missing.status_code, missing.json()) == (404, {"detail": "order ORD-9 not found"})
    naive = client.post(
        "/orders",
        json={
            "order_id": "ORD-N",
            "customer_id": "CUS-1",
            "lines": [{"sku": "A", "description": "a", "quantity": 1, "unit_price": "1"}],
            "placed_at": "2025-05-01T10:00:00",
        },
    )
    assert naive.status_code == 422
    assert "placed_at: Input should have timezone info" in naive.json()["detail"]
    bad_status = client.post(
        "/orders",
        json={
            "order_id": "ORD-S",
            "customer_id": "CUS-1",
            "lines": [{"sku": "A", "description": "a", "quantity": 1, "unit_price": "1"}],
            "payment_status": "paid",
        },
    )
    assert bad_status.status_code == 422
    assert "payment_status: Input should be" in bad_status.json()["detail"]


# --- CRM customers and refund notes ----------------------------------------------------------


def test_customer_defaults_lookup_and_listing(client: httpx.Client) -> None:
    created = create_customer(client)
    assert (created["tier"], created["status"]) == ("standard", "active")
    create_customer(client, "CUS-2", tier="gold")
    assert client.get("/crm/customers/CUS-2").json()["tier"] == "gold"
    assert [c["customer_id"] for c in client.get("/crm/customers").json()] == ["CUS-1", "CUS-2"]
    gold = client.get("/crm/customers", params={"tier": "gold"}).json()
    assert [c["customer_id"] for c in gold] == ["CUS-2"]


def test_customer_errors(client: httpx.Client) -> None:
    create_customer(client)
    again = client.post(
        "/crm/customers", json={"customer_id": "CUS-1", "name": "x", "email": "x@example.com"}
    )
    assert (again.status_code, again.json()) == (409, {"detail": "customer CUS-1 already exists"})
    missing = client.get("/crm/customers/CUS-9")
    assert (missing.status_code, missing.json()) == (404, {"detail": "customer CUS-9 not found"})
    bad_tier = client.post(
        "/crm/customers",
        json={"customer_id": "CUS-3", "name": "x", "email": "x@example.com", "tier": "vip"},
    )
    assert bad_tier.status_code == 422 and "tier: Input should be" in bad_tier.json()["detail"]


def note(
    client: httpx.Client, key: str | None, customer_id: str = "CUS-1", **fields: Any
) -> httpx.Response:
    body = {
        "order_id": "ORD-1",
        "refund_id": "REF-000001",
        "amount": "30.00",
        "currency": "EUR",
        "note": "refunded automatically by policy",
        "case_id": "refund-ORD-1",
    } | fields
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/crm/customers/{customer_id}/refund-notes", json=body, headers=headers)


def test_refund_note_is_written_once_per_key(client: httpx.Client) -> None:
    create_customer(client)
    first = note(client, "n-1")
    assert first.status_code == 201
    written = first.json()
    assert (written["note_id"], written["customer_id"]) == ("CRN-000001", "CUS-1")
    assert datetime.fromisoformat(written["created_at"]).tzinfo is not None
    replay = note(client, "n-1", amount="30")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json() == written
    conflict = note(client, "n-1", amount="31")
    assert conflict.status_code == 409
    assert "different crm refund note request" in conflict.json()["detail"]
    assert client.get("/crm/customers/CUS-1/refund-notes").json() == [written]


def test_refund_note_errors(client: httpx.Client) -> None:
    create_customer(client)
    create_customer(client, "CUS-X", status="closed")
    no_key = note(client, None)
    assert (no_key.status_code, no_key.json()) == (
        400,
        {"detail": "Idempotency-Key header is required"},
    )
    unknown = note(client, "n-2", customer_id="CUS-9")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "customer CUS-9 not found"})
    closed = note(client, "n-3", customer_id="CUS-X")
    assert closed.status_code == 409
    assert closed.json() == {"detail": "customer CUS-X is closed; it takes no new notes"}
    assert client.get("/crm/customers/CUS-X/refund-notes").json() == []
    assert client.get("/crm/customers/CUS-9/refund-notes").status_code == 404


# --- fraud signals -----------------------------------------------------------------------------


def test_fraud_signals_by_customer_and_order(client: httpx.Client) -> None:
    def raise_signal(**fields: Any) -> dict:
        body = {"customer_id": "CUS-1", "kind": "card_mismatch", "severity": "high", "detail": "d"}
        response = client.post("/fraud/signals", json=body | fields)
        assert response.status_code == 201, response.text
        return response.json()

    first = raise_signal()
    assert (first["signal_id"], first["order_id"]) == ("FRS-000001", None)
    raise_signal(customer_id="CUS-2", severity="low")
    raise_signal(order_id="ORD-7", kind="refund_velocity")
    ids = [
        s["signal_id"] for s in client.get("/fraud/signals", params={"customer_id": "CUS-1"}).json()
    ]
    assert ids == ["FRS-000001", "FRS-000003"]
    by_order = client.get("/fraud/signals", params={"order_id": "ORD-7"}).json()
    assert [s["kind"] for s in by_order] == ["refund_velocity"]
    assert len(client.get("/fraud/signals").json()) == 3
    bad = client.post(
        "/fraud/signals",
        json={"customer_id": "CUS-1", "kind": "x", "severity": "extreme", "detail": "d"},
    )
    assert bad.status_code == 422 and "severity: Input should be" in bad.json()["detail"]


# --- refunds in the payments system ------------------------------------------------------------


def test_refund_is_issued_and_recorded_in_its_ledger(client: httpx.Client) -> None:
    response = refund(client, "refund-ORD-1:refund", reason="arrived broken", reference="case")
    assert response.status_code == 201
    issued = response.json()
    created_at = issued.pop("created_at")
    assert datetime.fromisoformat(created_at).tzinfo is not None
    assert issued == {
        "refund_id": "REF-000001",
        "order_id": "ORD-1",
        "customer_id": "CUS-1",
        "amount": "30.00",
        "currency": "EUR",
        "reason": "arrived broken",
        "reference": "case",
        "status": "issued",
        "idempotency_key": "refund-ORD-1:refund",
        "reversed_at": None,
        "reversal_reason": None,
    }
    assert client.get("/payments/refunds/REF-000001").json() == response.json()
    assert refund_ledger(client) == [response.json()]
    # Refunds are not invoice payments: the payment ledger is unchanged.
    assert client.get("/payments").json() == []


def test_refund_requires_an_idempotency_key(client: httpx.Client) -> None:
    response = refund(client, None)
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Idempotency-Key header is required"},
    )
    assert refund_ledger(client) == []


def test_same_key_never_refunds_twice_and_a_different_body_is_refused(
    client: httpx.Client,
) -> None:
    first = refund(client, "k-1")
    replay = refund(client, "k-1", amount="30")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json() == first.json()
    conflict = refund(client, "k-1", amount="31.00")
    assert conflict.status_code == 409
    assert "different refund request" in conflict.json()["detail"]
    assert [r["amount"] for r in refund_ledger(client)] == ["30.00"]


def test_concurrent_retries_with_one_key_refund_once(base_url: str) -> None:
    def attempt(_: int) -> httpx.Response:
        with _client(base_url) as http:
            return refund(http, "k-1")

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    with _client(base_url) as http:
        assert len(refund_ledger(http)) == 1


def test_lost_refund_response_then_retry_refunds_once(client: httpx.Client) -> None:
    fault = {"method": "POST", "path": "/payments/refunds", "status": 503, "when": "after"}
    assert client.post("/_faults", json=fault).status_code == 201
    lost = refund(client, "k-1")
    assert lost.status_code == 503
    assert "(the request was processed)" in lost.json()["detail"]
    retried = refund(client, "k-1")
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert [r["refund_id"] for r in refund_ledger(client)] == ["REF-000001"]


def test_refund_ledger_filters_by_order_and_customer(client: httpx.Client) -> None:
    refund(client, "k-1")
    refund(client, "k-2", order_id="ORD-2")
    refund(client, "k-3", order_id="ORD-3", customer_id="CUS-2")
    assert [r["refund_id"] for r in refund_ledger(client, order_id="ORD-2")] == ["REF-000002"]
    assert [r["refund_id"] for r in refund_ledger(client, customer_id="CUS-1")] == [
        "REF-000001",
        "REF-000002",
    ]
    assert refund_ledger(client, order_id="ORD-2", customer_id="CUS-2") == []


@pytest.mark.parametrize(("field", "value"), [("amount", "0"), ("currency", "eur")])
def test_invalid_refund_is_refused(client: httpx.Client, field: str, value: str) -> None:
    response = refund(client, "k-1", **{field: value})
    assert response.status_code == 422
    assert f"invalid request: {field}:" in response.json()["detail"]


def test_refund_reversal(client: httpx.Client) -> None:
    refund(client, "k-1")

    def reverse(
        key: str | None, refund_id: str = "REF-000001", reason: str = "CRM failed"
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return client.post(
            f"/payments/refunds/{refund_id}/reverse", json={"reason": reason}, headers=headers
        )

    assert reverse(None).status_code == 400
    unknown = reverse("r-0", refund_id="REF-999999")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "refund REF-999999 not found"})
    reversed_ = reverse("r-1")
    assert reversed_.status_code == 200
    taken_back = reversed_.json()
    assert (taken_back["status"], taken_back["reversal_reason"]) == ("reversed", "CRM failed")
    assert reverse("r-1").headers["Idempotent-Replayed"] == "true"
    # Reversing again under a new key changes nothing, not even the reason or time.
    again = reverse("r-2", reason="second thoughts")
    assert again.json() == taken_back
    assert refund_ledger(client) == [taken_back]


def test_refunds_route_is_not_taken_for_a_payment_id(client: httpx.Client) -> None:
    assert client.get("/payments/refunds").json() == []
    missing = client.get("/payments/PAY-000009")
    assert missing.json() == {"detail": "payment PAY-000009 not found"}


def test_an_order_is_never_refunded_more_than_its_total(client: httpx.Client) -> None:
    create_order(
        client,
        "ORD-T",
        lines=[{"sku": "SOFA", "description": "Sofa", "quantity": 1, "unit_price": "1000.00"}],
    )
    first = refund(client, "case-1:refund", order_id="ORD-T", amount="600.00")
    second = refund(client, "case-2:refund", order_id="ORD-T", amount="600.00")
    # A retry of the first is answered from the key, not refused as a second refund.
    retry = refund(client, "case-1:refund", order_id="ORD-T", amount="600.00")
    rest = refund(client, "case-3:refund", order_id="ORD-T", amount="400.00")

    assert first.status_code == 201
    assert (retry.status_code, retry.json()["refund_id"]) == (200, first.json()["refund_id"])
    assert second.status_code == 409
    assert second.json()["detail"] == (
        "refund of 600.00 EUR on order ORD-T would refund more than was paid: total 1000.00 "
        f"EUR, already refunded 600.00 ({first.json()['refund_id']})"
    )
    assert rest.status_code == 201
    assert [r["amount"] for r in refund_ledger(client, order_id="ORD-T")] == ["600.00", "400.00"]
    # A reversed refund gives its amount back.
    reversed_ = client.post(
        f"/payments/refunds/{first.json()['refund_id']}/reverse",
        json={"reason": "test"},
        headers={"Idempotency-Key": "case-1:reversal"},
    )
    assert reversed_.status_code == 200
    assert refund(client, "case-2:refund-2", order_id="ORD-T", amount="600.00").status_code == 201
