"""The sandbox's lending system, KYC service, credit bureau and loan disbursements, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.sandbox.server import running_sandbox


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        running_sandbox(tmp_path / "sandbox.db") as url,
        httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http,
    ):
        yield http


def created(response: httpx.Response) -> Any:
    assert response.status_code == 201, response.text
    return response.json()


def application_body(application_id: str = "APP-1", **fields: Any) -> dict[str, Any]:
    return {
        "application_id": application_id,
        "applicant": {
            "customer_id": "CUST-1",
            "full_name": "Maria Keller",
            "date_of_birth": "1985-04-12",
            "national_id": "ID-1",
            "country": "DE",
            "email": "maria@customers.example.com",
        },
        "amount": "20000.00",
        "term_months": 60,
        "declared_monthly_income": "4000.00",
        "documents": [
            {"document_id": "D1", "kind": "payslip", "monthly_amount": "4000.00"},
            {"document_id": "D2", "kind": "freelance_statement", "text": "monthly 500 EUR"},
        ],
    } | fields


def change(client: httpx.Client, status: str, key: str, **fields: Any) -> httpx.Response:
    return client.post(
        "/lending/applications/APP-1/status",
        json={"status": status} | fields,
        headers={"Idempotency-Key": key},
    )


# -- lending ------------------------------------------------------------------------------------


def test_an_application_is_created_submitted_and_read_back_verbatim(client: httpx.Client) -> None:
    body = created(client.post("/lending/applications", json=application_body()))

    assert body["status"] == "submitted"
    assert body["documents"][1]["text"] == "monthly 500 EUR"
    assert [h["status"] for h in body["status_history"]] == ["submitted"]
    assert client.get("/lending/applications/APP-1").json() == body
    assert [a["application_id"] for a in client.get("/lending/applications").json()] == ["APP-1"]
    duplicate = client.post("/lending/applications", json=application_body())
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "loan application APP-1 already exists"


def test_an_invalid_application_is_refused_naming_the_field(client: httpx.Client) -> None:
    response = client.post(
        "/lending/applications", json=application_body(term_months=0, colour="red")
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "term_months: Input should be greater than or equal to 1" in detail
    assert "colour: Extra inputs are not permitted" in detail


def test_status_changes_follow_the_allowed_transitions_once_per_key(client: httpx.Client) -> None:
    created(client.post("/lending/applications", json=application_body()))

    missing_amount = change(client, "approved", "k1")
    assert missing_amount.status_code == 422
    assert "approved_amount is required with status approved" in missing_amount.json()["detail"]
    first = change(client, "approved", "k2", approved_amount="18000.00", note="by noah")
    again = change(client, "approved", "k2", approved_amount="18000.00", note="by noah")
    refused = change(client, "declined", "k3", note="too late")
    reversed_ = change(client, "approval_reversed", "k4", note="fraud alert FA-1")

    assert first.status_code == 200 and first.json()["approved_amount"] == "18000.00"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "loan application APP-1 is approved; it can become declined only from submitted or on_hold"
    )
    assert reversed_.json()["status"] == "approval_reversed"
    history = [(h["status"], h["note"]) for h in reversed_.json()["status_history"]]
    assert history == [
        ("submitted", "application received"),
        ("approved", "by noah"),
        ("approval_reversed", "fraud alert FA-1"),
    ]
    assert change(client, "approved", "k5").status_code == 422
    unknown = client.post(
        "/lending/applications/APP-9/status",
        json={"status": "declined"},
        headers={"Idempotency-Key": "k6"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "loan application APP-9 not found"


# -- KYC ----------------------------------------------------------------------------------------


def test_identity_verification_compares_with_the_registry(client: httpx.Client) -> None:
    created(
        client.post(
            "/kyc/identities",
            json={
                "document_number": "ID-1",
                "full_name": "Maria Keller",
                "date_of_birth": "1985-04-12",
            },
        )
    )
    created(
        client.post(
            "/kyc/identities",
            json={
                "document_number": "ID-2",
                "full_name": "Jo Bauer",
                "date_of_birth": "1990-01-01",
                "status": "expired",
            },
        )
    )

    def verify(name: str, dob: str, document: str, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"full_name": name, "date_of_birth": dob, "document_number": document}
        return client.post("/kyc/verifications", json=body, headers=headers)

    verified = created(verify("KELLER, Maria", "1985-04-12", "ID-1", key="v1"))
    replay = verify("KELLER, Maria", "1985-04-12", "ID-1", key="v1")
    mismatch = created(verify("Mario Keller", "1985-04-13", "ID-1"))
    expired = created(verify("Jo Bauer", "1990-01-01", "ID-2"))
    unknown = created(verify("Ann Other", "1990-01-01", "ID-404"))

    assert (verified["status"], verified["reasons"]) == ("verified", [])
    assert replay.status_code == 200
    assert replay.json()["verification_id"] == verified["verification_id"]
    assert mismatch["status"] == "failed"
    assert mismatch["reasons"] == [
        "name 'Mario Keller' does not match the document's 'Maria Keller'",
        "date of birth does not match the document",
    ]
    assert expired["reasons"] == ["identity document ID-2 is expired"]
    assert unknown["reasons"] == ["identity document ID-404 is not in the registry"]


def test_sanctions_screening_matches_names_and_listed_birth_dates(client: httpx.Client) -> None:
    created(
        client.post(
            "/kyc/sanctions",
            json={"entry_id": "SAN-1", "name": "Pyotr Ivanov", "program": "EU list"},
        )
    )
    created(
        client.post(
            "/kyc/sanctions",
            json={
                "entry_id": "SAN-2",
                "name": "José Ramírez",
                "date_of_birth": "1970-01-01",
                "program": "UN list",
            },
        )
    )
    assert client.post(
        "/kyc/sanctions", json={"entry_id": "SAN-1", "name": "x", "program": "y"}
    ).json() == {"detail": "sanctions entry SAN-1 already exists"}
    assert client.get("/kyc/sanctions/SAN-2").json()["name"] == "José Ramírez"
    assert client.get("/kyc/sanctions/SAN-404").status_code == 404

    def screen(name: str, dob: str) -> dict[str, Any]:
        return created(
            client.post("/kyc/screenings", json={"full_name": name, "date_of_birth": dob})
        )

    by_name = screen("IVANOV, pyotr", "1999-09-09")
    accents_and_date = screen("Jose Ramirez", "1970-01-01")
    other_date = screen("Jose Ramirez", "1980-05-05")

    assert by_name["status"] == "hit"
    assert by_name["hits"] == [
        {"entry_id": "SAN-1", "name": "Pyotr Ivanov", "program": "EU list", "matched_on": ["name"]}
    ]
    assert accents_and_date["hits"][0]["matched_on"] == ["name", "date_of_birth"]
    assert (other_date["status"], other_date["hits"]) == ("clear", [])


# -- credit bureau ------------------------------------------------------------------------------


def test_the_bureau_takes_a_request_now_and_answers_later(client: httpx.Client) -> None:
    created(
        client.post(
            "/credit-bureau/files",
            json={"subject_id": "ID-1", "score": 712, "monthly_debt_payments": "250.00"},
        )
    )
    order = {"application_id": "APP-1", "subject_id": "ID-1", "reference": "case-1"}
    receipt = created(
        client.post("/credit-bureau/requests", json=order, headers={"Idempotency-Key": "r1"})
    )
    again = client.post("/credit-bureau/requests", json=order, headers={"Idempotency-Key": "r1"})
    no_key = client.post("/credit-bureau/requests", json=order)

    assert (receipt["request_id"], receipt["status"], receipt["report"]) == (
        "CBR-000001",
        "pending",
        None,
    )
    assert again.json()["request_id"] == "CBR-000001"
    assert no_key.status_code == 400
    report = client.post("/credit-bureau/requests/CBR-000001/answer").json()
    assert report == client.post("/credit-bureau/requests/CBR-000001/answer").json()
    assert (report["application_id"], report["score"], report["monthly_debt_payments"]) == (
        "APP-1",
        712,
        "250.00",
    )
    listed = client.get("/credit-bureau/requests", params={"application_id": "APP-1"}).json()
    assert [(r["status"], r["report"]["report_id"]) for r in listed] == [
        ("answered", report["report_id"])
    ]


def test_the_bureau_cannot_answer_for_a_subject_without_a_file(client: httpx.Client) -> None:
    created(
        client.post(
            "/credit-bureau/requests",
            json={"application_id": "APP-2", "subject_id": "ID-404"},
            headers={"Idempotency-Key": "r2"},
        )
    )

    response = client.post("/credit-bureau/requests/CBR-000001/answer")

    assert response.status_code == 409
    assert response.json()["detail"].startswith("no credit file for subject ID-404")
    assert client.get("/credit-bureau/requests/CBR-404").status_code == 404


# -- disbursements ------------------------------------------------------------------------------


def test_a_disbursement_is_paid_once_into_the_ledger_and_reverses_like_a_payment(
    client: httpx.Client,
) -> None:
    body = {
        "application_id": "APP-1",
        "borrower_id": "CUST-1",
        "amount": "20000.00",
        "currency": "EUR",
        "reference": "loan-application-APP-1",
    }
    headers = {"Idempotency-Key": "loan-application-APP-1:disbursement"}
    first = created(client.post("/payments/disbursements", json=body, headers=headers))
    retry = client.post("/payments/disbursements", json=body, headers=headers)
    conflicting = client.post(
        "/payments/disbursements", json=body | {"amount": "1.00"}, headers=headers
    )

    assert retry.status_code == 200 and retry.json()["payment_id"] == first["payment_id"]
    assert conflicting.status_code == 409
    (entry,) = client.get("/payments", params={"invoice_id": "APP-1"}).json()
    assert (entry["invoice_id"], entry["supplier_id"], entry["status"]) == (
        "APP-1",
        "CUST-1",
        "completed",
    )
    reversed_ = client.post(
        f"/payments/{first['payment_id']}/reverse",
        json={"reason": "fraud alert FA-1"},
        headers={"Idempotency-Key": "loan-application-APP-1:disbursement-reversal"},
    ).json()
    assert (reversed_["status"], reversed_["reversal_reason"]) == ("reversed", "fraud alert FA-1")


# -- what the loan case reads back: applicants' messages, fraud alerts, disbursement limits -----


def test_an_applicants_message_is_kept_and_read_back(client: httpx.Client) -> None:
    created(client.post("/lending/applications", json=application_body()))
    body = {
        "text": "Bank statements attached",
        "documents": [{"document_id": "D3", "kind": "bank_statement", "text": "3,900.00 EUR"}],
    }
    kept = created(client.post("/lending/applications/APP-1/messages", json=body))
    unknown_application = client.post("/lending/applications/APP-404/messages", json=body)

    assert kept["message_id"] == "LMSG-000001" and kept["application_id"] == "APP-1"
    assert kept["documents"][0]["text"] == "3,900.00 EUR"
    assert client.get("/lending/applications/APP-1/messages/LMSG-000001").json() == kept
    assert client.get("/lending/applications/APP-1/messages").json() == [kept]
    assert unknown_application.status_code == 404
    missing = client.get("/lending/applications/APP-1/messages/LMSG-999")
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        "loan application APP-1 has no message LMSG-999",
    )
    empty = client.post("/lending/applications/APP-1/messages", json={"text": ""})
    assert empty.status_code == 422 and "text" in empty.json()["detail"]


def test_fraud_monitoring_keeps_the_alerts_it_raised(client: httpx.Client) -> None:
    named = created(
        client.post(
            "/fraud/alerts",
            json={"application_id": "APP-1", "alert_id": "FA-OWN", "reason": "mule account"},
        )
    )
    numbered = created(
        client.post("/fraud/alerts", json={"application_id": "APP-2", "reason": "stolen id"})
    )
    again = client.post(
        "/fraud/alerts", json={"application_id": "APP-1", "alert_id": "FA-OWN", "reason": "x"}
    )

    assert (named["alert_id"], named["source"]) == ("FA-OWN", "fraud-monitoring")
    assert numbered["alert_id"] == "FA-000002"
    assert (again.status_code, again.json()["detail"]) == (409, "fraud alert FA-OWN already exists")
    assert client.get("/fraud/alerts/FA-OWN").json() == named
    assert client.get("/fraud/alerts", params={"application_id": "APP-2"}).json() == [numbered]
    assert client.get("/fraud/alerts/FA-404").status_code == 404


def test_a_known_loan_is_paid_out_only_once_approved_and_up_to_the_approved_amount(
    client: httpx.Client,
) -> None:
    created(client.post("/lending/applications", json=application_body()))
    body = {"application_id": "APP-1", "borrower_id": "CUST-1", "amount": "15000.00"}
    body |= {"currency": "EUR"}

    def disburse(key: str, **fields: str) -> httpx.Response:
        return client.post(
            "/payments/disbursements", json=body | fields, headers={"Idempotency-Key": key}
        )

    early = disburse("case-1:disbursement")
    change(client, "approved", "case-1:status-approved", approved_amount="15000.00")
    first = disburse("case-1:disbursement")
    retry = disburse("case-1:disbursement")
    second = disburse("case-2:disbursement", amount="1.00")

    assert (early.status_code, early.json()["detail"]) == (
        409,
        "loan application APP-1 is submitted, not approved: nothing may be paid out",
    )
    assert first.status_code == 201
    assert (retry.status_code, retry.json()["payment_id"]) == (200, first.json()["payment_id"])
    assert second.status_code == 409
    assert second.json()["detail"].startswith(
        "paying 1.00 on APP-1 would pay more than the approved amount 15000.00: already paid "
        "15000.00"
    )
