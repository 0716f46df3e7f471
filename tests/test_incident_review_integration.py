"""The incident review with every real part running together.

A Temporal CLI dev server, the real worker (real activities over HTTP, the agent region's
``llm.chat`` through litellm to a scripted OpenAI-compatible model, or the offline stand-in), the
FastAPI+SQLite sandbox, all on loopback. Each test checks what the case did to the systems of
record: the follow-up tasks in the ITSM and the comment that links them to the incident.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.deployments import REPOSITORY_ENV
from casework.config import Settings
from casework.testing.cases import open_task
from casework.testing.scripted_llm import ScriptedModel, ScriptedReply, scripted_llm_server
from casework.testing.signing import decide, signed_act
from casework.testing.temporal import scripted_worker
from casework.worker import running_worker
from demos.incident_review import deploy
from tests.triage_support import audited, scheduled_activities, tool_call
from workflows.incident_review import (
    IncidentReviewInput,
    IncidentReviewResult,
    IncidentReviewWorkflow,
    Outcome,
    ReviewStatus,
)
from workflows.ticket_triage import Acknowledgement, TicketTriageInput, TicketTriageWorkflow

ReviewHandle = WorkflowHandle[IncidentReviewWorkflow, IncidentReviewResult]


# -- the stack, once per module -----------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The deployments repository the worker reads through the git MCP server: real commits
    each test makes with git."""
    repository = tmp_path_factory.mktemp("deployments")
    os.environ[REPOSITORY_ENV] = str(repository)
    try:
        yield repository
    finally:
        del os.environ[REPOSITORY_ENV]


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with scripted_llm_server() as server:
        yield ScriptedModel(server, "incident", "ticket_id")


@pytest.fixture(scope="module")
async def scripted_queue(
    temporal: WorkflowEnvironment, sandbox_url: str, model: ScriptedModel
) -> AsyncIterator[str]:
    async with scripted_worker(temporal.client, sandbox_url, model.server, "review") as queue:
        yield queue


@pytest.fixture(scope="module")
async def offline_queue(temporal: WorkflowEnvironment, sandbox_url: str) -> AsyncIterator[str]:
    """The real worker with no model configured: the offline stand-ins answer."""
    settings = Settings(
        task_queue=f"casework-review-offline-{uuid.uuid4().hex}", sandbox_url=sandbox_url
    )
    async with running_worker(temporal.client, settings):
        yield settings.task_queue


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        yield http


# -- the systems of record ----------------------------------------------------------------------


async def post(sandbox: httpx.AsyncClient, path: str, body: Any) -> Any:
    response = await sandbox.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


@dataclass(frozen=True)
class Outage:
    incident_id: str
    release: str
    """The SHA of the service's release the test committed to the deployments repository."""


async def outage(sandbox: httpx.AsyncClient, repository: Path, label: str) -> Outage:
    """A critical service released just before it failed, its logs, and the incident ticket."""
    suffix = uuid.uuid4().hex[:8]
    service = f"svc-{label}-{suffix}"
    await post(
        sandbox,
        "/itsm/cis",
        {
            "ci_id": service,
            "name": f"service {service}",
            "kind": "service",
            "owner_team": "payments-ops",
            "oncall": "ivy",
            "criticality": "critical",
        },
    )
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    release = deploy(repository, service, "2.0.1", "new currency formatter", began)
    await post(
        sandbox,
        "/logs/entries",
        [
            {
                "service": service,
                "at": (began + timedelta(minutes=minutes)).isoformat(),
                "level": level,
                "message": message,
            }
            for minutes, level, message in [
                (-1, "WARN", "payment gateway latency 2400ms"),
                (0, "ERROR", "NullPointerException in CurrencyFormatter.format"),
                (2, "ERROR", "500 on POST /checkout"),
            ]
        ],
    )
    incident_id = f"INC-IT-{label}-{suffix}"
    await post(
        sandbox,
        "/itsm/tickets",
        {
            "ticket_id": incident_id,
            "title": f"{service} down: all payments failing",
            "description": "Every checkout fails with a 500; the service is not responding.",
            "requester": "erin",
            "ci_id": service,
            "category": "software",
            "severity": 1,
        },
    )
    return Outage(incident_id, release)


async def follow_ups(sandbox: httpx.AsyncClient, incident_id: str) -> list[dict[str, Any]]:
    response = await sandbox.get("/itsm/follow-ups", params={"incident_id": incident_id})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


async def start(temporal: WorkflowEnvironment, queue: str, incident_id: str) -> ReviewHandle:
    request = IncidentReviewInput(incident_id=incident_id, submitted_by="erin")
    return await temporal.client.start_workflow(
        IncidentReviewWorkflow.run,
        request,
        id=IncidentReviewWorkflow.case_id_for(request),
        task_queue=queue,
    )


async def decoded(client: Client, payloads: Sequence[Payload]) -> list[Any]:
    """Payloads as the client's data converter (with casework's codec) decodes them: JSON data."""
    return await client.data_converter.decode(payloads, [dict] * len(payloads))


async def mcp_calls(client: Client, handle: WorkflowHandle) -> list[tuple[str, dict[str, Any]]]:
    """(tool, arguments) of every ``mcp.call_tool`` activity in a workflow's history."""
    history = await handle.fetch_history()
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == "mcp.call_tool":
            (payload,) = await decoded(client, scheduled.input.payloads)
            found.append((payload["tool"], payload["arguments"]))
    return found


# -- the tests ----------------------------------------------------------------------------------


