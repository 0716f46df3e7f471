"""Helpers for the lead-routing tests.

``FakeCrm`` fakes the sales CRM, the notifications outbox, the lead analyst and (optionally) a
changed policy by activity name (``casework.testing.fakes``), for the time-skipping workflow
tests and for recording replay histories. ``CrmSales`` and ``ScriptedLeadAnalyst`` are the
integration tests' view of the real sandbox and the scripted model, keyed by lead so one test's
script never reaches another's case.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.agents.lead_routing import LeadIntent, LeadRead
from activities.crm_sales import (
    Account,
    AccountExecutive,
    AccountMatch,
    CompanyLookup,
    Enrichment,
    Firmographics,
    FirstTouchMessage,
    FirstTouchRequest,
    Lead,
    LeadAssignment,
    LeadLookup,
    LeadRelease,
    Roster,
    RosterLookup,
)
from casework.agents.messages import AgentRequest
from casework.governance import activity as policy
from casework.governance.activity import PolicyLookup
from casework.governance.loader import load_policy
from casework.governance.models import PolicyDocument, PolicyRef
from casework.systems.notifications import Notification
from casework.testing.fakes import FakeAgent, FakeOutbox, fake, not_found
from casework.testing.scripted_llm import ScriptedLlmServer, ScriptedModel

# The activities a case runs at once to gather its context.
PARALLEL_LOOKUPS = frozenset(
    {
        "crm_sales.enrich_company",
        "llm.propose",
        "crm_sales.find_account",
        "crm_sales.list_account_executives",
    }
)

# -- records --------------------------------------------------------------------------------------


def new_lead_id(label: str) -> str:
    return f"LEAD-T-{label}-{uuid.uuid4().hex[:8]}"


def make_lead(lead_id: str, **fields: Any) -> Lead:
    """A DE lead from a software company's head of sales who asks for pricing."""
    return Lead.model_validate(
        {
            "lead_id": lead_id,
            "contact_name": "Anna Berg",
            "email": "anna@nordwind.example",
            "company": "Nordwind GmbH",
            "domain": "nordwind.example",
            "country": "DE",
            "job_title": "Head of Sales",
            "message": "We need pricing and a demo for 300 seats before our Q3 budget decision.",
        }
        | fields
    )


def make_ae(ae_id: str, load: int = 0, capacity: int = 10, **fields: Any) -> AccountExecutive:
    return AccountExecutive.model_validate(
        {
            "ae_id": ae_id,
            "name": f"AE {ae_id}",
            "email": f"{ae_id.lower()}@example.com",
            "territory": "emea",
            "current_load": load,
            "capacity": capacity,
        }
        | fields
    )


def software_company(domain: str = "nordwind.example", employees: int = 500) -> Firmographics:
    return Firmographics(
        domain=domain,
        company_name="Nordwind GmbH",
        industry="software",
        employees=employees,
        annual_revenue=Decimal("90000000"),
        country="DE",
    )


def emea_roster() -> list[AccountExecutive]:
    """Two EMEA AEs (AE-E2 the less loaded) and an inside-sales pool for the fallback."""
    return [
        make_ae("AE-E1", 6, 10),
        make_ae("AE-E2", 3, 10),
        make_ae("AE-IS", 5, 50, territory="inside_sales"),
    ]


def read(intent: LeadIntent = LeadIntent.PURCHASE, confidence: float = 0.9) -> LeadRead:
    return LeadRead(
        intent=intent,
        confidence=confidence,
        summary="scripted read",
        buying_signals=["300 seats", "Q3 budget"],
    )


def policy_with(changes: dict[str, Any]) -> PolicyDocument:
    """The shipped lead-routing policy with top-level keys replaced, pinned by its own hash."""
    shipped = load_policy("lead_routing")
    content = shipped.content | changes
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return PolicyDocument(
        ref=PolicyRef(id="lead_routing", version=shipped.ref.version, sha256=digest),
        content=content,
    )


# -- the faked systems ----------------------------------------------------------------------------


