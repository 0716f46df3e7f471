"""The incident-review process in the reliability suite: each follow-up is created once.

A review moves no money: its "never twice" is about the ITSM. An approved review's follow-ups
are created at most once each and linked to the incident by one comment, whatever was retried or
replayed; a review rejected or left waiting writes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

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
from reliability.model import ModelFault
from workflows.incident_review import IncidentReviewInput, IncidentReviewWorkflow, ReviewStatus

TEAM = "payments-ops"

APPROVE = Scenario("approved, follow-ups created", People.APPROVE)
REJECT = Scenario("rejected", People.REJECT)
LEAVE = Scenario("left waiting for the incident manager", People.LEAVE)
UNREVIEWED = Scenario("a severity the policy does not review: ends at once", People.APPROVE)


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


class IncidentReviewDriver(CaseDriver):
    process = "incident-review"
    scenarios = (APPROVE, REJECT, APPROVE, LEAVE)
    # No payment: the faults about undoing one are not its own.
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault) - {
        SandboxFault.REJECTED_AFTER_PAYMENT,
        SandboxFault.OUTCOME_UNKNOWN,
    }
    submitter = "erin"
    waiting_scenario = LEAVE
    # A person decides every review; only an incident the policy does not review ends alone.
    finished_scenario = UNREVIEWED

    def new_key(self, tag: str, number: int) -> str:
        return f"INC-V{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return IncidentReviewInput(incident_id=key, submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return IncidentReviewWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "an incident the service desk does not have",
                {"incident_id": f"INC-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        service = f"svc-{key}"
        for path, body in (
            (
                "/itsm/cis",
                {
                    "ci_id": service,
                    "name": f"service {service}",
                    "kind": "service",
                    "owner_team": TEAM,
                    "oncall": "ivy",
                    "criticality": "critical",
                },
            ),
            (
                "/logs/entries",
                [{"service": service, "level": "ERROR", "message": "500 on POST /checkout"}],
            ),
            (
                "/itsm/tickets",
                {
                    "ticket_id": key,
                    "title": f"{service} down",
                    "description": "Every checkout fails with a 500.",
                    "requester": "erin",
                    "ci_id": service,
                    "severity": 3 if scenario is UNREVIEWED else 1,
                },
            ),
        ):
            (await http.post(path, json=body)).raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        data = case_data(request)
        incident_id = (data or {}).get("incident", {}).get("ticket_id")
        return IncidentReviewWorkflow.case_id(incident_id) if incident_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        """Search the service's logs first, then draft from the incident itself: one timeline
        entry citing it, one follow-up for the service's team."""
        if turn == 0:
            return ScriptedReply(
                tool_calls=[_tool_call("call-logs", "search_logs", {"service": f"svc-{case.key}"})]
            )
        incident = (case_data(request) or {}).get("incident", {})
        cited = [{"kind": "incident", "ref": case.key}]
        draft = {
            "summary": f"{case.key}: checkout failed.",
            "timeline": [
                {"at": incident.get("created_at"), "event": "incident opened", "evidence": cited}
            ],
            "probable_cause": "not established",
            "cause_evidence": cited,
            "follow_ups": [{"title": "Alert on checkout errors", "owner": TEAM}],
            "confidence": 0.6,
        }
        return ScriptedReply(tool_calls=[_tool_call(f"call-final-{turn}", "final_answer", draft)])

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": f"/itsm/tickets/{key}", "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", "/logs/search", TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("POST", "/itsm/follow-ups", SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                return [
                    {"method": "POST", "path": "/itsm/follow-ups", "status": 503, "when": "after"},
                    {
                        "method": "POST",
                        "path": f"/itsm/tickets/{key}/comments",
                        "status": 503,
                        "when": "after",
                    },
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [{"method": "POST", "path": "/itsm/follow-ups"}]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (SandboxFault.SLOW, SandboxFault.RESPONSE_LOST):
            return scenario is APPROVE  # only an approved review writes
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        response = await http.get(f"/itsm/tickets/{key}")
        if response.status_code == 404:  # an unknown incident (the bad-input matrix)
            return Ledger()
        ticket = response.raise_for_status().json()
        tasks = (await http.get("/itsm/follow-ups", params={"incident_id": key})).json()
        writes: Counter[str] = Counter(f"follow-up {task['title']}" for task in tasks)
        writes["comment"] = sum(1 for entry in ticket["history"] if entry["action"] == "commented")
        return Ledger(
            writes=+writes,
            reversals={task["task_id"]: task["status"] == "cancelled" for task in tasks},
        )

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.scenario is LEAVE:
            return frozenset({CaseStatus.AWAITING_APPROVAL})
        if case.scenario in (REJECT, UNREVIEWED):
            return frozenset({CaseStatus.REJECTED})
        return frozenset({ReviewStatus.FOLLOW_UPS_CREATED})

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        follow_ups = ledger.writes["follow-up Alert on checkout errors"]
        # With every model down there is no draft; the manager approves, as the suite's people
        # do, without writing follow-ups of their own: the review creates none.
        drafted = 0 if case.model_fault is ModelFault.PROVIDER_DOWN else 1
        if outcome.status == ReviewStatus.FOLLOW_UPS_CREATED and (
            follow_ups != drafted or ledger.writes["comment"] != 1
        ):
            found.append(f"follow-ups created, but the ITSM records {dict(ledger.writes)}")
        if outcome.status != ReviewStatus.FOLLOW_UPS_CREATED and any(
            not cancelled for cancelled in ledger.reversals.values()
        ):
            found.append(f"{outcome.status}, yet follow-ups are left open: {dict(ledger.writes)}")
        return found


DRIVER = IncidentReviewDriver()
