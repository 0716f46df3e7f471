"""The lead-routing process in the reliability suite: each lead assigned and messaged once.

Its writes are to the sales CRM: the assignment to an account executive, the first-touch message,
the nurture queue when sales ops rejects the routing; when the first touch cannot be queued after
the assignment, the assignment must be undone.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from casework.case import CaseStatus
from casework.testing.scripted_llm import ScriptedReply, case_value
from reliability.drivers.base import (
    SLOW_DELAY_SECONDS,
    TIMEOUT_DELAY_SECONDS,
    CaseDriver,
    Ledger,
    Outcome,
    People,
    PlannedCase,
    SandboxFault,
    Scenario,
    agent_fault_problems,
    delayed,
)
from workflows.lead_routing import LeadRoutingInput, LeadRoutingWorkflow, LeadStatus

MESSAGE = "We need pricing and a demo for 300 seats before our Q3 budget decision."
# Every case's lead may go to any EMEA account executive the run seeded (the least loaded): each
# has room for every case of the largest run, so no case ends "no capacity" by the run's size.
AE_CAPACITY = 10_000

ROUTE = Scenario("routed straight through", People.APPROVE)
APPROVE = Scenario("reviewed, approved", People.APPROVE)
REJECT = Scenario("reviewed, rejected: nurtured", People.REJECT)
LEAVE = Scenario("left waiting for review", People.LEAVE)
ROUTES = frozenset({ROUTE.name, APPROVE.name})


class LeadRoutingDriver(CaseDriver):
    process = "lead-routing"
    scenarios = (ROUTE, APPROVE, ROUTE, REJECT, APPROVE, LEAVE)
    # Leads move no money: the faults about undoing a payment are not its own. Its compensation
    # (the assignment undone when the first touch fails for good) is the "4xx after the write"
    # below, on the first touch.
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault) - {
        SandboxFault.OUTCOME_UNKNOWN
    }
    # Not sales ops (paul): the suite's reviewer is never the submitter.
    submitter = "erin"
    waiting_scenario = LEAVE
    finished_scenario = ROUTE

    def new_key(self, tag: str, number: int) -> str:
        return f"LEAD-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return LeadRoutingInput(lead_id=key, submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return LeadRoutingWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "a lead the CRM does not have",
                {"lead_id": f"LEAD-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """An account executive with room to spare, the company's firmographics (an ideal
        customer: software, 500 people, Germany) and the lead, each named after the key."""
        domain = _domain(key)
        for path, body in (
            (
                "/crm/account-executives",
                {
                    "ae_id": f"AE-{key}",
                    "name": f"AE of {key}",
                    "email": f"ae-{key.lower()}@example.com",
                    "territory": "emea",
                    "current_load": 0,
                    "capacity": AE_CAPACITY,
                },
            ),
            (
                "/crm/firmographics",
                {
                    "domain": domain,
                    "company_name": f"Company of {key}",
                    "industry": "software",
                    "employees": 500,
                    "annual_revenue": "90000000",
                    "country": "DE",
                },
            ),
            (
                "/crm/leads",
                {
                    "lead_id": key,
                    "contact_name": "Anna Berg",
                    "email": f"anna@{domain}",
                    "company": f"Company of {key}",
                    "domain": domain,
                    "country": "DE",
                    "job_title": "Head of Sales",
                    "message": MESSAGE,
                },
            ),
        ):
            (await http.post(path, json=body)).raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        lead_id = case_value(request, "lead", "lead_id")
        return LeadRoutingWorkflow.case_id(lead_id) if lead_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        """A purchase intent backed by a signal quoted from the message: confident enough for the
        policy to route the lead alone, or so unsure that sales ops reviews it first."""
        return ScriptedReply(
            content=json.dumps(
                {
                    "intent": "purchase",
                    "confidence": 0.9 if case.scenario is ROUTE else 0.1,
                    "summary": "Asks for pricing and a demo for 300 seats.",
                    "buying_signals": ["300 seats"],
                }
            )
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        lead = f"/crm/leads/{key}"
        assign = {"method": "POST", "path": f"{lead}/assign", "idempotency_key": f"{case_id}:*"}
        message = {"method": "POST", "path": f"{lead}/messages"}
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": lead, "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", f"/crm/firmographics/{_domain(key)}", TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("GET", lead, SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                # Assigned and messaged, then both answers lost: the retries must find them by
                # idempotency key (a second message would be a 409, a second assignment a load).
                return [
                    assign | {"status": 503, "when": "after"},
                    message | {"status": 503, "when": "after"},
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # The first touch refused for good after the assignment: the assignment must be
                # undone, and the undoing has to ride out a 503 first.
                return [
                    message | {"status": 422},
                    {
                        "method": "POST",
                        "path": f"{lead}/unassign",
                        "idempotency_key": f"{case_id}:unassign",
                        "status": 503,
                    },
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [{"method": "POST", "path": f"/crm/leads/{key}/assign"}]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (SandboxFault.RESPONSE_LOST, SandboxFault.REJECTED_AFTER_PAYMENT):
            return scenario.name in ROUTES
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        response = await http.get(f"/crm/leads/{key}")
        if response.status_code == 404:  # an unknown lead (the bad-input matrix)
            return Ledger()
        lead = response.raise_for_status().json()
        writes: Counter[str] = Counter(entry["action"] for entry in lead["history"])
        writes.pop("created", None)  # the seeding, not the case
        messages = (await http.get("/crm/messages", params={"lead_id": key})).raise_for_status()
        writes["first touch"] = len(messages.json())
        reversals = {}
        if writes["assigned"]:
            reversals["assignment"] = writes["unassigned"] > 0
        return Ledger(writes=+writes, reversals=reversals)

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault is SandboxFault.REJECTED_AFTER_PAYMENT:
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                ROUTE.name: {LeadStatus.ROUTED},
                APPROVE.name: {LeadStatus.ROUTED},
                REJECT.name: {CaseStatus.REJECTED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        writes = ledger.writes
        match outcome.status:
            case LeadStatus.ROUTED:
                if writes["assigned"] != 1 or writes["first touch"] != 1 or writes["unassigned"]:
                    found.append(f"routed, but the CRM records {dict(writes)}")
            case CaseStatus.FAILED_COMPENSATED:
                if writes["assigned"] != 1 or writes["unassigned"] != 1:
                    found.append(
                        f"compensated, but the CRM records {dict(writes)} (every compensated "
                        "case must have its assignment undone)"
                    )
            case CaseStatus.REJECTED:
                if writes["assigned"] or writes["nurtured"] != 1:
                    found.append(f"rejected, but the CRM records {dict(writes)}")
            case _:
                if sum(writes.values()):
                    found.append(f"{outcome.status}, yet the CRM records {dict(writes)}")
        return found + agent_fault_problems(case, outcome)


def _domain(key: str) -> str:
    return f"{key.lower()}.example"


DRIVER = LeadRoutingDriver()
