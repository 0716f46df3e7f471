"""Records of the sales CRM (leads, accounts, account executives, firmographics, first-touch
messages) as the lead-routing process reads them.

Pure pydantic, safe in workflow code and in the pure policy functions. Unknown fields from the
CRM are ignored so a new column upstream does not break a case.
"""

from __future__ import annotations

from decimal import Decimal

from activities.records import Record


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
