"""The intake service, running as ``casework up`` runs it (``python -m casework.intake``), against
a real Temporal dev server: signed, unsigned, tampered, invalid and duplicate deliveries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from casework import search_attributes as sa
from casework.intake_signing import SIGNATURE_HEADER, ensure_secret, signature, signed_by
from casework.testing.stack import free_port
from casework.testing.temporal import eventually
from tests.customer_onboarding_support import application
from workflows.customer_onboarding import CustomerOnboardingInput, CustomerOnboardingWorkflow

SECRET = "intake-test-secret-" + uuid.uuid4().hex
TASK_QUEUE = f"intake-test-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def intake_url(
    temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    home = tmp_path_factory.mktemp("intake-home")
    port = free_port()
    env = {
        **os.environ,
        "CASEWORK_HOME": str(home),
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "CASEWORK_TASK_QUEUE": TASK_QUEUE,
        "CASEWORK_INTAKE_SECRET": SECRET,
    }
    log = (home / "intake.log").open("wb")
    service = subprocess.Popen(
        [sys.executable, "-m", "casework.intake", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        service.terminate()
        service.wait(timeout=10)
        log.close()


@pytest.fixture
async def http(intake_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=intake_url, timeout=30, trust_env=False) as client:

        async def healthy() -> bool | None:
            try:
                return (await client.get("/health")).status_code == 200 or None
            except httpx.TransportError:
                return None

        await eventually(healthy, what="the intake service to answer", timeout=60)
        yield client


def body_of(request: CustomerOnboardingInput) -> bytes:
    return request.model_dump_json().encode()


async def deliver(
    http: httpx.AsyncClient, body: bytes, sign_with: str | None = SECRET, process: str = ""
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if sign_with is not None:
        headers[SIGNATURE_HEADER] = signature(body, sign_with)
    return await http.post(
        f"/intake/{process or CustomerOnboardingWorkflow.case_type}", content=body, headers=headers
    )


async def case_exists(client: Client, case_id: str) -> bool:
    try:
        await client.get_workflow_handle(case_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def new_application() -> CustomerOnboardingInput:
    return application(f"APP-IN-{uuid.uuid4().hex[:8]}")


async def test_a_signed_delivery_starts_the_case_under_its_business_key(
    http: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    request = new_application()
    response = await deliver(http, body_of(request))
    assert response.status_code == 201, response.text
    started = response.json()
    case_id = CustomerOnboardingWorkflow.case_id_for(request)
    assert started["case_id"] == case_id
    assert started["created"] is True
    description = await temporal.client.get_workflow_handle(case_id).describe()
    assert description.workflow_type == "CustomerOnboarding"
    assert description.task_queue == TASK_QUEUE
    assert description.run_id == started["run_id"]
    assert description.typed_search_attributes.get(sa.CASE_TYPE) == "customer-onboarding"
    (payload,) = await temporal.client.data_converter.decode(
        (await temporal.client.get_workflow_handle(case_id).fetch_history())
        .events[0]
        .workflow_execution_started_event_attributes.input.payloads
    )
    assert CustomerOnboardingInput.model_validate(payload) == request


async def test_an_unsigned_delivery_is_401_and_starts_nothing(
    http: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    request = new_application()
    response = await deliver(http, body_of(request), sign_with=None)
    assert response.status_code == 401
    assert SIGNATURE_HEADER in response.json()["detail"]
    assert not await case_exists(temporal.client, CustomerOnboardingWorkflow.case_id_for(request))


async def test_a_tampered_body_or_another_secret_is_401_and_starts_nothing(
    http: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    request = new_application()
    body = body_of(request)
    tampered = body.replace(b'"FR"', b'"DE"')
    assert tampered != body
    response = await http.post(
        "/intake/customer-onboarding",
        content=tampered,
        headers={SIGNATURE_HEADER: signature(body, SECRET)},
    )
    assert response.status_code == 401
    assert (await deliver(http, body, sign_with="someone-elses-secret")).status_code == 401
    bare_hex = signature(body, SECRET).removeprefix("sha256=")
    response = await http.post(
        "/intake/customer-onboarding", content=body, headers={SIGNATURE_HEADER: bare_hex}
    )
    assert response.status_code == 401
    assert not await case_exists(temporal.client, CustomerOnboardingWorkflow.case_id_for(request))


async def test_an_invalid_body_is_422_naming_the_field(
    http: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    request = new_application()
    payload = json.loads(body_of(request))
    del payload["date_of_birth"]
    response = await deliver(http, json.dumps(payload).encode())
    assert response.status_code == 422
    assert "date_of_birth" in response.json()["detail"]

    payload = json.loads(body_of(request)) | {"submitted_by": "mallory"}
    response = await deliver(http, json.dumps(payload).encode())
    assert response.status_code == 422
    assert "submitted_by: 'mallory' is not in the approval directory" in response.json()["detail"]

    response = await deliver(http, b"{not json")
    assert response.status_code == 422
    assert "not JSON" in response.json()["detail"]
    assert not await case_exists(temporal.client, CustomerOnboardingWorkflow.case_id_for(request))


async def test_an_unknown_process_is_404(http: httpx.AsyncClient) -> None:
    response = await deliver(http, body_of(new_application()), process="no-such-process")
    assert response.status_code == 404
    assert "customer-onboarding" in response.json()["detail"]


async def test_a_second_delivery_answers_200_with_the_existing_case(
    http: httpx.AsyncClient, temporal: WorkflowEnvironment
) -> None:
    body = body_of(new_application())
    first = await deliver(http, body)
    again = await deliver(http, body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["case_id"] == first.json()["case_id"]
    assert again.json()["run_id"] == first.json()["run_id"]
    runs = [
        run
        async for run in temporal.client.list_workflows(f"WorkflowId = '{first.json()['case_id']}'")
    ]
    assert len(runs) <= 1  # visibility may lag; there is never a second run


def test_signatures_are_checked_whole_and_secrets_are_private(tmp_path: Path) -> None:
    body = b'{"a": 1}'
    assert signed_by(body, signature(body, "s"), "s")
    assert not signed_by(body, signature(body, "s")[:-1], "s")
    assert not signed_by(body, None, "s")
    path = ensure_secret(tmp_path / "home" / "intake-secret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_text().strip()) == 64
    assert ensure_secret(path).read_text() == path.read_text()  # never replaced
