"""Customer onboarding with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP, the identity reader's
``llm.propose`` through litellm), the FastAPI+SQLite sandbox and a scripted OpenAI-compatible
model, all on loopback. Each test checks what the case left in the systems of record: after a
failure or a withdrawal nothing stays provisioned, and the undo ran newest first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from casework.case import TOOL_RETRY
from casework.testing.cases import open_task
from casework.testing.scripted_llm import ScriptedModel, ScriptedReply, scripted_llm_server
from casework.testing.signing import decide
from casework.testing.temporal import eventually, scripted_worker
from tests.customer_onboarding_support import application, passport_text, withdrawal
from workflows.customer_onboarding import (
    CustomerOnboardingInput,
    CustomerOnboardingResult,
    CustomerOnboardingWorkflow,
    OnboardingStatus,
    Outcome,
)


@pytest.fixture(scope="module")
def reader() -> Iterator[ScriptedModel]:
    with scripted_llm_server() as server:
        yield ScriptedModel(server, "application_id")


@pytest.fixture(scope="module")
async def task_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, reader: ScriptedModel
) -> AsyncIterator[str]:
    async with scripted_worker(
        temporal.client, sandbox_url, reader.server, "onboarding-integration"
    ) as queue:
        yield queue


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        yield http
        # A test that fails before its fault is used up must not fault the next test's case.
        await http.delete("/_faults")


def reading_reply(request: CustomerOnboardingInput, **lies: Any) -> ScriptedReply:
    """The model's reading of the applicant's document: faithful, unless told to lie."""
    values = {
        "document_kind": "passport",
        "full_name": request.full_name,
        "date_of_birth": request.date_of_birth.isoformat(),
        "document_number": request.document_number,
        "nationality": request.nationality,
        "expiry_date": "2031-05-01",
        "issues": [],
        "confidence": 0.96,
    } | lies
    return ScriptedReply(content=json.dumps(values), prompt_tokens=320, completion_tokens=60)


async def new_applicant(
    sandbox: httpx.AsyncClient, reader: ScriptedModel, **fields: Any
) -> CustomerOnboardingInput:
    """An application whose passport the KYC registry holds; the reader reads it faithfully."""
    request = application(f"APP-INT-{uuid.uuid4().hex[:8]}", **fields)
    response = await sandbox.post(
        "/kyc/identities",
        json={
            "document_number": request.document_number,
            "full_name": request.full_name,
            "date_of_birth": request.date_of_birth.isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    reader.answer(request.application_id, reading_reply(request))
    return request


async def start(temporal: WorkflowEnvironment, task_queue: str, request: CustomerOnboardingInput):
    return await temporal.client.start_workflow(
        CustomerOnboardingWorkflow.run,
        request,
        id=CustomerOnboardingWorkflow.case_id_for(request),
        task_queue=task_queue,
        result_type=CustomerOnboardingResult,
    )


async def fault_card_order(
    sandbox: httpx.AsyncClient, request: CustomerOnboardingInput, **fault: Any
) -> None:
    case_id = CustomerOnboardingWorkflow.case_id_for(request)
    response = await sandbox.post(
        "/_faults",
        json={"method": "POST", "path": "/cards/orders", "idempotency_key": f"{case_id}:card"}
        | fault,
    )
    assert response.status_code == 201, response.text


async def provisioned(sandbox: httpx.AsyncClient, application_id: str) -> dict[str, list[dict]]:
    """What each system holds for the application, as the sandbox records it."""
    paths = {
        "accounts": "/core-banking/accounts",
        "customers": "/crm/customers/registrations",
        "logins": "/online-banking/logins",
        "cards": "/cards/orders",
    }
    records = {}
    for name, path in paths.items():
        response = await sandbox.get(path, params={"application_id": application_id})
        assert response.status_code == 200, response.text
        records[name] = response.json()
    return records


def at(record: dict, column: str) -> datetime:
    return datetime.fromisoformat(record[column])


async def test_an_onboarded_customer_is_provisioned_in_every_system(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: httpx.AsyncClient,
    reader: ScriptedModel,
) -> None:
    request = await new_applicant(sandbox, reader)
    result = await (await start(temporal, task_queue, request)).result()
    assert result.outcome is Outcome.ONBOARDED
    assert result.status == OnboardingStatus.ONBOARDED
    records = await provisioned(sandbox, request.application_id)
    (account,) = records["accounts"]
    (customer,) = records["customers"]
    (login,) = records["logins"]
    (card,) = records["cards"]
    assert (account["status"], customer["status"], login["status"], card["status"]) == (
        "open",
        "active",
        "active",
        "ordered",
    )
    assert login["customer_id"] == customer["customer_id"] == result.customer_id
    assert card["account_id"] == account["account_id"] == result.account_id
    # In order: each system's record was made after the one before it.
    assert (
        at(account, "opened_at")
        < at(customer, "registered_at")
        < at(login, "created_at")
        < at(card, "ordered_at")
    )
    mail = (await sandbox.get("/notifications", params={"to": request.email})).json()
    assert [n["subject"] for n in mail] == [f"Welcome, {request.full_name}"]
    assert len(reader.requests_for(request.application_id)) == 1


async def test_a_refused_card_order_leaves_nothing_provisioned(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: httpx.AsyncClient,
    reader: ScriptedModel,
) -> None:
    request = await new_applicant(sandbox, reader)
    await fault_card_order(sandbox, request, status=422, count=1)
    result = await (await start(temporal, task_queue, request)).result()
    assert result.outcome is Outcome.FAILED_COMPENSATED
    records = await provisioned(sandbox, request.application_id)
    assert records["cards"] == []
    (account,) = records["accounts"]
    (customer,) = records["customers"]
    (login,) = records["logins"]
    assert (account["status"], customer["status"], login["status"]) == (
        "closed",
        "closed",
        "revoked",
    )
    # Undone newest first: the login, then the CRM customer, then the account.
    assert at(login, "revoked_at") < at(customer, "closed_at") < at(account, "closed_at")
    assert result.compensated == [
        f"online-banking login {login['login_id']} revoked",
        f"CRM customer {customer['customer_id']} closed",
        f"account {account['account_id']} closed",
    ]


async def test_a_withdrawal_while_the_card_is_ordered_undoes_everything(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: httpx.AsyncClient,
    reader: ScriptedModel,
) -> None:
    request = await new_applicant(sandbox, reader)
    # The card order is held at the sandbox, so the withdrawal arrives while it is in flight.
    await fault_card_order(sandbox, request, status=0, delay_seconds=5, count=1)
    handle = await start(temporal, task_queue, request)
    card_key = f"{CustomerOnboardingWorkflow.case_id_for(request)}:card"

    async def card_order_held() -> bool | None:
        # The sandbox drops a fault once its last call arrived: the order is being held now.
        faults = (await sandbox.get("/_faults")).raise_for_status().json()
        return not any(fault["idempotency_key"] == card_key for fault in faults) or None

    await eventually(card_order_held, what="the card order to reach the sandbox", timeout=60)
    await handle.signal("withdraw", withdrawal("I found an account elsewhere"))
    result = await handle.result()

    assert result.outcome is Outcome.WITHDRAWN
    assert result.status == OnboardingStatus.WITHDRAWN
    records = await provisioned(sandbox, request.application_id)
    (account,) = records["accounts"]
    (customer,) = records["customers"]
    (login,) = records["logins"]
    (card,) = records["cards"]
    # Nothing is left provisioned ...
    assert (account["status"], customer["status"], login["status"], card["status"]) == (
        "closed",
        "closed",
        "revoked",
        "cancelled",
    )
    # ... and it was undone newest first.
    assert (
        at(card, "cancelled_at")
        < at(login, "revoked_at")
        < at(customer, "closed_at")
        < at(account, "closed_at")
    )
    assert all("withdrawn by" in r for r in (card["cancel_reason"], login["revoke_reason"]))
    assert len(result.compensated) == 4
    assert result.message.startswith(f"withdrawn by {request.full_name}: I found an account")


async def test_a_model_that_lies_about_the_holder_provisions_nothing(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: httpx.AsyncClient,
    reader: ScriptedModel,
) -> None:
    request = await new_applicant(sandbox, reader)
    # The scanned passport is someone else's; the model says it is the applicant's.
    request = request.model_copy(
        update={"identity_document": passport_text(request.document_number, name="Boris Kane")}
    )
    reader.answer(request.application_id, reading_reply(request, confidence=0.99))
    handle = await start(temporal, task_queue, request)
    task = await open_task(handle)
    assert task.role == "compliance_officer"
    assert "full_name 'Anna Louise Martin' (document): not stated" in task.summary
    records = await provisioned(sandbox, request.application_id)
    assert all(found == [] for found in records.values())
    await decide(handle, approver="sven", action="reject", comment="not the applicant's passport")
    result = await handle.result()
    assert result.outcome is Outcome.REJECTED
    assert all(
        found == [] for found in (await provisioned(sandbox, request.application_id)).values()
    )


async def test_a_card_order_whose_every_answer_was_lost_is_found_and_cancelled(
    temporal: WorkflowEnvironment,
    task_queue: str,
    sandbox: httpx.AsyncClient,
    reader: ScriptedModel,
) -> None:
    request = await new_applicant(sandbox, reader)
    # The order is placed on the first attempt; that answer and every retry's are lost.
    await fault_card_order(
        sandbox, request, status=503, when="after", count=TOOL_RETRY.maximum_attempts
    )
    result = await (await start(temporal, task_queue, request)).result()
    assert result.outcome is Outcome.FAILED_COMPENSATED
    records = await provisioned(sandbox, request.application_id)
    (card,) = records["cards"]  # placed once: the retries found it by idempotency key
    assert card["status"] == "cancelled"
    assert all(
        record["status"] in ("closed", "revoked")
        for name in ("accounts", "customers", "logins")
        for record in records[name]
    )
    assert result.compensated[0] == f"card order {card['order_id']} cancelled"
