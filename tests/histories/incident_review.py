"""Incident-review scenarios: the service desk, the log store, the outbox and the model faked by
activity name (``tests.incident_review_support.FakeIncidentSystems``). Each saves two histories,
as the investigator's agent region is a child workflow with a history of its own:
``incident_review_<name>.json`` for the case and ``incident_review_<name>.agent.json`` for its
region."""

from __future__ import annotations

import json
from datetime import datetime

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.agents.incident_review import stand_in_turn
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.region import AgentRegionWorkflow
from casework.agents.tools import FINAL_ANSWER
from casework.case import CaseStatus
from casework.testing.cases import open_task
from casework.testing.recorder import Recordings, Scenario, nothing
from casework.testing.signing import decide
from tests.incident_review_support import CHECKOUT, FakeIncidentSystems, incident, linking_fails
from workflows.incident_review import (
    IncidentReviewInput,
    IncidentReviewResult,
    IncidentReviewWorkflow,
    Outcome,
    ReviewStatus,
)

ReviewHandle = WorkflowHandle[IncidentReviewWorkflow, IncidentReviewResult]


def _checkout_outage(incident_id: str, now: datetime) -> FakeIncidentSystems:
    # The offline stand-in searches the logs, reads the item and drafts from what it found.
    return FakeIncidentSystems(
        tickets={incident_id: incident(incident_id)},
        items={CHECKOUT.ci_id: CHECKOUT},
        turn=stand_in_turn,
    )


def _comment_refused(incident_id: str, now: datetime) -> FakeIncidentSystems:
    systems = _checkout_outage(incident_id, now)
    systems.script("itsm.comment_on_ticket", linking_fails())
    return systems


def _lying_investigator(incident_id: str, now: datetime) -> FakeIncidentSystems:
    """Cites a log line that does not exist and a commit nobody made, and names an owner
    nobody knows, confidently."""
    draft = {
        "summary": "The database failed over.",
        "timeline": [
            {
                "at": "2026-11-30T09:00:00+00:00",
                "event": "failover",
                "evidence": [{"kind": "log", "ref": "LOG-424242"}],
            }
        ],
        "probable_cause": "the failover in deadbeef",
        "cause_evidence": [{"kind": "commit", "ref": "deadbeef"}],
        "follow_ups": [
            {"title": "Replace the database", "owner": "dba-guild", "due_in_days": 3},
            {"title": "Add an alert", "owner": "payments-ops", "due_in_days": 7},
        ],
        "confidence": 0.99,
    }
    systems = _checkout_outage(incident_id, now)
    systems.turn = lambda messages: ChatMessage(
        role="assistant",
        tool_calls=[ToolCall(id="call-1", name=FINAL_ANSWER, arguments=json.dumps(draft))],
    )
    return systems


async def _approve(env: WorkflowEnvironment, handle: ReviewHandle) -> None:
    await open_task(handle, "the review task")
    await decide(handle, approver="grace", action="approve")


async def _edit(env: WorkflowEnvironment, handle: ReviewHandle) -> None:
    await open_task(handle, "the review task")
    await decide(
        handle,
        approver="grace",
        action="approve",
        comment="cause: CurrencyFormatter got a null currency\n"
        "follow-up: Reject orders without a currency | payments-ops | 5",
    )


async def _reject(env: WorkflowEnvironment, handle: ReviewHandle) -> None:
    await open_task(handle, "the review task")
    await decide(handle, approver="grace", action="reject", comment="wrong service")


RECORDINGS = Recordings(
    workflow=IncidentReviewWorkflow,
    key=lambda name: f"INC-REPLAY-{name}",
    start=lambda incident_id, systems: IncidentReviewInput(
        incident_id=incident_id, submitted_by="erin"
    ),
    children={"agent": AgentRegionWorkflow},
    scenarios=(
        Scenario(
            "incident_approved",
            _checkout_outage,
            _approve,
            {"outcome": Outcome.APPROVED, "status": ReviewStatus.FOLLOW_UPS_CREATED},
        ),
        Scenario(
            "incident_edited",
            _checkout_outage,
            _edit,
            {"outcome": Outcome.EDITED, "status": ReviewStatus.FOLLOW_UPS_CREATED},
        ),
        Scenario(
            "incident_rejected",
            _checkout_outage,
            _reject,
            {"outcome": Outcome.REJECTED, "status": CaseStatus.REJECTED},
        ),
        Scenario(
            "incident_timed_out",
            _checkout_outage,
            nothing,
            {"outcome": Outcome.TIMED_OUT, "status": CaseStatus.ON_HOLD},
        ),
        Scenario(
            "incident_follow_ups_cancelled",
            _comment_refused,
            _approve,
            {"outcome": Outcome.APPROVED, "status": CaseStatus.FAILED_COMPENSATED},
        ),
        Scenario(
            "incident_lying_draft_flagged",
            _lying_investigator,
            _approve,
            {"outcome": Outcome.APPROVED, "status": ReviewStatus.FOLLOW_UPS_CREATED},
        ),
    ),
)
