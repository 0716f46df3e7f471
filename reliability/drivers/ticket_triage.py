"""The ticket-triage process in the reliability suite: each ticket write happens once.

Triage moves no money, so its "never twice" is about the ticket: classified, assigned, resolved
and commented on at most once each, whatever was retried or replayed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from casework.audit import AuditKind
from casework.case import CaseStatus
from casework.testing.scripted_llm import ScriptedReply, case_data
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
    delayed,
)
from reliability.model import FALLBACK_WIRE_NAME, ModelFault
from workflows.ticket_triage import TicketTriageInput, TicketTriageWorkflow, TriageStatus

ASSIGN = Scenario("assigned by policy", People.APPROVE)
REVIEW = Scenario("reviewed, then assigned", People.APPROVE)
LEAVE = Scenario("left waiting for review", People.LEAVE)


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


class TicketTriageDriver(CaseDriver):
    process = "ticket-triage"
    scenarios = (ASSIGN, REVIEW, ASSIGN, LEAVE)
    # Triage moves no money and has no saga: a ticket write that fails for good fails the case
    # (saying which write), so the faults about undoing a payment are not its own.
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault) - {
        SandboxFault.REJECTED_AFTER_PAYMENT,
        SandboxFault.OUTCOME_UNKNOWN,
    }
    submitter = "erin"
    waiting_scenario = LEAVE
    finished_scenario = ASSIGN

    def new_key(self, tag: str, number: int) -> str:
        return f"INC-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return TicketTriageInput(ticket_id=key, submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return TicketTriageWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "a ticket the service desk does not have",
                {"ticket_id": f"INC-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        response = await http.post(
            "/itsm/tickets",
            json={
                "ticket_id": key,
                "title": "VPN drops every few minutes",
                "description": "Since this morning my VPN connection drops every few minutes.",
                "requester": "erin",
            },
        )
        response.raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        data = case_data(request)
        ticket_id = (data or {}).get("ticket", {}).get("ticket_id")
        return TicketTriageWorkflow.case_id(ticket_id) if ticket_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        """Look for similar tickets first, then propose: network, to network-ops; confident
        enough for the policy to assign it, or not (a person reviews first)."""
        if turn == 0:
            return ScriptedReply(
                tool_calls=[
                    _tool_call("call-similar", "find_similar_tickets", {"ticket_id": case.key})
                ]
            )
        proposal = {
            "category": "network",
            "severity": 3,
            "action": "assign",
            "team": "network-ops",
            "reasons": ["VPN drops: network"],
            "confidence": 0.5 if case.scenario is not ASSIGN else 0.9,
        }
        return ScriptedReply(
            tool_calls=[_tool_call(f"call-final-{turn}", "final_answer", proposal)]
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        ticket = f"/itsm/tickets/{key}"
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": ticket, "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", f"{ticket}/similar", TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("POST", f"{ticket}/assign", SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                return [
                    {"method": "POST", "path": f"{ticket}/assign", "status": 503, "when": "after"},
                    {
                        "method": "POST",
                        "path": f"{ticket}/comments",
                        "status": 503,
                        "when": "after",
                    },
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [{"method": "POST", "path": f"/itsm/tickets/{key}/classify"}]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (SandboxFault.SLOW, SandboxFault.RESPONSE_LOST):
            return scenario is not LEAVE  # a ticket left waiting is never written
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        response = await http.get(f"/itsm/tickets/{key}")
        if response.status_code == 404:  # an unknown ticket (the bad-input matrix)
            return Ledger()
        ticket = response.raise_for_status().json()
        # "created" is the seeding, not the case.
        actions = [entry["action"] for entry in ticket["history"] if entry["action"] != "created"]
        return Ledger(writes=Counter(actions))

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.scenario is LEAVE:
            return frozenset({CaseStatus.AWAITING_APPROVAL})
        return frozenset({TriageStatus.ASSIGNED})

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        written = sum(ledger.writes.values())
        if outcome.status == TriageStatus.ASSIGNED and ledger.writes["assigned"] != 1:
            found.append(
                f"assigned, but the ticket records {ledger.writes['assigned']} assignments"
            )
        if outcome.status in (CaseStatus.AWAITING_APPROVAL,) and written:
            found.append(f"waiting for review, yet the ticket was written: {dict(ledger.writes)}")
        facts = outcome.state.facts if outcome.state else {}
        if case.model_fault is ModelFault.PRIMARY_DOWN and FALLBACK_WIRE_NAME not in str(
            facts.get("agent_models", "")
        ):
            found.append(f"the primary model was down, but the fallback never answered: {facts}")
        if case.model_fault is ModelFault.PROVIDER_DOWN and (
            facts.get("agent") != "failed" or "no usable proposal" not in _decisions(outcome)
        ):
            found.append("the model was down, but the case did not go to a person saying so")
        return found


def _decisions(outcome: Outcome) -> str:
    return " ".join(
        event.summary for event in outcome.audit if event.kind is AuditKind.POLICY_DECISION
    )


DRIVER = TicketTriageDriver()
