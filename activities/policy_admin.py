"""Policy administration: the insurance policies (cover, deductible, limit, exclusions, wording)
and the claims register on each, where a claim is closed, or reopened when its payout is
recovered."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Exclusion(Record):
    peril: str
    wording: str


class InsurancePolicy(Record):
    policy_number: str
    holder_id: str
    holder_name: str
    product: str
    status: str
    """``active``, ``lapsed`` or ``cancelled``."""
    inception_date: date
    expiry_date: date
    currency: str
    limit_amount: Decimal
    """The most the policy pays on one claim."""
    deductible: Decimal
    """What the holder bears on each claim."""
    covered_perils: list[str]
    exclusions: list[Exclusion] = Field(default_factory=list)
    wording: str

    def covers(self, peril: str, loss_date: date) -> list[str]:
        """Why the policy does not cover ``peril`` on ``loss_date`` (empty: it does), as the
        record says: in force on the day, the peril named, and no exclusion of it."""
        reasons = []
        if self.status != "active":
            reasons.append(f"policy {self.policy_number} is {self.status}")
        if not self.inception_date <= loss_date <= self.expiry_date:
            reasons.append(
                f"the loss on {loss_date} is outside the policy period "
                f"{self.inception_date} to {self.expiry_date}"
            )
        if peril not in self.covered_perils:
            reasons.append(
                f"the policy does not cover {peril} (it covers {', '.join(self.covered_perils)})"
            )
        for exclusion in self.exclusions:
            if exclusion.peril == peril:
                reasons.append(f"excluded: {exclusion.wording}")
        return reasons


class RegisteredClaim(Record):
    policy_number: str
    claim_id: str
    status: str
    amount_paid: Decimal | None = None
    note: str
    updated_at: datetime


class PolicyLookup(BaseModel):
    """An insurance policy as policy administration holds it: status, period, covered perils,
    exclusions, limit, deductible and wording."""

    model_config = ConfigDict(extra="forbid")

    policy_number: str = Field(min_length=1, max_length=64, description="e.g. POL-1001")


class ClaimStatusChange(BaseModel):
    policy_number: str
    claim_id: str
    status: str
    """``paid``, ``denied``, ``withdrawn`` or ``reopened``."""
    amount_paid: Decimal | None = None
    note: str
    idempotency_key: str


def _segment(record_id: str) -> str:
    # Ids may come from an agent: keep "/", "?" and ".." from steering the request elsewhere.
    return quote(record_id, safe="")


class PolicyAdminActivities(SystemActivities):
    system = "policy administration"

    @read_only_tool(name="get_insurance_policy")
    @activity.defn(name="policy_admin.get_policy")
    async def get_policy(self, lookup: PolicyLookup) -> InsurancePolicy:
        return InsurancePolicy.model_validate(
            await call(
                self._client, "GET", f"/policy-admin/policies/{_segment(lookup.policy_number)}"
            )
        )

    @activity.defn(name="policy_admin.set_claim_status")
    async def set_claim_status(self, change: ClaimStatusChange) -> RegisteredClaim:
        """Close a claim on its policy's register (or reopen it)."""
        return RegisteredClaim.model_validate(
            await call(
                self._client,
                "POST",
                f"/policy-admin/policies/{_segment(change.policy_number)}/claims/"
                f"{_segment(change.claim_id)}",
                json=change.model_dump(mode="json", include={"status", "amount_paid", "note"}),
                idempotency_key=change.idempotency_key,
            )
        )
