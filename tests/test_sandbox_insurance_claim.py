"""The sandbox systems the insurance claim uses (policy administration, claims and payouts, claim
history, repair-cost benchmarks), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from casework.sandbox.server import running_sandbox
from demos.insurance_claim import BENCHMARKS, SMALL, VEHICLE_CLASS, MotorClaim, seed_claim


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    path: Path = tmp_path_factory.mktemp("claims") / "sandbox.db"
    with (
        running_sandbox(path) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http,
    ):
        yield http


@pytest.fixture(scope="module")
async def claim_id(client: httpx.Client) -> str:
    async with httpx.AsyncClient(base_url=client.base_url, trust_env=False) as sandbox:
        return await seed_claim(sandbox, 42, MotorClaim("collision", "Rear-ended.", SMALL))


def pay(client: httpx.Client, claim_id: str, key: str, amount: str = "1100.00") -> httpx.Response:
    return client.post(
        "/claims/payouts",
        json={"claim_id": claim_id, "payee_id": "H-42", "amount": amount, "currency": "EUR"},
        headers={"Idempotency-Key": key},
    )


def test_a_claim_is_read_back_with_its_estimate_and_documents(
    client: httpx.Client, claim_id: str
) -> None:
    claim = client.get(f"/claims/{claim_id}").json()
    assert claim["estimate_total"] == "1380.00"
    assert [d["kind"] for d in claim["documents"]] == [
        "claim_form",
        "policy",
        "repair_estimate",
        "police_report",
    ]
    estimate = claim["documents"][2]["document_id"]
    text = client.get(f"/claims/{claim_id}/documents/{estimate}").json()["text"]
    assert "HEADLAMP-L | Left headlamp unit | 380.00" in text
    assert client.post("/claims", json={"claim_id": claim_id}).status_code == 422
    assert client.get(f"/claims/{claim_id}/documents/DOC-999999").status_code == 404


def test_a_claim_is_paid_once_per_key_and_never_twice_until_reversed(
    client: httpx.Client, claim_id: str
) -> None:
    first = pay(client, claim_id, "case:payout")
    assert first.status_code == 201, first.text
    again = pay(client, claim_id, "case:payout")
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    # Another key for the same claim: the claim is already paid.
    assert pay(client, claim_id, "other:payout").status_code == 409
    # The same key for another amount: a different request.
    assert pay(client, claim_id, "case:payout", "1.00").status_code == 409
    payout_id = first.json()["payout_id"]
    reversed_ = client.post(
        f"/claims/payouts/{payout_id}/reverse",
        json={"reason": "fraud finding"},
        headers={"Idempotency-Key": "case:payout-reversal"},
    )
    assert (reversed_.status_code, reversed_.json()["status"]) == (200, "reversed")
    assert pay(client, claim_id, "case:payout-2").status_code == 201
    statuses = [p["status"] for p in client.get(f"/claims/payouts/by-claim/{claim_id}").json()]
    assert statuses == ["reversed", "paid"]


def test_the_policy_register_closes_and_reopens_a_claim(
    client: httpx.Client, claim_id: str
) -> None:
    path = f"/policy-admin/policies/POL-42/claims/{claim_id}"
    closed = client.post(
        path,
        json={"status": "paid", "amount_paid": "1100.00", "note": "payout"},
        headers={"Idempotency-Key": "case:close-claim"},
    )
    assert (closed.status_code, closed.json()["status"]) == (200, "paid")
    reopened = client.post(path, json={"status": "reopened", "note": "recovery"})
    assert reopened.json()["status"] == "reopened"
    assert client.get(path).json()["status"] == "reopened"
    assert client.post(path, json={"status": "lost", "note": "x"}).status_code == 422
    assert (
        client.post(
            "/policy-admin/policies/POL-NONE/claims/C-1", json={"status": "paid", "note": "x"}
        ).status_code
        == 404
    )


def test_letters_reach_the_claimants_address_once_per_key(
    client: httpx.Client, claim_id: str
) -> None:
    letter = {"subject": "Your claim", "body": "We pay."}
    headers = {"Idempotency-Key": "case:letter:paid"}
    first = client.post(f"/claims/{claim_id}/letters", json=letter, headers=headers)
    second = client.post(f"/claims/{claim_id}/letters", json=letter, headers=headers)
    assert first.json() == second.json()
    assert first.json()["to"] == "claimant-42@example.com"
    assert len(client.get(f"/claims/{claim_id}/letters").json()) == 1


def test_benchmarks_history_and_findings_are_looked_up(client: httpx.Client) -> None:
    for code, description, low, typical, high in BENCHMARKS[:2]:
        body = {
            "item_code": code,
            "vehicle_class": VEHICLE_CLASS,
            "description": description,
            "low": low,
            "typical": typical,
            "high": high,
        }
        assert client.post("/repair-costs/benchmarks", json=body).status_code == 201
    found = client.get(
        "/repair-costs/benchmarks",
        params={"vehicle_class": VEHICLE_CLASS, "items": "HEADLAMP-L,NOPE,BUMPER-FRONT"},
    ).json()
    assert [b["item_code"] for b in found] == ["BUMPER-FRONT", "HEADLAMP-L"]
    inverted = body | {"low": "900.00"}
    assert client.post("/repair-costs/benchmarks", json=inverted).status_code == 422

    past = {
        "claim_id": "OLD-1",
        "policy_number": "POL-42",
        "holder_id": "H-42",
        "loss_date": "2025-03-01",
        "peril": "theft",
        "repair_shop": "Shady Motors",
        "amount_paid": "0",
        "outcome": "denied",
        "description": "Staged theft",
        "fraud_confirmed": True,
    }
    assert client.post("/claim-history/claims", json=past).status_code == 201
    assert client.post("/claim-history/claims", json=past).status_code == 409
    (prior,) = client.get("/claim-history/holders/H-42/claims").json()
    assert prior["fraud_confirmed"] is True
    similar = client.get(
        "/claim-history/similar", params={"peril": "collision", "repair_shop": "Shady Motors"}
    ).json()
    assert [c["claim_id"] for c in similar] == ["OLD-1"]
    finding = client.post(
        "/claim-history/fraud-findings",
        json={"claim_id": "CLM-42", "source": "SIU", "reason": "invoiced repairs never made"},
    ).json()
    assert client.get(f"/claim-history/fraud-findings/{finding['finding_id']}").json() == finding
    assert client.get("/claim-history/fraud-findings/FF-999999").status_code == 404
