"""Claim history: the insurer's past claims (by policyholder, by peril or repair shop) and the
fraud findings its special investigators record."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class PastClaim(Record):
    claim_id: str
    policy_number: str
    holder_id: str
    loss_date: date
    peril: str
    repair_shop: str | None = None
    amount_paid: Decimal
    outcome: str
    description: str
    fraud_confirmed: bool


class FraudFinding(Record):
    finding_id: str
    claim_id: str
    source: str
    reason: str
    recorded_at: datetime


class PriorClaimsLookup(BaseModel):
    """A policyholder's past claims, oldest first: dates, perils, amounts paid, outcomes and
    whether fraud was confirmed on any."""

    model_config = ConfigDict(extra="forbid")

    holder_id: str = Field(min_length=1, max_length=64)


class SimilarClaimsSearch(BaseModel):
    """Past claims like this one: through the same repair shop, or else of the same peril."""

    model_config = ConfigDict(extra="forbid")

    peril: str = Field(min_length=1, max_length=64)
    repair_shop: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=10, ge=1, le=50)


class FraudFindingLookup(BaseModel):
    finding_id: str


_past_claims = TypeAdapter(list[PastClaim])


class ClaimHistoryActivities(SystemActivities):
    system = "claim history"

    @read_only_tool(name="get_prior_claims")
    @activity.defn(name="claim_history.prior_claims")
    async def prior_claims(self, lookup: PriorClaimsLookup) -> list[PastClaim]:
        return _past_claims.validate_python(
            await call(
                self._client,
                "GET",
                f"/claim-history/holders/{quote(lookup.holder_id, safe='')}/claims",
            )
        )

    @read_only_tool(name="find_similar_claims")
    @activity.defn(name="claim_history.similar_claims")
    async def similar_claims(self, search: SimilarClaimsSearch) -> list[PastClaim]:
        params = {"peril": search.peril, "limit": str(search.limit)}
        if search.repair_shop:
            params["repair_shop"] = search.repair_shop
        return _past_claims.validate_python(
            await call(self._client, "GET", "/claim-history/similar", params=params)
        )

    @activity.defn(name="claim_history.get_fraud_finding")
    async def get_fraud_finding(self, lookup: FraudFindingLookup) -> FraudFinding:
        """Read a finding back from the system that records them: a finding counts only once
        its source confirms it."""
        return FraudFinding.model_validate(
            await call(
                self._client,
                "GET",
                f"/claim-history/fraud-findings/{quote(lookup.finding_id, safe='')}",
            )
        )
