"""KYC tools: verify an identity against the registry, screen a person against sanctions lists.

Both are checks the KYC service keeps a record of, so each carries an idempotency key: a retried
check is answered with the first result instead of being run (and recorded) again.
"""

from __future__ import annotations

from datetime import date
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class IdentityVerification(Record):
    verification_id: str
    status: Literal["verified", "failed"]
    reasons: list[str] = Field(default_factory=list)


class RegisteredIdentity(Record):
    """An identity document as the KYC registry holds it."""

    document_number: str
    full_name: str
    date_of_birth: date
    status: str


class IdentityLookup(BaseModel):
    """Look up an identity document in the KYC registry by its number."""

    document_number: str = Field(description="The document's number, e.g. P1234567.")


class SanctionsHit(Record):
    entry_id: str
    name: str
    program: str
    matched_on: list[str] = Field(default_factory=list)


class SanctionsScreening(Record):
    screening_id: str
    status: Literal["clear", "hit"]
    hits: list[SanctionsHit] = Field(default_factory=list)


class IdentityCheck(BaseModel):
    full_name: str
    date_of_birth: date
    document_number: str
    reference: str
    idempotency_key: str


class SanctionsCheck(BaseModel):
    full_name: str
    date_of_birth: date
    country: str | None = None
    reference: str
    idempotency_key: str


class SanctionsEntryLookup(BaseModel):
    entry_id: str


class SanctionsEntry(Record):
    entry_id: str
    name: str
    date_of_birth: date | None = None
    program: str


class KycActivities(SystemActivities):
    system = "KYC"

    @read_only_tool(name="get_identity_document")
    @activity.defn(name="kyc.get_identity")
    async def get_identity(self, lookup: IdentityLookup) -> RegisteredIdentity:
        """An identity document as the registry holds it: holder, date of birth, validity."""
        return RegisteredIdentity.model_validate(
            await call(self._client, "GET", f"/kyc/identities/{lookup.document_number}")
        )

    @activity.defn(name="kyc.verify_identity")
    async def verify_identity(self, check: IdentityCheck) -> IdentityVerification:
        return IdentityVerification.model_validate(
            await call(
                self._client,
                "POST",
                "/kyc/verifications",
                json=check.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=check.idempotency_key,
            )
        )

    @activity.defn(name="kyc.screen_sanctions")
    async def screen_sanctions(self, check: SanctionsCheck) -> SanctionsScreening:
        return SanctionsScreening.model_validate(
            await call(
                self._client,
                "POST",
                "/kyc/screenings",
                json=check.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=check.idempotency_key,
            )
        )

    @read_only_tool(description="Read one entry of the sanctions list: name, birth date, program.")
    @activity.defn(name="kyc.get_sanctions_entry")
    async def get_sanctions_entry(self, lookup: SanctionsEntryLookup) -> SanctionsEntry:
        """A lookup only: screening a person is a check the KYC service records, never a tool."""
        return SanctionsEntry.model_validate(
            await call(self._client, "GET", f"/kyc/sanctions/{quote(lookup.entry_id, safe='')}")
        )
