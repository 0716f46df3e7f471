"""The vendor-onboarding process in the reliability suite: each vendor created in the ERP once.

Its writes are the ERP vendor and the application's status in the vendor portal; when closing the
application as onboarded fails for good after the ERP vendor was created, the vendor must be
deactivated again. Its agent reads each of the three documents in a model call of its own; legal
and finance review every application in parallel.
"""

from __future__ import annotations

import json
import zlib
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
    agent_fault_problems,
    delayed,
)
from workflows.vendor_onboarding import (
    VendorOnboardingInput,
    VendorOnboardingWorkflow,
    VendorStatus,
)

VENDOR_NAME = "Nordwind Logistik GmbH"
IBAN = "DE89370400440532013000"
# Fails the IBAN checksum: the application is refused at once, before any document is read.
INVALID_IBAN = "DE00370400440532013000"
VALID_UNTIL = "9999-12-31"
DOCUMENTS = {"REG": "company_registration", "TAX": "tax_certificate", "BANK": "bank_confirmation"}

ONBOARD = Scenario("reviews approve: onboarded", People.APPROVE)
REJECT = Scenario("reviews reject", People.REJECT)
LEAVE = Scenario("left waiting for reviews", People.LEAVE)
REFUSED = Scenario("refused at once: invalid IBAN", People.APPROVE)
"""Finishes without a model call or a person (the bad-input matrix's finished case)."""


