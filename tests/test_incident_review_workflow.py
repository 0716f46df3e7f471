"""The incident-review process on the time-skipping server, its systems and model faked by
activity name: one test per outcome, and the investigator's word checked against the records."""

from __future__ import annotations

import json
import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.agents.incident_review import SYSTEM_PROMPT as INVESTIGATOR_PROMPT
from activities.agents.incident_review import stand_in_turn
from activities.agents.ticket_triage import stand_in_turn as triage_turn
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.region import AgentRegionWorkflow
from casework.agents.tools import FINAL_ANSWER
from casework.audit import AuditKind
from casework.case import CaseStatus
from casework.testing.cases import audit, events_of, open_task
from casework.testing.fakes import fake_worker
from casework.testing.signing import decide, signed_act
from casework.testing.temporal import time_skipping_server
from tests.incident_review_support import (
    CHECKOUT,
    DEPLOY_SHA,
    DEPLOYMENTS,
    FakeIncidentSystems,
    incident,
    linking_fails,
)
from tests.triage_support import audited
from workflows.incident_review import (
    IncidentReviewInput,
    IncidentReviewWorkflow,
    Outcome,
    ReviewStatus,
    parse_edit,
)
from workflows.ticket_triage import Acknowledgement, TicketTriageInput, TicketTriageWorkflow


def systems(**fields: object) -> FakeIncidentSystems:
    ticket = incident(f"INC-{uuid.uuid4().hex[:8]}")
    return FakeIncidentSystems(
        tickets={ticket.ticket_id: ticket},
        items={CHECKOUT.ci_id: CHECKOUT},
        turn=stand_in_turn,
        **fields,  # type: ignore[arg-type]
    )


def incident_id(fakes: FakeIncidentSystems) -> str:
    return next(iter(fakes.tickets))


async def start(env: WorkflowEnvironment, fakes: FakeIncidentSystems, queue: str):
    request = IncidentReviewInput(incident_id=incident_id(fakes), submitted_by="erin")
    return await env.client.start_workflow(
        IncidentReviewWorkflow.run,
        request,
        id=IncidentReviewWorkflow.case_id_for(request),
        task_queue=queue,
    )


WORKFLOWS = (IncidentReviewWorkflow, AgentRegionWorkflow)


async def test_an_approved_review_creates_its_follow_ups_and_links_them_to_the_incident(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "the review task")
        assert task.role == "incident_manager"
        assert "log LOG-000003" in task.summary
        assert "every citation and owner in the draft is on record" in task.summary
        await decide(handle, approver="grace", action="approve")
        result = await handle.result()

    assert result.outcome is Outcome.APPROVED
    assert result.status == ReviewStatus.FOLLOW_UPS_CREATED
    assert result.decided_by == "grace"
    assert result.unverified == []
    # The stand-in's owners are the item's team and its on-call, both on record.
    assert [task.owner for task in result.follow_ups] == ["payments-ops", "payments-ops", "ivy"]
    assert fakes.open_follow_ups() == result.follow_ups
    # It read the deployments through the git MCP server, confined to the repository the worker
    # knows, and the case checked the commit it cites through the same server.
    git = [(call.tool, call.arguments) for call in fakes.calls("mcp.call_tool")]
    assert git == [
        ("git_log", {"repo_path": DEPLOYMENTS, "max_count": 20}),
        ("git_show", {"repo_path": DEPLOYMENTS, "revision": DEPLOY_SHA}),
    ]
    (server,) = {call.settings.model_dump_json() for call in fakes.calls("mcp.call_tool")}
    assert json.loads(server)["args"] == ["--repository", DEPLOYMENTS]
    assert DEPLOY_SHA[:12] in result.review.probable_cause
    (comment,) = fakes.calls("itsm.comment_on_ticket")
    assert comment.ticket_id == incident_id(fakes)
    assert all(task.task_id in comment.body for task in result.follow_ups)
    # Every cited log line was looked up again by the case, not taken from the agent.
    looked_up = {lookup.entry_id for lookup in fakes.calls("logs.get_entry")}
    assert looked_up == {"LOG-000002", "LOG-000003", "LOG-000004"}


