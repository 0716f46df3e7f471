"""KYC tools: verify an identity against the registry, screen a person against sanctions lists.

Both are checks the KYC service keeps a record of, so each carries an idempotency key: a retried
check is answered with the first result instead of being run (and recorded) again.
"""

from __future__ import annotations

from datetime import date

import httpx
from pydantic import BaseModel
from temporalio import activity

from activities.loan_records import IdentityVerification, SanctionsScreening
from casework.systems.http import call


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


class KycActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

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
