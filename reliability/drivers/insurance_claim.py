"""The insurance-claim process in the reliability suite: a claim is paid exactly once, or not at
all, and closed once on its policy's register.

Its writes are the payout (keyed ``<case id>:payout``), the claim's status on the policy's
claims register and the letters to the claimant; when closing the claim is refused for good after
the payout, the payout must be reversed. Its agents are a coordinator and three specialists, each
its own region: the driver answers each as its offline stand-in would (``stand_in_reply``), over
the real HTTP path. A paid claim stays under its recovery watch for days, so a running case that
has paid rests there (``resting_statuses``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from activities.agents.insurance_claim import agent_of, team_stand_in_turn
from casework.agents.messages import ChatMessage, ToolCall
from casework.case import TOOL_RETRY, CaseStatus
from casework.testing.scripted_llm import ScriptedReply, case_value
from demos.insurance_claim import LARGE, SMALL, MotorClaim, seed_benchmarks, seed_claim
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
from workflows.insurance_claim import ClaimStatus, InsuranceClaimInput, InsuranceClaimWorkflow

FAST = Scenario("fast-tracked, paid", People.APPROVE)
ADJUSTER = Scenario("adjuster approves, paid", People.APPROVE)
REJECT = Scenario("adjuster rejects, denied", People.REJECT)
LEAVE = Scenario("left waiting for an adjuster", People.LEAVE)
NOT_COVERED = Scenario("not covered, denied by the policy", People.APPROVE)
"""Finishes with no person (the bad-input matrix's finished case)."""
PAYS = frozenset({FAST.name, ADJUSTER.name})
CLAIMS = {
    FAST.name: MotorClaim("collision", "Rear-ended at a junction.", SMALL),
    ADJUSTER.name: MotorClaim("collision", "Side impact in a car park.", LARGE),
    REJECT.name: MotorClaim("collision", "Side impact in a car park.", LARGE),
    LEAVE.name: MotorClaim("collision", "Side impact in a car park.", LARGE),
    NOT_COVERED.name: MotorClaim("flood", "Flooded overnight by the river.", SMALL),
}


def chat_messages(request: dict[str, Any]) -> list[ChatMessage]:
    """A chat-completions request's conversation, as the agents' turns read it."""
    return [
        ChatMessage(
            role=message["role"],
            content=message.get("content"),
            tool_call_id=message.get("tool_call_id"),
            tool_calls=[
                ToolCall(
                    id=call["id"],
                    name=call["function"]["name"],
                    arguments=call["function"]["arguments"],
                )
                for call in message.get("tool_calls") or []
            ],
        )
        for message in request["messages"]
    ]


def agent_output(request: dict[str, Any]) -> str | None:
    """Which claim agent a chat request is from, by its output; None if none of them."""
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    agent = agent_of(system or "")
    return agent.output if agent is not None else None


def stand_in_reply(request: dict[str, Any]) -> ScriptedReply:
    """What the requesting agent's offline stand-in says to the conversation, as a model's
    reply: the agents' own tool calls, delegation and answers, over the real HTTP path."""
    if agent_output(request) is None:
        return ScriptedReply(status=400, error_body={"error": {"message": "not a claim agent"}})
    message = team_stand_in_turn(chat_messages(request))
    return ScriptedReply(
        content=message.content, tool_calls=[call.wire() for call in message.tool_calls] or None
    )


class InsuranceClaimDriver(CaseDriver):
    process = "insurance-claim"
    scenarios = (FAST, ADJUSTER, FAST, REJECT, NOT_COVERED, LEAVE)
    # Not PRIMARY_DOWN: the claim policy names no fallback model for its four agents, so with
    # the primary down the coordinator fails and an adjuster decides (PROVIDER_DOWN's case).
    model_faults: ClassVar[frozenset[ModelFault]] = frozenset(ModelFault) - {
        ModelFault.PRIMARY_DOWN
    }
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault)
    submitter = "alice"
    waiting_scenario = LEAVE
    finished_scenario = NOT_COVERED
    resting_statuses: ClassVar[frozenset[str]] = frozenset({ClaimStatus.PAID})

    def new_key(self, tag: str, number: int) -> str:
        return f"R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return InsuranceClaimInput(claim_id=f"CLM-{key}", submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return InsuranceClaimWorkflow.case_id(f"CLM-{key}")

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "a claim the claims system does not have",
                {"claim_id": f"CLM-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            )
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        await seed_benchmarks(http)
        await seed_claim(http, key, CLAIMS[scenario.name])

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        claim_id = case_value(request, "claim", "claim_id")
        return InsuranceClaimWorkflow.case_id(claim_id) if claim_id else None

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        return stand_in_reply(request)

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        claim = f"/claims/CLM-{key}"
        payout = {"method": "POST", "path": "/claims/payouts", "idempotency_key": f"{case_id}:*"}
        register = {"method": "POST", "path": f"/policy-admin/policies/POL-{key}/claims/*"}
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": claim, "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", f"/policy-admin/policies/POL-{key}", TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("POST", f"{claim}/letters", SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                # The payout and the register are written, then their answers are lost: the
                # retries must find the first ones (idempotency keys), not make new ones.
                return [
                    payout | {"status": 503, "when": "after"},
                    register | {"status": 503, "when": "after"},
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # Policy administration refuses to close the claim for good after the payout:
                # the payout must be reversed.
                return [register | {"status": 422}]
            case SandboxFault.OUTCOME_UNKNOWN:
                # Paid on the first attempt, and every answer lost for as long as the case
                # retries: the case must find its payout in the ledger and go on with it.
                return [
                    payout | {"status": 503, "when": "after", "count": TOOL_RETRY.maximum_attempts}
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [
            {
                "method": "POST",
                "path": "/claims/payouts",
                "idempotency_key": f"{self.case_id(key)}:*",
            }
        ]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (
            SandboxFault.REJECTED_AFTER_PAYMENT,
            SandboxFault.RESPONSE_LOST,
            SandboxFault.OUTCOME_UNKNOWN,
        ):
            return scenario.name in PAYS
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        payouts = await http.get(f"/claims/payouts/by-claim/CLM-{key}")
        rows = payouts.raise_for_status().json()
        writes: Counter[str] = Counter(payout=len(rows))
        registered = await http.get(f"/policy-admin/policies/POL-{key}/claims/CLM-{key}")
        if registered.status_code != 404:
            writes[f"register {registered.json()['status']}"] += 1
        letters = await http.get(f"/claims/CLM-{key}/letters")
        if letters.status_code != 404:
            writes.update(f"letter {letter['subject']}" for letter in letters.json())
        return Ledger(
            writes=writes,
            reversals={row["payout_id"]: row["status"] == "reversed" for row in rows},
        )

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault is SandboxFault.REJECTED_AFTER_PAYMENT:
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                FAST.name: {ClaimStatus.PAID},
                ADJUSTER.name: {ClaimStatus.PAID},
                REJECT.name: {ClaimStatus.DENIED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
                NOT_COVERED.name: {ClaimStatus.DENIED},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        payouts = ledger.writes["payout"]
        reversed_ = sum(ledger.reversals.values())
        match outcome.status:
            case ClaimStatus.PAID:
                if payouts != 1 or reversed_ or ledger.writes["register paid"] != 1:
                    found.append(f"paid, but {dict(ledger.writes)}, {reversed_} reversed")
            case CaseStatus.FAILED_COMPENSATED:
                if payouts != 1 or reversed_ != 1:
                    found.append(f"compensated, but {payouts} payout(s), {reversed_} reversed")
            case _:
                if payouts:
                    found.append(f"{outcome.status}, yet {payouts} payout(s) in the ledger")
        facts = outcome.state.facts if outcome.state else {}
        if case.model_fault is ModelFault.PROVIDER_DOWN and facts.get("agent") != "failed":
            # Without a proposal the policy sends the claim to a person (or denies it, when the
            # policy record does not cover it): never pays it on its own.
            found.append(f"the model was down, but the coordinator did not fail: {facts}")
        return found


DRIVER = InsuranceClaimDriver()