@dataclass
class FakeCrm(FakeOutbox, FakeAgent):
    """The sales CRM, the outbox, the lead analyst and the policy, in memory, by activity name."""

    lead: Lead
    roster: list[AccountExecutive] = field(default_factory=emea_roster)
    firmographics: Firmographics | ApplicationError | None = field(default_factory=software_company)
    account: Account | None = None
    agent_answer: LeadRead | ApplicationError = field(default_factory=read)
    first_touch_error: ApplicationError | None = None
    unassign_error: ApplicationError | None = None
    taken_by: str | None = None
    """An AE someone else assigned the lead to after the case read it (a person, another case)."""
    taken_once_read_by: str | None = None
    """Becomes ``taken_by`` as soon as the case has read the lead."""
    policy_changes: dict[str, Any] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    """(activity, idempotency key) of every CRM write, in order."""
    assignments: list[LeadAssignment] = field(default_factory=list)
    first_touches: list[FirstTouchRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.first_touch_error is not None:
            self.script("crm_sales.queue_first_touch", self.first_touch_error)
        if self.unassign_error is not None:
            self.script("crm_sales.unassign_lead", self.unassign_error)

    def agent_answer_to(self, request: AgentRequest) -> LeadRead | ApplicationError:
        return self.agent_answer

    @fake("policies.load")
    async def load(self, lookup: PolicyLookup) -> PolicyDocument:
        if lookup.policy_id == "lead_routing" and self.policy_changes:
            return policy_with(self.policy_changes)
        return await policy.load(lookup)

    @fake("crm_sales.get_lead")
    async def get_lead(self, lookup: LeadLookup) -> Lead:
        if lookup.lead_id != self.lead.lead_id:
            raise not_found(f"lead {lookup.lead_id}")
        now = self._now()
        if self.taken_once_read_by is not None:
            self.taken_by, self.taken_once_read_by = self.taken_once_read_by, None
        return now

    @fake("crm_sales.enrich_company")
    async def enrich_company(self, lookup: CompanyLookup) -> Enrichment:
        if isinstance(self.firmographics, ApplicationError):
            raise self.firmographics
        return Enrichment(domain=lookup.domain, firmographics=self.firmographics)

    @fake("crm_sales.find_account")
    async def find_account(self, lookup: CompanyLookup) -> AccountMatch:
        return AccountMatch(domain=lookup.domain, account=self.account)

    @fake("crm_sales.list_account_executives")
    async def list_account_executives(self, lookup: RosterLookup) -> Roster:
        return Roster(account_executives=self.roster)

    @fake("crm_sales.assign_lead")
    async def assign_lead(self, assignment: LeadAssignment) -> Lead:
        if assignment.only_if_new:
            self._refuse_if_taken()
        self.writes.append(("assign_lead", assignment.idempotency_key))
        self.assignments.append(assignment)
        return self.lead.model_copy(update={"status": "assigned", "owner_ae_id": assignment.ae_id})

    @fake("crm_sales.unassign_lead")
    async def unassign_lead(self, release: LeadRelease) -> Lead:
        self.writes.append(("unassign_lead", release.idempotency_key))
        return self.lead

    @fake("crm_sales.nurture_lead")
    async def nurture_lead(self, release: LeadRelease) -> Lead:
        if release.only_if_unassigned:
            self._refuse_if_taken()
        self.writes.append(("nurture_lead", release.idempotency_key))
        return self.lead.model_copy(update={"status": "nurture"})

    @fake("crm_sales.queue_first_touch")
    async def queue_first_touch(self, request: FirstTouchRequest) -> FirstTouchMessage:
        self.writes.append(("queue_first_touch", request.idempotency_key))
        self.first_touches.append(request)
        return FirstTouchMessage(
            message_id=f"MSG-{len(self.first_touches)}",
            lead_id=request.lead_id,
            ae_id=request.ae_id,
            to=self.lead.email,
            subject=request.subject,
            body=request.body,
            status="queued",
        )

    def _now(self) -> Lead:
        if self.taken_by is None:
            return self.lead
        return self.lead.model_copy(update={"status": "assigned", "owner_ae_id": self.taken_by})

    def _refuse_if_taken(self) -> None:
        if self.taken_by is not None:
            raise ApplicationError(
                f"lead {self.lead.lead_id} was taken meanwhile: assigned to {self.taken_by}",
                type="RequestConflict",
                non_retryable=True,
            )


# -- history --------------------------------------------------------------------------------------


async def ran_at_once(handle: WorkflowHandle, names: frozenset[str] = PARALLEL_LOOKUPS) -> bool:
    """Whether every activity in ``names`` was scheduled before any of them completed: the
    history's proof that they ran concurrently rather than one after another."""
    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    last_scheduled = first_completed = None
    for position, event in enumerate(history.events):
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name in names:
                scheduled[event.event_id] = name
                last_scheduled = position
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes.scheduled_event_id
            if completed in scheduled and first_completed is None:
                first_completed = position
    return (
        set(scheduled.values()) == names
        and last_scheduled is not None
        and first_completed is not None
        and last_scheduled < first_completed
    )


# -- the real sandbox and the scripted model ------------------------------------------------------


class CrmSales:
    """The sandbox's sales CRM and outbox, seeded and inspected over HTTP as an operator would."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._http.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def _get(self, path: str, **params: str) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def create_ae(self, ae: AccountExecutive) -> None:
        await self._post("/crm/account-executives", ae.model_dump(mode="json"))

    async def create_account(self, account: Account) -> None:
        await self._post("/crm/accounts", account.model_dump(mode="json"))

    async def create_firmographics(self, company: Firmographics) -> None:
        await self._post("/crm/firmographics", company.model_dump(mode="json"))

    async def create_lead(self, lead: Lead) -> None:
        await self._post(
            "/crm/leads",
            lead.model_dump(
                mode="json", exclude={"status", "owner_ae_id", "account_id"}, exclude_none=True
            ),
        )

    async def lead(self, lead_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._get(f"/crm/leads/{lead_id}")
        return found

    async def ae(self, ae_id: str) -> AccountExecutive:
        return AccountExecutive.model_validate(await self._get(f"/crm/account-executives/{ae_id}"))

    async def messages(self, lead_id: str) -> list[FirstTouchMessage]:
        rows = await self._get("/crm/messages", lead_id=lead_id)
        return [FirstTouchMessage.model_validate(row) for row in rows]

    async def notifications(self, case_id: str) -> list[Notification]:
        rows = await self._get("/notifications", case_id=case_id)
        return [Notification.model_validate(row) for row in rows]

    async def inject_fault(self, **spec: Any) -> None:
        await self._post("/_faults", spec)

    async def clear_faults(self) -> None:
        response = await self._http.delete("/_faults")
        response.raise_for_status()


def read_json(intent: str, confidence: float) -> str:
    """An answer matching ``activities.agents.lead_routing.LeadRead``."""
    return json.dumps(
        {
            "intent": intent,
            "confidence": confidence,
            "summary": "Scripted for an integration test.",
            "buying_signals": ["300 seats"],
        }
    )


class ScriptedLeadAnalyst(ScriptedModel):
    """Scripts the model behind the lead analyst one lead at a time."""

    def __init__(self, server: ScriptedLlmServer) -> None:
        super().__init__(server, "lead", "lead_id")
