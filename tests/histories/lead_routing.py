"""Lead-routing scenarios: the sales CRM and the lead analyst faked by activity name
(``tests.lead_routing_support.FakeCrm``)."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.agents.lead_routing import LeadIntent
from activities.crm_sales import Account
from casework.case import CaseStatus
from casework.testing.cases import open_task
from casework.testing.recorder import Recordings, Scenario, nothing
from casework.testing.signing import decide
from tests.lead_routing_support import FakeCrm, make_ae, make_lead, read
from workflows.lead_routing import (
    LeadRoutingInput,
    LeadRoutingResult,
    LeadRoutingWorkflow,
    LeadStatus,
    Outcome,
)

LeadHandle = WorkflowHandle[LeadRoutingWorkflow, LeadRoutingResult]


def _confident_lead(lead_id: str, now: datetime) -> FakeCrm:
    return FakeCrm(make_lead(lead_id))


def _unsure_lead(lead_id: str, now: datetime) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id, message="Hello, just looking around."),
        agent_answer=read(LeadIntent.UNCLEAR, 0.3),
    )


def _existing_account(lead_id: str, now: datetime) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        roster=[make_ae("AE-OWNER", 12, 12), make_ae("AE-E2", 3, 10)],
        account=Account(
            account_id="ACC-REPLAY",
            name="Nordwind",
            domain="nordwind.example",
            owner_ae_id="AE-OWNER",
        ),
    )


def _full_territory(lead_id: str, now: datetime) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        roster=[make_ae("AE-E1", 10, 10), make_ae("AE-IS", 5, 50, territory="inside_sales")],
    )


def _nobody_free(lead_id: str, now: datetime) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        roster=[make_ae("AE-E1", 10, 10), make_ae("AE-IS", 50, 50, territory="inside_sales")],
    )


def _first_touch_refused(lead_id: str, now: datetime) -> FakeCrm:
    return FakeCrm(
        make_lead(lead_id),
        first_touch_error=ApplicationError(
            "lead is on the do-not-contact list", type="RequestConflict", non_retryable=True
        ),
    )


async def _sales_ops_approves(env: WorkflowEnvironment, handle: LeadHandle) -> None:
    await open_task(handle, "an approval task")
    await decide(handle, approver="paul", action="approve", comment="worth a call")


async def _sales_ops_rejects(env: WorkflowEnvironment, handle: LeadHandle) -> None:
    await open_task(handle, "an approval task")
    await decide(handle, approver="paul", action="reject", comment="student project")


RECORDINGS = Recordings(
    workflow=LeadRoutingWorkflow,
    # Lead IDs allow no underscore.
    key=lambda name: f"LEAD-REPLAY-{name.replace('_', '-')}",
    start=lambda lead_id, crm: LeadRoutingInput(lead_id=lead_id),
    scenarios=(
        Scenario(
            "straight_through",
            _confident_lead,
            nothing,
            {"outcome": Outcome.STRAIGHT_THROUGH, "status": LeadStatus.ROUTED},
        ),
        Scenario(
            "account_owner",
            _existing_account,
            nothing,
            {"outcome": Outcome.STRAIGHT_THROUGH, "status": LeadStatus.ROUTED},
        ),
        Scenario(
            "fallback_territory",
            _full_territory,
            nothing,
            {"outcome": Outcome.STRAIGHT_THROUGH, "status": LeadStatus.ROUTED},
        ),
        Scenario(
            "review_approved",
            _unsure_lead,
            _sales_ops_approves,
            {"outcome": Outcome.APPROVED, "status": LeadStatus.ROUTED},
        ),
        Scenario(
            "review_rejected",
            _unsure_lead,
            _sales_ops_rejects,
            {"outcome": Outcome.REJECTED, "status": CaseStatus.REJECTED},
        ),
        Scenario(
            "review_timed_out",
            _unsure_lead,
            nothing,
            {"outcome": Outcome.TIMED_OUT, "status": CaseStatus.ON_HOLD},
        ),
        Scenario(
            "no_capacity_nurtured",
            _nobody_free,
            nothing,
            {"outcome": Outcome.NO_CAPACITY, "status": CaseStatus.ON_HOLD},
        ),
        Scenario(
            "first_touch_failed_unassigned",
            _first_touch_refused,
            nothing,
            {"outcome": Outcome.FAILED_COMPENSATED, "status": CaseStatus.FAILED_COMPENSATED},
        ),
        # Another case (or a person) assigns the lead once this case has read it.
        Scenario(
            "taken_elsewhere",
            lambda lead_id, now: FakeCrm(make_lead(lead_id), taken_once_read_by="AE-E1"),
            nothing,
            {"outcome": Outcome.TAKEN_ELSEWHERE, "status": CaseStatus.SUPERSEDED},
        ),
    ),
)
