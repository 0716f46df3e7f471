"""Faults aimed at one case's writes by their Idempotency-Key: shared routes such as /payments
can be faulted for one case while every other case's calls go through."""

from __future__ import annotations

import httpx

from tests.test_sandbox import add_fault, base_url, client, ledger, pay

__all__ = ["base_url", "client"]  # fixtures, used by name


def test_a_fault_can_aim_at_one_idempotency_key(client: httpx.Client) -> None:
    fault = add_fault(client, method="POST", path="/payments", idempotency_key="case-A:*", count=2)
    assert fault["idempotency_key"] == "case-A:*"
    assert pay(client, "case-B:payment").status_code == 201
    assert pay(client, None).status_code == 400  # no key: not this fault's, refused by payments
    assert pay(client, "case-A:payment").status_code == 503
    assert pay(client, "case-A:payment").status_code == 503
    assert pay(client, "case-A:payment").status_code == 201
    assert client.get("/_faults").json() == []
    assert len(ledger(client)) == 2


def test_the_default_matches_requests_with_or_without_a_key(client: httpx.Client) -> None:
    add_fault(client, method="GET", path="/payments", count=1)
    assert client.get("/payments").status_code == 503