async def test_an_offline_draft_approved_creates_follow_ups_linked_to_the_incident(
    temporal: WorkflowEnvironment,
    offline_queue: str,
    sandbox: httpx.AsyncClient,
    deployments: Path,
) -> None:
    failed = await outage(sandbox, deployments, "approved")
    incident_id = failed.incident_id
    handle = await start(temporal, offline_queue, incident_id)
    task = await open_task(handle, "the review task")
    assert "every citation and owner in the draft is on record" in task.summary
    await decide(handle, approver="grace", action="approve")
    result = await handle.result()

    assert (result.outcome, result.status) == (Outcome.APPROVED, ReviewStatus.FOLLOW_UPS_CREATED)
    created = await follow_ups(sandbox, incident_id)
    assert [(task["owner"], task["status"]) for task in created] == [
        ("payments-ops", "open"),
        ("payments-ops", "open"),
        ("ivy", "open"),
    ]
    # The draft blames the release the test committed, read through the git MCP server.
    assert result.review is not None and failed.release[:12] in result.review.probable_cause
    ticket = (await sandbox.get(f"/itsm/tickets/{incident_id}")).json()
    (comment,) = ticket["comments"]
    assert all(task["task_id"] in comment["body"] for task in created)
    # The agent's lookups ran in its region; the case looked each cited log line up itself.
    activities = await scheduled_activities(handle)
    assert activities.count("logs.get_entry") == 3
    assert activities.count("itsm.create_follow_up") == 3
    # The git MCP server's calls are activities: the region listed its tools and read the log;
    # the case showed the cited commit itself.
    region = temporal.client.get_workflow_handle(f"{handle.id}-agent")
    assert {"mcp.list_tools", "mcp.call_tool"} <= set(await scheduled_activities(region))
    shown = await mcp_calls(temporal.client, handle)
    assert [(tool, args["revision"]) for tool, args in shown] == [("git_show", failed.release)]
    logged = await mcp_calls(temporal.client, region)
    assert [tool for tool, _ in logged] == ["git_log"]


def _lie(incident_id: str) -> dict[str, Any]:
    return {
        "summary": "The database failed over.",
        "timeline": [
            {
                "at": datetime.now(UTC).isoformat(),
                "event": "the database failed over",
                "evidence": [{"kind": "log", "ref": "LOG-999999"}],
            },
            {"at": datetime.now(UTC).isoformat(), "event": "the DBA restarted the primary"},
        ],
        "probable_cause": "a failover in commit deadbeef",
        "cause_evidence": [
            {"kind": "commit", "ref": "deadbeef"},
            {"kind": "incident", "ref": "INC-NEVER-HAPPENED"},
        ],
        "follow_ups": [
            {"title": "Replace the database", "owner": "dba-guild", "due_in_days": 3},
            {"title": "Alert on checkout errors", "owner": "payments-ops", "due_in_days": 7},
        ],
        "confidence": 0.99,
    }


async def test_a_lying_model_s_citations_and_owners_are_flagged_and_not_acted_on(
    temporal: WorkflowEnvironment,
    scripted_queue: str,
    model: ScriptedModel,
    sandbox: httpx.AsyncClient,
    deployments: Path,
) -> None:
    incident_id = (await outage(sandbox, deployments, "lying")).incident_id
    model.script(
        incident_id,
        ScriptedReply(tool_calls=[tool_call("search_logs", {"service": "anything"})]),
        ScriptedReply(tool_calls=[tool_call("final_answer", json.dumps(_lie(incident_id)))]),
    )
    handle = await start(temporal, scripted_queue, incident_id)
    task = await open_task(handle, "the review task")
    for flagged in (
        "'log LOG-999999' (record): the log store holds nothing by that name",
        "'the DBA restarted the primary' (record): uncited",
        "'commit deadbeef' (record): the deployments repository",
        "'incident INC-NEVER-HAPPENED' (record): the service desk holds nothing",
        "follow_ups[0].owner 'dba-guild' (policy): not one of",
        "Replace the database (owner dba-guild, due in 3 days) NOT created as drafted",
    ):
        assert flagged in task.summary
    await decide(handle, approver="grace", action="approve")
    result = await handle.result()

    assert result.outcome is Outcome.APPROVED
    assert [task["owner"] for task in await follow_ups(sandbox, incident_id)] == ["payments-ops"]


async def test_triage_concluding_on_a_severity_1_incident_starts_its_review(
    temporal: WorkflowEnvironment,
    offline_queue: str,
    sandbox: httpx.AsyncClient,
    deployments: Path,
) -> None:
    incident_id = (await outage(sandbox, deployments, "triage")).incident_id
    triage = await temporal.client.start_workflow(
        TicketTriageWorkflow.run,
        TicketTriageInput(ticket_id=incident_id, submitted_by="erin"),
        id=TicketTriageWorkflow.case_id(incident_id),
        task_queue=offline_queue,
    )
    await audited(triage, "the on-call page", lambda t: any(e.kind == "page_sent" for e in t))
    await triage.execute_update(
        "acknowledge",
        signed_act(triage.id, "acknowledge", Acknowledgement(responder="ivy"), "ivy"),
        result_type=str,
    )
    triaged = await asyncio.wait_for(triage.result(), timeout=60)
    assert triaged.incident_review == IncidentReviewWorkflow.case_id(incident_id)

    review: ReviewHandle = temporal.client.get_workflow_handle_for(
        IncidentReviewWorkflow.run, triaged.incident_review
    )
    task = await open_task(review, "the review task")
    assert task.role == "incident_manager"
    await decide(review, approver="grace", action="approve")
    result = await review.result()
    assert result.outcome is Outcome.APPROVED
    assert len(await follow_ups(sandbox, incident_id)) == 3
    # The review is the triage case's child, abandoned to run on when the triage case ended.
    described = await review.describe()
    assert described.parent_id == triage.id
