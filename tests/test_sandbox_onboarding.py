"""The stand-ins customer onboarding provisions in: each create is applied once per
Idempotency-Key, each close keeps the record with when and why, and records list by application.
PEP screening matches names the way sanctions screening does."""

from __future__ import annotations

import httpx
import pytest

from tests.test_sandbox import base_url, client

__all__ = ["base_url", "client"]  # fixtures, used by name

CREATES = [
    (
        "/core-banking/accounts",
        {"application_id": "APP-1", "holder_name": "Anna Martin"},
        "account_id",
        "close",
        "closed",
        "closed_at",
    ),
    (
        "/crm/customers/registrations",
        {"application_id": "APP-1", "name": "Anna Martin", "email": "anna@example.org"},
        "customer_id",
        "close",
        "closed",
        "closed_at",
    ),
    (
        "/online-banking/logins",
        {
            "application_id": "APP-1",
            "customer_id": "CRM-1",
            "username": "anna",
            "email": "anna@example.org",
        },
        "login_id",
        "revoke",
        "revoked",
        "revoked_at",
    ),
    (
        "/cards/orders",
        {"application_id": "APP-1", "account_id": "ACC-1", "cardholder_name": "Anna Martin"},
        "order_id",
        "cancel",
        "cancelled",
        "cancelled_at",
    ),
]


@pytest.mark.parametrize(("path", "body", "id_field", "verb", "final", "at"), CREATES)
def test_a_provisioned_record_is_made_once_and_undone_once(
    client: httpx.Client, path: str, body: dict, id_field: str, verb: str, final: str, at: str
) -> None:
    assert client.post(path, json=body).status_code == 400  # no Idempotency-Key
    made = client.post(path, json=body, headers={"Idempotency-Key": "case-1:make"})
    assert made.status_code == 201, made.text
    again = client.post(path, json=body, headers={"Idempotency-Key": "case-1:make"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    record_id = made.json()[id_field]
    assert again.json()[id_field] == record_id
    assert [r[id_field] for r in client.get(path, params={"application_id": "APP-1"}).json()] == [
        record_id
    ]
    assert client.get(path, params={"application_id": "APP-2"}).json() == []

    # A CRM customer is closed as any customer is, not as a registration.
    records = path.removesuffix("/registrations")
    undo = f"{records}/{record_id}/{verb}"
    closed = client.post(undo, json={"reason": "withdrawn"}, headers={"Idempotency-Key": "u"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == final
    assert closed.json()[at] is not None
    repeat = client.post(undo, json={"reason": "withdrawn"}, headers={"Idempotency-Key": "u2"})
    assert repeat.json()[at] == closed.json()[at]  # closing a closed record changes nothing
    missing = client.post(
        f"{path}/NOPE/{verb}", json={"reason": "x"}, headers={"Idempotency-Key": "k"}
    )
    assert missing.status_code == 404


def test_a_registered_crm_customer_is_a_customer_of_the_crm(client: httpx.Client) -> None:
    made = client.post(
        "/crm/customers/registrations",
        json={"application_id": "APP-9", "name": "Anna Martin", "email": "anna@example.org"},
        headers={"Idempotency-Key": "k"},
    ).json()
    customer = client.get(f"/crm/customers/{made['customer_id']}").json()
    assert (customer["name"], customer["status"]) == ("Anna Martin", "active")


def test_a_taken_username_is_refused(client: httpx.Client) -> None:
    body = {"application_id": "A", "customer_id": "C", "username": "anna", "email": "a@b.org"}
    assert client.post(
        "/online-banking/logins", json=body, headers={"Idempotency-Key": "1"}
    ).is_success
    taken = client.post("/online-banking/logins", json=body, headers={"Idempotency-Key": "2"})
    assert taken.status_code == 409
    assert "username" in taken.json()["detail"]


def test_pep_screening_matches_names_in_any_order(client: httpx.Client) -> None:
    person = {
        "entry_id": "PEP-1",
        "name": "Horvat, Marek",
        "date_of_birth": "1969-05-09",
        "position": "Deputy minister",
        "country": "HR",
    }
    assert client.post("/pep/persons", json=person).status_code == 201
    match = client.post(
        "/pep/screenings", json={"full_name": "marek HORVAT", "date_of_birth": "1969-05-09"}
    ).json()
    assert match["status"] == "match"
    assert [m["entry_id"] for m in match["matches"]] == ["PEP-1"]
    other_birthday = client.post(
        "/pep/screenings", json={"full_name": "Marek Horvat", "date_of_birth": "1970-01-01"}
    ).json()
    assert other_birthday["status"] == "clear"
