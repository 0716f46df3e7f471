"""The sandbox's log store and the ITSM's follow-up tasks, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from casework.sandbox.server import running_sandbox


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        running_sandbox(tmp_path_factory.mktemp("sandbox") / "db.sqlite") as url,
        httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http,
    ):
        yield http


def lines(client: httpx.Client, service: str) -> list[dict]:
    response = client.post(
        "/logs/entries",
        json=[
            {"service": service, "at": "2026-11-30T09:00:00Z", "level": "INFO", "message": "up"},
            {
                "service": service,
                "at": "2026-11-30T09:05:00Z",
                "level": "ERROR",
                "message": "CurrencyFormatter failed: currency is null",
            },
            {"service": "other", "at": "2026-11-30T09:05:00Z", "level": "ERROR", "message": "x"},
        ],
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_log_search_filters_by_service_level_words_and_window(client: httpx.Client) -> None:
    created = lines(client, "checkout")
    assert [line["entry_id"][:4] for line in created] == ["LOG-"] * 3

    def search(**params: str) -> list[str]:
        response = client.get("/logs/search", params={"service": "checkout"} | params)
        assert response.status_code == 200, response.text
        return [line["message"] for line in response.json()]

    assert search() == ["up", "CurrencyFormatter failed: currency is null"]
    assert search(min_level="WARN") == ["CurrencyFormatter failed: currency is null"]
    assert search(q="currency NULL") == ["CurrencyFormatter failed: currency is null"]
    assert search(q="currency missing") == []
    assert search(until="2026-11-30T09:01:00Z") == ["up"]
    assert client.get(f"/logs/entries/{created[1]['entry_id']}").json() == created[1]
    assert client.get("/logs/entries/LOG-999999").status_code == 404


def test_a_bad_level_is_refused_naming_the_field(client: httpx.Client) -> None:
    response = client.post(
        "/logs/entries", json=[{"service": "s", "level": "LOUD", "message": "m"}]
    )
    assert response.status_code == 422
    assert "level" in response.text


def test_follow_ups_are_created_once_per_key_linked_to_an_existing_incident_and_cancelled(
    client: httpx.Client,
) -> None:
    ticket = {"ticket_id": "INC-FU-1", "title": "down", "description": "d", "requester": "erin"}
    assert client.post("/itsm/tickets", json=ticket).status_code == 201
    body = {"incident_id": "INC-FU-1", "title": "Add an alert", "owner": "ivy", "due_in_days": 7}
    first = client.post("/itsm/follow-ups", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/itsm/follow-ups", json=body, headers={"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json()
    listed = client.get("/itsm/follow-ups", params={"incident_id": "INC-FU-1"}).json()
    assert [task["task_id"] for task in listed] == [first.json()["task_id"]]

    unknown = client.post(
        "/itsm/follow-ups",
        json=body | {"incident_id": "INC-NONE"},
        headers={"Idempotency-Key": "k2"},
    )
    assert unknown.status_code == 404
    assert "incident INC-NONE not found" in unknown.text
    assert client.post("/itsm/follow-ups", json=body).status_code == 400  # no key

    task_id = first.json()["task_id"]
    cancel = {"reason": "review could not be completed"}
    cancelled = client.post(
        f"/itsm/follow-ups/{task_id}/cancel", json=cancel, headers={"Idempotency-Key": "c1"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == (
        "cancelled",
        "review could not be completed",
    )