async def test_an_edited_review_creates_the_follow_ups_the_manager_wrote(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        await open_task(handle, "the review task")
        # An owner nobody knows is refused before it reaches the history.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(
                handle,
                approver="grace",
                action="approve",
                comment="follow-up: Fix the formatter | the-intern | 3",
            )
        assert "owner 'the-intern' is neither a person in the directory" in str(refused.value.cause)
        await decide(
            handle,
            approver="grace",
            action="approve",
            comment="Good draft, one change.\ncause: CurrencyFormatter got a null currency\n"
            "follow-up: Reject orders without a currency | payments-ops | 5",
        )
        result = await handle.result()

    assert result.outcome is Outcome.EDITED
    assert result.review is not None
    assert result.review.probable_cause == "CurrencyFormatter got a null currency"
    assert [(t.title, t.owner, t.due_in_days) for t in fakes.open_follow_ups()] == [
        ("Reject orders without a currency", "payments-ops", 5)
    ]


async def test_a_rejected_review_creates_nothing(time_skipping_env: WorkflowEnvironment) -> None:
    fakes = systems()
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        await open_task(handle, "the review task")
        await decide(handle, approver="grace", action="reject", comment="wrong service")
        result = await handle.result()

    assert result.outcome is Outcome.REJECTED
    assert result.status == CaseStatus.REJECTED
    assert fakes.calls("itsm.create_follow_up") == []
    assert fakes.calls("itsm.comment_on_ticket") == []


async def test_a_review_nobody_decides_escalates_then_goes_on_hold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        result = await handle.result()
        trail = await audit(handle)

    assert result.outcome is Outcome.TIMED_OUT
    assert result.status == CaseStatus.ON_HOLD
    assert len(events_of(trail, AuditKind.TASK_ESCALATED)) == 1
    assert len(events_of(trail, AuditKind.TASK_TIMED_OUT)) == 1
    assert fakes.calls("itsm.create_follow_up") == []
    assert any("on hold" in subject for subject in fakes.sent_to("frank@example.com"))


