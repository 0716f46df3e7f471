"""The customer-onboarding process in the reliability suite: provisions each system once, or
undoes everything it provisioned."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from casework.case import TOOL_RETRY, CaseStatus
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
    delayed,
)
from reliability.model import ModelFault
from workflows.customer_onboarding import (
    CustomerOnboardingInput,
    CustomerOnboardingWorkflow,
    OnboardingStatus,
)

LOW_RISK = Scenario("onboarded", People.APPROVE)
DUE_DILIGENCE_APPROVED = Scenario("due diligence approved", People.APPROVE)
DUE_DILIGENCE_REJECTED = Scenario("due diligence rejected", People.REJECT)
LEAVE = Scenario("left waiting", People.LEAVE)
PEPS = frozenset({DUE_DILIGENCE_APPROVED.name, DUE_DILIGENCE_REJECTED.name, LEAVE.name})
PROVISIONS = frozenset({LOW_RISK.name, DUE_DILIGENCE_APPROVED.name})
SYSTEMS = {
    "account": ("/core-banking/accounts", "account_id", "closed"),
    "CRM customer": ("/crm/customers/registrations", "customer_id", "closed"),
    "online-banking login": ("/online-banking/logins", "login_id", "revoked"),
    "card order": ("/cards/orders", "order_id", "cancelled"),
}
"""What the case provisions: where the sandbox lists it, its ID, and its status once undone."""


class CustomerOnboardingDriver(CaseDriver):
    process = "customer-onboarding"
    scenarios = (LOW_RISK, DUE_DILIGENCE_APPROVED, LOW_RISK, DUE_DILIGENCE_REJECTED, LEAVE)
    # No fallback model is configured for the identity reader; with every model down the
    # reading is missing, which sends the applicant to compliance (checked in ``problems``).
    model_faults: ClassVar[frozenset[ModelFault]] = frozenset(ModelFault) - {
        ModelFault.PRIMARY_DOWN
    }
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault)
    submitter = "alice"
    waiting_scenario = LEAVE
    finished_scenario = LOW_RISK

    def new_key(self, tag: str, number: int) -> str:
        return f"CO-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        document_number = "P" + "".join(ch for ch in key if ch.isalnum())
        full_name = f"Reliability Applicant {key}"
        return CustomerOnboardingInput(
            application_id=key,
            submitted_by=self.submitter,
            full_name=full_name,
            date_of_birth="1980-02-29",
            nationality="FR",
            email=f"{key.lower()}@example.org",
            document_number=document_number,
            identity_document=(
                f"PASSPORT\nName: {full_name}\nDate of birth: 1980-02-29\n"
                f"Document number: {document_number}\nNationality: FR\n"
            ),
        )

    def _input(self, key: str) -> CustomerOnboardingInput:
        request = self.case_input(key)
        assert isinstance(request, CustomerOnboardingInput)
        return request

    def case_id(self, key: str) -> str:
        return CustomerOnboardingWorkflow.case_id(key)

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """The applicant's passport in the KYC registry; a PEP entry for the scenarios that
        must go to compliance."""
        request = self._input(key)
        born = request.date_of_birth.isoformat()
        bodies = [
            (
                "/kyc/identities",
                {
                    "document_number": request.document_number,
                    "full_name": request.full_name,
                    "date_of_birth": born,
                },
            )
        ]
        if scenario.name in PEPS:
            bodies.append(
                (
                    "/pep/persons",
                    {
                        "entry_id": f"PEP-{key}",
                        "name": request.full_name,
                        "date_of_birth": born,
                        "position": "Mayor",
                        "country": "FR",
                    },
                )
            )
        for path, body in bodies:
            (await http.post(path, json=body)).raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        application_id = case_value(request, "application_id")
        if application_id is None or not application_id.startswith("CO-R"):
            return None
        return self.case_id(application_id)

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        applicant = self._input(case.key)
        return ScriptedReply(
            content=json.dumps(
                {
                    "document_kind": "passport",
                    "full_name": applicant.full_name,
                    "date_of_birth": applicant.date_of_birth.isoformat(),
                    "document_number": applicant.document_number,
                    "nationality": applicant.nationality,
                    "issues": [],
                    "confidence": 0.95,
                }
            )
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        document = self._input(key).document_number
        account = {
            "method": "POST",
            "path": "/core-banking/accounts",
            "idempotency_key": f"{case_id}:account",
        }
        card = {"method": "POST", "path": "/cards/orders", "idempotency_key": f"{case_id}:card"}
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": f"/kyc/identities/{document}", "count": 2}]
            case SandboxFault.TIMEOUT:
                return [
                    delayed(
                        "POST",
                        "/kyc/verifications",
                        TIMEOUT_DELAY_SECONDS,
                        idempotency_key=f"{case_id}:kyc-verification",
                    )
                ]
            case SandboxFault.SLOW:
                return [
                    delayed(
                        "POST",
                        "/pep/screenings",
                        SLOW_DELAY_SECONDS,
                        idempotency_key=f"{case_id}:pep-screening",
                    )
                ]
            case SandboxFault.RESPONSE_LOST:
                # The screening is run and the account opened, then their answers are lost: the
                # retries must find the first ones (idempotency keys), not make new ones.
                return [
                    {
                        "method": "POST",
                        "path": "/kyc/screenings",
                        "idempotency_key": f"{case_id}:sanctions-screening",
                        "status": 503,
                        "when": "after",
                    },
                    account | {"status": 503, "when": "after"},
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # The card system refuses the order for good after three systems were written:
                # all three must be undone, the account's closing riding out a 503 first.
                return [
                    card | {"status": 422},
                    {
                        "method": "POST",
                        "path": "/core-banking/accounts/*/close",
                        "idempotency_key": f"{case_id}:account-closing",
                        "status": 503,
                    },
                ]
            case SandboxFault.OUTCOME_UNKNOWN:
                # The card is ordered on the first attempt and every answer is lost for as long
                # as the case retries: the case must find the order and undo it with the rest.
                return [
                    card | {"status": 503, "when": "after", "count": TOOL_RETRY.maximum_attempts}
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [
            {
                "method": "POST",
                "path": "/core-banking/accounts",
                "idempotency_key": f"{self.case_id(key)}:*",
            }
        ]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (SandboxFault.REJECTED_AFTER_PAYMENT, SandboxFault.OUTCOME_UNKNOWN):
            return scenario.name in PROVISIONS
        if fault is SandboxFault.RESPONSE_LOST:
            return scenario.name in PROVISIONS
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        writes: Counter[str] = Counter()
        reversals: dict[str, bool] = {}
        for system, (path, id_field, undone) in SYSTEMS.items():
            response = await http.get(path, params={"application_id": key})
            for record in response.raise_for_status().json():
                writes[system] += 1
                reversals[f"{system} {record[id_field]}"] = record["status"] == undone
        return Ledger(writes=writes, reversals=reversals)

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault in (
            SandboxFault.REJECTED_AFTER_PAYMENT,
            SandboxFault.OUTCOME_UNKNOWN,
        ):
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                LOW_RISK.name: {OnboardingStatus.ONBOARDED},
                DUE_DILIGENCE_APPROVED.name: {OnboardingStatus.ONBOARDED},
                DUE_DILIGENCE_REJECTED.name: {CaseStatus.REJECTED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        undone = sum(ledger.reversals.values())
        made = sum(ledger.writes.values())
        match outcome.status:
            case OnboardingStatus.ONBOARDED:
                if any(ledger.writes[system] != 1 for system in SYSTEMS) or undone:
                    found.append(
                        f"onboarded, but provisioned {dict(ledger.writes)}, {undone} undone"
                    )
            case CaseStatus.FAILED_COMPENSATED:
                if undone != made:
                    left = [record for record, closed in ledger.reversals.items() if not closed]
                    found.append(f"compensated, but still provisioned: {', '.join(left)}")
            case _:
                if made:
                    found.append(f"{outcome.status}, yet {made} record(s) provisioned")
        # Without a reading nothing confirms the document: a person must decide, saying so.
        unread = case.model_fault is ModelFault.PROVIDER_DOWN and case.scenario is LOW_RISK
        if unread and not any("gave no reading" in event.summary for event in outcome.audit):
            found.append("the model was down, but the case did not say the reading is missing")
        return found


DRIVER = CustomerOnboardingDriver()
