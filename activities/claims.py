"""Claims: first notices of loss with their documents, letters to claimants, and the payout
ledger. Every write carries an idempotency key: a retried payout pays once."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class EstimateLine(Record):
    item_code: str
    description: str
    amount: Decimal


class DocumentRef(Record):
    document_id: str
    kind: str
    """``claim_form``, ``policy``, ``repair_estimate``, ``police_report``, ``incident_report``."""
    title: str


class Claim(Record):
    claim_id: str
    policy_number: str
    claimant_id: str
    claimant_name: str
    claimant_email: str
    loss_date: date
    peril: str
    description: str
    vehicle_class: str
    repair_shop: str | None = None
    currency: str
    estimate_lines: list[EstimateLine]
    """The repair estimate as the claims system recorded it from the repair shop."""
    estimate_total: Decimal
    reported_at: datetime
    documents: list[DocumentRef] = Field(default_factory=list)


class ClaimDocument(Record):
    document_id: str
    claim_id: str
    kind: str
    title: str
    text: str


class Letter(Record):
    letter_id: str
    claim_id: str
    to: str
    subject: str
    body: str


class Payout(Record):
    payout_id: str
    claim_id: str
    payee_id: str
    amount: Decimal
    currency: str
    status: str
    """``paid`` or ``reversed``."""
    reference: str | None = None
    idempotency_key: str | None = None


class ClaimLookup(BaseModel):
    """A claim as the claims system holds it: the first notice of loss (loss date, peril,
    description, vehicle class, repair shop), the repair estimate's lines and the list of
    documents filed."""

    model_config = ConfigDict(extra="forbid")

    claim_id: str = Field(min_length=1, max_length=64, description="e.g. CLM-1001")


class DocumentLookup(BaseModel):
    """The full text of one document filed on a claim (claim form, policy, repair estimate,
    police or incident report)."""

    model_config = ConfigDict(extra="forbid")

    claim_id: str = Field(min_length=1, max_length=64)
    document_id: str = Field(min_length=1, max_length=64, description="e.g. DOC-000001")


class LetterRequest(BaseModel):
    claim_id: str
    subject: str
    body: str
    idempotency_key: str


class PayoutRequest(BaseModel):
    claim_id: str
    payee_id: str
    amount: Decimal
    currency: str
    reference: str | None = None
    idempotency_key: str


class PayoutReversal(BaseModel):
    payout_id: str
    reason: str
    idempotency_key: str


class PayoutsLookup(BaseModel):
    claim_id: str


_payouts = TypeAdapter(list[Payout])


def _segment(record_id: str) -> str:
    # Ids may come from an agent: keep "/", "?" and ".." from steering the request elsewhere.
    return quote(record_id, safe="")


class ClaimsActivities(SystemActivities):
    system = "claims"

    # --- read-only tools ---------------------------------------------------------------------

    @read_only_tool(name="get_claim")
    @activity.defn(name="claims.get_claim")
    async def get_claim(self, lookup: ClaimLookup) -> Claim:
        return Claim.model_validate(
            await call(self._client, "GET", f"/claims/{_segment(lookup.claim_id)}")
        )

    @read_only_tool(name="get_claim_document")
    @activity.defn(name="claims.get_document")
    async def get_document(self, lookup: DocumentLookup) -> ClaimDocument:
        return ClaimDocument.model_validate(
            await call(
                self._client,
                "GET",
                f"/claims/{_segment(lookup.claim_id)}/documents/{_segment(lookup.document_id)}",
            )
        )

    # --- writes (workflow only) --------------------------------------------------------------

    @activity.defn(name="claims.write_to_claimant")
    async def write_to_claimant(self, request: LetterRequest) -> Letter:
        return Letter.model_validate(
            await call(
                self._client,
                "POST",
                f"/claims/{_segment(request.claim_id)}/letters",
                json={"subject": request.subject, "body": request.body},
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="claims.pay")
    async def pay(self, request: PayoutRequest) -> Payout:
        return Payout.model_validate(
            await call(
                self._client,
                "POST",
                "/claims/payouts",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="claims.reverse_payout")
    async def reverse_payout(self, reversal: PayoutReversal) -> Payout:
        return Payout.model_validate(
            await call(
                self._client,
                "POST",
                f"/claims/payouts/{_segment(reversal.payout_id)}/reverse",
                json={"reason": reversal.reason},
                idempotency_key=reversal.idempotency_key,
            )
        )

    @activity.defn(name="claims.list_payouts")
    async def list_payouts(self, lookup: PayoutsLookup) -> list[Payout]:
        """Every payout on a claim: before paying, a case checks nothing was paid meanwhile."""
        return _payouts.validate_python(
            await call(self._client, "GET", f"/claims/payouts/by-claim/{_segment(lookup.claim_id)}")
        )
