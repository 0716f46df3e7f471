"""The lead-routing part of ``casework demo``: leads routed straight through, to an account's
owner, to the fallback territory, and one left waiting for sales ops.

Account executives are seeded once and keep their load across runs, as a CRM would; each run's
companies, accounts and leads are named after its batch (LEAD-1001.., LEAD-2001..).
"""

from __future__ import annotations

from dataclasses import dataclass

from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    create_once,
    sandbox_request,
)
from workflows.lead_routing import LeadRoutingInput, LeadStatus

ACCOUNT_EXECUTIVES: list[dict[str, str | int]] = [
    {
        "ae_id": "AE-EMEA-1",
        "name": "Sofia Keller",
        "email": "sofia.keller@example.com",
        "territory": "emea",
        "current_load": 12,
        "capacity": 20,
    },
    {
        "ae_id": "AE-EMEA-2",
        "name": "Jonas Weber",
        "email": "jonas.weber@example.com",
        "territory": "emea",
        "current_load": 8,
        "capacity": 20,
    },
    {
        "ae_id": "AE-NA-1",
        "name": "Maya Johnson",
        "email": "maya.johnson@example.com",
        "territory": "na",
        "current_load": 5,
        "capacity": 15,
    },
    {
        "ae_id": "AE-IS-1",
        "name": "Priya Raman",
        "email": "priya.raman@example.com",
        "territory": "inside_sales",
        "current_load": 10,
        "capacity": 200,
    },
]


@dataclass(frozen=True)
class Lead:
    """The company, the person who wrote in, and what they wrote."""

    company: str
    slug: str
    """Names the company's web domain: ``<slug>-<batch>.example``."""
    country: str
    industry: str
    employees: int
    contact: str
    job_title: str
    message: str
    account_owner: str | None = None
    """Seed the company as an existing CRM account owned by this AE."""


SCENARIOS = [
    DemoScenario(
        1,
        "target company asks for pricing: routed straight through",
        LeadStatus.ROUTED,
        Lead(
            "Helios Software",
            "helios",
            "DE",
            "software",
            450,
            "Lena Fischer",
            "VP Sales",
            "We are evaluating tools for our 300-person sales team and need pricing and a demo "
            "before our Q3 budget decision.",
        ),
    ),
    DemoScenario(
        2,
        "existing account: routed to its owner",
        LeadStatus.ROUTED,
        Lead(
            "Nordwind Logistics",
            "nordwind",
            "NL",
            "logistics",
            1200,
            "Pieter de Vries",
            "Head of Operations",
            "Following up with our team: we would like a quote for 50 more seats.",
            account_owner="AE-EMEA-1",
        ),
    ),
    DemoScenario(
        3,
        "country outside every territory: inside sales",
        LeadStatus.ROUTED,
        Lead(
            "Ipanema Fintech",
            "ipanema",
            "BR",
            "fintech",
            300,
            "Rafael Souza",
            "CTO",
            "Could we get pricing for 80 licences and a demo next week?",
        ),
    ),
    DemoScenario(
        4,
        "vague note from a small shop: sales ops reviews",
        "awaiting sales_ops",
        Lead(
            "Atelier Colette",
            "colette",
            "FR",
            "retail",
            12,
            "Colette Martin",
            "Owner",
            "Hi, just browsing your website. What do you do exactly?",
        ),
    ),
]


def lead_id_for(batch: int, scenario: DemoScenario[Lead]) -> str:
    return f"LEAD-{scenario.number(batch)}"


async def reference(run: DemoRun) -> None:
    for ae in ACCOUNT_EXECUTIVES:
        await create_once(
            run.sandbox, f"/crm/account-executives/{ae['ae_id']}", "/crm/account-executives", ae
        )


async def seed(run: DemoRun, scenario: DemoScenario[Lead]) -> LeadRoutingInput:
    """The company's firmographics, its CRM account if it has one, and the lead."""
    sandbox, lead = run.sandbox, scenario.facts
    lead_id = lead_id_for(run.batch, scenario)
    domain = f"{lead.slug}-{run.batch}.example"
    await sandbox_request(
        sandbox,
        "POST",
        "/crm/firmographics",
        {
            "domain": domain,
            "company_name": lead.company,
            "industry": lead.industry,
            "employees": lead.employees,
            "country": lead.country,
        },
    )
    if lead.account_owner:
        await sandbox_request(
            sandbox,
            "POST",
            "/crm/accounts",
            {
                "account_id": f"ACC-{scenario.number(run.batch)}",
                "name": lead.company,
                "domain": domain,
                "owner_ae_id": lead.account_owner,
                "status": "customer",
            },
        )
    first_name = lead.contact.split()[0].lower()
    await sandbox_request(
        sandbox,
        "POST",
        "/crm/leads",
        {
            "lead_id": lead_id,
            "contact_name": lead.contact,
            "email": f"{first_name}@{domain}",
            "company": lead.company,
            "domain": domain,
            "country": lead.country,
            "job_title": lead.job_title,
            "message": lead.message,
        },
    )
    return LeadRoutingInput(lead_id=lead_id)


# Nobody reviews in the demo (the scenarios name no decisions): the printed command lets you.
DEMO = ProcessDemo(
    process="lead-routing",
    order=60,
    scenarios=SCENARIOS,
    numbered=Numbered("/crm/leads", "lead_id", "LEAD-"),
    seed=seed,
    reference=reference,
)