class VendorOnboardingDriver(CaseDriver):
    process = "vendor-onboarding"
    scenarios = (ONBOARD, ONBOARD, REJECT, ONBOARD, LEAVE)
    sandbox_faults: ClassVar[frozenset[SandboxFault]] = frozenset(SandboxFault)
    submitter = "alice"
    waiting_scenario = LEAVE
    finished_scenario = REFUSED

    def new_key(self, tag: str, number: int) -> str:
        return f"VAP-R{tag}-{number:05d}"

    def case_input(self, key: str) -> BaseModel:
        return VendorOnboardingInput(application_id=key, submitted_by=self.submitter)

    def case_id(self, key: str) -> str:
        return VendorOnboardingWorkflow.case_id(key)

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        return [
            (
                "an application the vendor portal does not have",
                {"application_id": f"VAP-NONE-{tag}", "submitted_by": self.submitter},
                "not found",
            ),
        ]

    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """An application with its three documents in order, under a tax ID of its own (the ERP
        takes one active vendor per tax ID)."""
        texts = {
            "REG": f"COMMERCIAL REGISTER EXTRACT\nCompany: {VENDOR_NAME}\nRegister number: HRB 1\n",
            "TAX": f"TAX REGISTRATION CERTIFICATE\nCompany: {VENDOR_NAME}\nTax ID: {_tax_id(key)}\n"
            f"Valid until: {VALID_UNTIL}\n",
            "BANK": f"BANK CONFIRMATION\nAccount holder: {VENDOR_NAME}\nIBAN: {IBAN}\n"
            "Signed: branch manager\n",
        }
        body = {
            "application_id": key,
            "vendor_name": VENDOR_NAME,
            "country": "DE",
            "tax_id": _tax_id(key),
            "bank_account": INVALID_IBAN if scenario is REFUSED else IBAN,
            "contact_email": f"onboarding@{key.lower()}.example",
            "documents": [
                {
                    "document_id": f"{key}-{short}",
                    "kind": kind,
                    "filename": f"{key}-{short}.pdf",
                    "content": texts[short],
                }
                for short, kind in DOCUMENTS.items()
            ],
        }
        (await http.post("/vendors/applications", json=body)).raise_for_status()

    # -- the model --------------------------------------------------------------------------

    def case_of(self, request: dict[str, Any]) -> str | None:
        document_id = case_value(request, "document", "document_id")
        if not document_id or "-" not in document_id:
            return None
        return VendorOnboardingWorkflow.case_id(document_id.rsplit("-", 1)[0])

    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        """Each document read as what it is, every value as the document states it."""
        document_id = case_value(request, "document", "document_id") or ""
        kind = DOCUMENTS.get(document_id.rsplit("-", 1)[-1], "unknown")
        fields: dict[str, Any] = {"company_name": VENDOR_NAME}
        if kind == "tax_certificate":
            fields |= {"tax_id": _tax_id(case.key), "valid_until": VALID_UNTIL}
        if kind == "bank_confirmation":
            fields |= {"iban": IBAN}
        return ScriptedReply(
            content=json.dumps({"document_kind": kind, "issues": [], "confidence": 0.93} | fields)
        )

    # -- faults -----------------------------------------------------------------------------

    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        case_id = self.case_id(key)
        application = f"/vendors/applications/{key}"
        create = {
            "method": "POST",
            "path": "/erp/vendors",
            "idempotency_key": f"{case_id}:erp-vendor",
        }
        onboarded = {
            "method": "POST",
            "path": f"{application}/status",
            "idempotency_key": f"{case_id}:application-onboarded",
        }
        match fault:
            case SandboxFault.HTTP_5XX:
                return [{"method": "GET", "path": application, "count": 2}]
            case SandboxFault.TIMEOUT:
                return [delayed("GET", application, TIMEOUT_DELAY_SECONDS)]
            case SandboxFault.SLOW:
                return [delayed("GET", application, SLOW_DELAY_SECONDS)]
            case SandboxFault.RESPONSE_LOST:
                # The ERP vendor and the portal status are written, then their answers lost: the
                # retries must find them by idempotency key.
                return [
                    create | {"status": 503, "when": "after"},
                    onboarded | {"status": 503, "when": "after"},
                ]
            case SandboxFault.OUTCOME_UNKNOWN:
                # Created on the first attempt, every answer lost: the case must find its vendor
                # in the ERP by its idempotency key and onboard it, not call the ERP a refusal.
                return [
                    create | {"status": 503, "when": "after", "count": TOOL_RETRY.maximum_attempts}
                ]
            case SandboxFault.REJECTED_AFTER_PAYMENT:
                # The portal refuses "onboarded" for good after the ERP vendor was created: it must
                # be deactivated, and the deactivation has to ride out a 503 first.
                return [
                    onboarded | {"status": 422},
                    {
                        "method": "POST",
                        "path": "/erp/vendors/*/deactivate",
                        "idempotency_key": f"{case_id}:erp-vendor-deactivation",
                        "status": 503,
                    },
                ]
        return []

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        return [
            {"method": "POST", "path": "/erp/vendors", "idempotency_key": f"{self.case_id(key)}:*"}
        ]

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        if fault in (
            SandboxFault.RESPONSE_LOST,
            SandboxFault.REJECTED_AFTER_PAYMENT,
            SandboxFault.OUTCOME_UNKNOWN,
        ):
            return scenario is ONBOARD
        return True

    # -- checking ---------------------------------------------------------------------------

    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        response = await http.get(f"/vendors/applications/{key}")
        if response.status_code == 404:  # an unknown application (the bad-input matrix)
            return Ledger()
        application = response.raise_for_status().json()
        # The first entry is the application's submission (the seeding), not the case.
        writes: Counter[str] = Counter(
            f"portal status {entry['status']}" for entry in application["status_history"][1:]
        )
        vendors = (await http.get("/erp/vendors", params={"application_id": key})).json()
        writes["ERP vendor"] = len(vendors)
        return Ledger(
            writes=+writes,
            reversals={row["vendor_id"]: row["status"] == "inactive" for row in vendors},
        )

    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        if case.sandbox_fault is SandboxFault.REJECTED_AFTER_PAYMENT:
            return frozenset({CaseStatus.FAILED_COMPENSATED})
        return frozenset(
            {
                ONBOARD.name: {VendorStatus.ONBOARDED},
                REJECT.name: {CaseStatus.REJECTED},
                LEAVE.name: {CaseStatus.AWAITING_APPROVAL},
                REFUSED.name: {CaseStatus.REJECTED},
            }[case.scenario.name]
        )

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        found: list[str] = []
        vendors = ledger.writes["ERP vendor"]
        deactivated = sum(ledger.reversals.values())
        match outcome.status:
            case VendorStatus.ONBOARDED:
                if vendors != 1 or deactivated or ledger.writes["portal status onboarded"] != 1:
                    found.append(f"onboarded, but the systems record {dict(ledger.writes)}")
            case CaseStatus.FAILED_COMPENSATED:
                if vendors != 1 or deactivated != 1:
                    found.append(
                        f"compensated, but {vendors} ERP vendor(s), {deactivated} deactivated "
                        "(every compensated case must have its vendor deactivated)"
                    )
            case _:
                if vendors:
                    found.append(f"{outcome.status}, yet {vendors} ERP vendor(s) created")
        return found + agent_fault_problems(case, outcome)


def _tax_id(key: str) -> str:
    """A German-looking tax ID of the key's own."""
    return f"DE{zlib.crc32(key.encode()) % 10**9:09d}"


DRIVER = VendorOnboardingDriver()
