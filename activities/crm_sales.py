"""Sales CRM tools: leads, accounts, account executives, enrichment and first-touch messages.

Reads are plain lookups; every write carries an idempotency key, so a retried assignment moves
one lead once and a retried first touch queues one message.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter
from temporalio import activity
from temporalio.exceptions import ApplicationError

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import RECORD_NOT_FOUND, call
from casework.systems.records import Record


class Lead(Record):
    lead_id: str
    contact_name: str
    email: str
    company: str
    domain: str
    country: str
    """ISO 3166-1 alpha-2, as the web form captured it; decides the territory."""
    job_title: str | None = None
    message: str = ""
    """What the prospect wrote in the form: free text, untrusted."""
    source: str = "web_form"
    status: str = "new"
    owner_ae_id: str | None = None
    account_id: str | None = None


class Firmographics(Record):
    domain: str
    company_name: str
    industry: str
    employees: int
    annual_revenue: Decimal | None = None
    country: str


class Account(Record):
    account_id: str
    name: str
    domain: str
    owner_ae_id: str | None = None
    status: str = "prospect"


class AccountExecutive(Record):
    ae_id: str
    name: str
    email: str
    territory: str
    current_load: int
    """Open leads assigned to the AE right now."""
    capacity: int
    """Open leads the AE can take; at ``current_load >= capacity`` the AE takes no new lead."""
    active: bool = True


class FirstTouchMessage(Record):
    message_id: str
    lead_id: str
    ae_id: str
    to: str
    subject: str
    body: str
    status: str


class LeadLookup(BaseModel):
    lead_id: str


class CompanyLookup(BaseModel):
    domain: str


class Enrichment(BaseModel):
    domain: str
    firmographics: Firmographics | None
    """None: the provider knows nothing about the domain (not an error: many leads are new)."""


class AccountMatch(BaseModel):
    domain: str
    account: Account | None


class RosterLookup(BaseModel):
    """Every account executive; the routing policy picks among them by territory and load."""


class Roster(BaseModel):
    account_executives: list[AccountExecutive]


class LeadAssignment(BaseModel):
    lead_id: str
    ae_id: str
    account_id: str | None = None
    note: str | None = None
    only_if_new: bool = False
    """Assign only a lead still new: the CRM refuses (409) one taken meanwhile."""
    idempotency_key: str


class LeadRelease(BaseModel):
    """Unassign a lead, or put it in the nurture queue."""

    lead_id: str
    reason: str
    only_if_unassigned: bool = False
    """Nurture only a lead nobody owns: the CRM refuses (409) one taken meanwhile."""
    idempotency_key: str


class FirstTouchRequest(BaseModel):
    lead_id: str
    ae_id: str
    subject: str
    body: str
    idempotency_key: str


_roster = TypeAdapter(list[AccountExecutive])
_accounts = TypeAdapter(list[Account])


class CrmSalesActivities(SystemActivities):
    system = "CRM (sales)"

    @read_only_tool(description="Read a sales lead as the CRM holds it.")
    @activity.defn(name="crm_sales.get_lead")
    async def get_lead(self, lookup: LeadLookup) -> Lead:
        return Lead.model_validate(
            await call(self._client, "GET", f"/crm/leads/{quote(lookup.lead_id, safe='')}")
        )

    @read_only_tool(
        description="Look up a company's firmographics (size, industry, region) by web domain."
    )
    @activity.defn(name="crm_sales.enrich_company")
    async def enrich_company(self, lookup: CompanyLookup) -> Enrichment:
        try:
            found = await call(
                self._client, "GET", f"/crm/firmographics/{quote(lookup.domain, safe='')}"
            )
        except ApplicationError as error:
            if error.type == RECORD_NOT_FOUND:
                return Enrichment(domain=lookup.domain, firmographics=None)
            raise
        return Enrichment(domain=lookup.domain, firmographics=Firmographics.model_validate(found))

    @read_only_tool(description="Find the CRM account of a company by web domain, if it has one.")
    @activity.defn(name="crm_sales.find_account")
    async def find_account(self, lookup: CompanyLookup) -> AccountMatch:
        accounts = _accounts.validate_python(
            await call(self._client, "GET", "/crm/accounts", params={"domain": lookup.domain})
        )
        return AccountMatch(domain=lookup.domain, account=next(iter(accounts), None))

    @read_only_tool(
        description="List the account executives with their territories and current load."
    )
    @activity.defn(name="crm_sales.list_account_executives")
    async def list_account_executives(self, lookup: RosterLookup) -> Roster:
        return Roster(
            account_executives=_roster.validate_python(
                await call(self._client, "GET", "/crm/account-executives")
            )
        )

    @activity.defn(name="crm_sales.assign_lead")
    async def assign_lead(self, assignment: LeadAssignment) -> Lead:
        return Lead.model_validate(
            await call(
                self._client,
                "POST",
                f"/crm/leads/{quote(assignment.lead_id, safe='')}/assign",
                json=assignment.model_dump(
                    include={"ae_id", "account_id", "note", "only_if_new"}, exclude_defaults=True
                ),
                idempotency_key=assignment.idempotency_key,
            )
        )

    @activity.defn(name="crm_sales.unassign_lead")
    async def unassign_lead(self, release: LeadRelease) -> Lead:
        return await self._release(release, "unassign")

    @activity.defn(name="crm_sales.nurture_lead")
    async def nurture_lead(self, release: LeadRelease) -> Lead:
        return await self._release(release, "nurture")

    @activity.defn(name="crm_sales.queue_first_touch")
    async def queue_first_touch(self, request: FirstTouchRequest) -> FirstTouchMessage:
        return FirstTouchMessage.model_validate(
            await call(
                self._client,
                "POST",
                f"/crm/leads/{quote(request.lead_id, safe='')}/messages",
                json=request.model_dump(include={"ae_id", "subject", "body"}),
                idempotency_key=request.idempotency_key,
            )
        )

    async def _release(self, release: LeadRelease, action: str) -> Lead:
        return Lead.model_validate(
            await call(
                self._client,
                "POST",
                f"/crm/leads/{quote(release.lead_id, safe='')}/{action}",
                json=release.model_dump(
                    include={"reason", "only_if_unassigned"}, exclude_defaults=True
                ),
                idempotency_key=release.idempotency_key,
            )
        )