async def test_follow_ups_are_cancelled_when_they_cannot_be_linked_to_the_incident(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    fakes.script("itsm.comment_on_ticket", linking_fails())
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        await open_task(handle, "the review task")
        await decide(handle, approver="grace", action="approve")
        result = await handle.result()

    assert result.outcome is Outcome.APPROVED
    assert result.status == CaseStatus.FAILED_COMPENSATED
    created = [task.task_id for task in fakes.follow_ups.values()]
    # Undone newest first, and nothing is left open.
    assert fakes.cancelled == list(reversed(created))
    assert fakes.open_follow_ups() == []
    assert "the incident is locked" in result.message


def _lying_draft(incident_id: str) -> str:
    at = "2026-11-30T09:00:00+00:00"
    return json.dumps(
        {
            "summary": "The database failed over.",
            "timeline": [
                # A real line, but the time it is cited for is an hour off.
                {
                    "at": "2026-11-30T10:00:00+00:00",
                    "event": "errors",
                    "evidence": [{"kind": "log", "ref": "LOG-000003"}],
                },
                # A line that does not exist, and one of another service.
                {
                    "at": at,
                    "event": "failover",
                    "evidence": [
                        {"kind": "log", "ref": "LOG-424242"},
                        {"kind": "log", "ref": "LOG-000099"},
                    ],
                },
                # Nothing cited at all.
                {"at": at, "event": "the DBA restarted the primary"},
            ],
            "probable_cause": "the database failover in commit deadbeef",
            "cause_evidence": [
                {"kind": "commit", "ref": "deadbeef"},
                {"kind": "incident", "ref": "INC-NEVER"},
                {"kind": "incident", "ref": incident_id},
            ],
            "follow_ups": [
                {"title": "Replace the database", "owner": "dba-guild", "due_in_days": 3},
                {"title": "Add an alert", "owner": "payments-ops", "due_in_days": 7},
            ],
            "confidence": 0.99,
        }
    )


async def test_what_a_lying_investigator_cites_is_checked_and_flagged(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems(similar=[])
    lie = _lying_draft(incident_id(fakes))
    fakes.turn = lambda messages: ChatMessage(
        role="assistant", tool_calls=[ToolCall(id="call-1", name=FINAL_ANSWER, arguments=lie)]
    )
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "the review task")
        await decide(handle, approver="grace", action="approve")
        result = await handle.result()

    flagged = "\n".join(result.unverified)
    assert "timeline[0] '2026-11-30T10:00:00+00:00'" in flagged  # the time contradicts the line
    assert "timeline[1] 'log LOG-424242' (record): the log store holds nothing" in flagged
    assert "the line is search-api's, not the affected checkout-api's" in flagged
    assert "timeline[2] 'the DBA restarted the primary' (record): uncited" in flagged
    assert "probable_cause 'commit deadbeef'" in flagged
    assert "probable_cause 'incident INC-NEVER'" in flagged
    assert "follow_ups[0].owner 'dba-guild'" in flagged
    assert f"incident {incident_id(fakes)}" not in flagged  # its own incident is on record
    assert "NOT created as drafted: unknown owner" in task.summary
    # Approved as it stands, only the follow-up with a real owner is created.
    assert [t.owner for t in fakes.open_follow_ups()] == ["payments-ops"]
    assert result.outcome is Outcome.APPROVED


async def test_without_a_draft_the_manager_writes_the_follow_ups(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    fakes.turn = lambda messages: ChatMessage(role="assistant", content="I cannot help with that.")
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        task = await open_task(handle, "the review task")
        assert "no usable draft" in task.summary
        await decide(
            handle,
            approver="grace",
            action="approve",
            comment="cause: gateway timeout\nfollow-up: Raise the gateway timeout | ivy",
        )
        result = await handle.result()

    assert result.outcome is Outcome.EDITED
    assert [(t.owner, t.due_in_days) for t in fakes.open_follow_ups()] == [("ivy", 14)]


def test_an_edit_names_what_is_wrong_with_its_lines() -> None:
    edit, problems = parse_edit("follow-up: only a title\nfollow-up: t | ivy | soon\nnote")
    assert edit.follow_ups is None
    assert problems[0] == ("follow-up line 'only a title': write 'follow-up: title | owner | days'")
    assert problems[1].startswith("follow-up line 't | ivy | soon': invalid literal")


def _either_agent(messages: list[ChatMessage]) -> ChatMessage:
    """Both stand-ins behind one fake model: each region's system prompt says whose turn it is."""
    system = messages[0].content or ""
    return (stand_in_turn if system.startswith(INVESTIGATOR_PROMPT) else triage_turn)(messages)


async def test_triage_concluding_on_a_severity_1_incident_starts_its_review_without_waiting() -> (
    None
):
    ticket = incident(f"INC-{uuid.uuid4().hex[:8]}").model_copy(update={"status": "new"})
    fakes = FakeIncidentSystems(
        tickets={ticket.ticket_id: ticket}, items={CHECKOUT.ci_id: CHECKOUT}, turn=_either_agent
    )
    # A time-skipping server of its own: after this test the session's server stopped skipping
    # time for every later test (found by running the suite in order; cause not yet known).
    async with (
        time_skipping_server() as env,
        fake_worker(env.client, fakes, TicketTriageWorkflow, *WORKFLOWS) as queue,
    ):
        client = env.client
        triage = await client.start_workflow(
            TicketTriageWorkflow.run,
            TicketTriageInput(ticket_id=ticket.ticket_id, submitted_by="erin"),
            id=TicketTriageWorkflow.case_id(ticket.ticket_id),
            task_queue=queue,
        )
        await audited(triage, "the on-call page", lambda t: bool(events_of(t, AuditKind.PAGE_SENT)))
        await triage.execute_update(
            "acknowledge",
            signed_act(triage.id, "acknowledge", Acknowledgement(responder="ivy"), "ivy"),
            result_type=str,
        )
        triaged = await triage.result()
        assert triaged.incident_review == IncidentReviewWorkflow.case_id(ticket.ticket_id)
        review = client.get_workflow_handle_for(IncidentReviewWorkflow.run, triaged.incident_review)
        # The triage case is done; its review goes on, waiting for the incident manager.
        assert (await review.describe()).status == WorkflowExecutionStatus.RUNNING
        task = await open_task(review, "the review task")
        assert task.role == "incident_manager"
        await decide(review, approver="grace", action="approve")
        reviewed = await review.result()
        (started,) = [
            e for e in await audit(triage) if e.summary.startswith("started the post-incident")
        ]

    assert started.data["case"] == triaged.incident_review
    assert reviewed.outcome is Outcome.APPROVED
    assert len(reviewed.follow_ups) == 3


async def test_an_incident_of_a_severity_the_policy_does_not_review_ends_unreviewed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = systems()
    ticket = next(iter(fakes.tickets.values()))
    fakes.tickets[ticket.ticket_id] = ticket.model_copy(update={"severity": 3})
    async with fake_worker(time_skipping_env.client, fakes, *WORKFLOWS) as queue:
        handle = await start(time_skipping_env, fakes, queue)
        result = await handle.result()

    assert (result.outcome, result.status) == (Outcome.NOT_REVIEWED, CaseStatus.REJECTED)
    assert "severity is 3; the policy reviews severities 1 only" in result.message
    assert fakes.calls("llm.chat") == []
    assert fakes.calls("itsm.create_follow_up") == []
