"""The lead-routing part of ``casework demo``: leads routed straight through, to an account's
owner, to the fallback territory, and one left waiting for sales ops.

Account executives are seeded once and keep their load across runs, as a CRM would; each run's
companies, accounts and leads are named after its batch (LEAD-1001.., LEAD-2001..).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from temporalio.client import Client, WorkflowHandle

from casework.case import CaseState, CaseStatus
from casework.cli.cases import drive_case
from casework.cli.seeding import DemoCase, create_once, sandbox_request
from casework.config import Settings
from workflows.lead_routing import LeadRoutingInput, LeadRoutingWorkflow

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
class LeadScenario:
    suffix: int
    story: str
    company: str
    slug: str
    """Names the company's web domain: ``<slug>-<batch>.example``."""
    country: str
    industry: str
    employees: int
    contact: str
    job_title: str
    message: str
    expected: str
    account_owner: str | None = None
    """Seed the company as an existing CRM account owned by this AE."""


SCENARIOS = [
    LeadScenario(
        1,
        "target company asks for pricing: routed straight through",
        "Helios Software",
        "helios",
        "DE",
        "software",
        450,
        "Lena Fischer",
        "VP Sales",
        "We are evaluating tools for our 300-person sales team and need pricing and a demo "
        "before our Q3 budget decision.",
        expected=CaseStatus.ROUTED,
    ),
    LeadScenario(
        2,
        "existing account: routed to its owner",
        "Nordwind Logistics",
        "nordwind",
        "NL",
        "logistics",
        1200,
        "Pieter de Vries",
        "Head of Operations",
        "Following up with our team: we would like a quote for 50 more seats.",
        expected=CaseStatus.ROUTED,
        account_owner="AE-EMEA-1",
    ),
    LeadScenario(
        3,
        "country outside every territory: inside sales",
        "Ipanema Fintech",
        "ipanema",
        "BR",
        "fintech",
        300,
        "Rafael Souza",
        "CTO",
        "Could we get pricing for 80 licences and a demo next week?",
        expected=CaseStatus.ROUTED,
    ),
    LeadScenario(
        4,
        "vague note from a small shop: sales ops reviews",
        "Atelier Colette",
        "colette",
        "FR",
        "retail",
        12,
        "Colette Martin",
        "Owner",
        "Hi, just browsing your website. What do you do exactly?",
        expected="awaiting sales_ops",
    ),
]


def lead_id_for(batch: int, scenario: LeadScenario) -> str:
    return f"LEAD-{batch * 1000 + scenario.suffix}"


async def seed(sandbox: httpx.AsyncClient, batch: int) -> dict[int, str]:
    for ae in ACCOUNT_EXECUTIVES:
        await create_once(
            sandbox, f"/crm/account-executives/{ae['ae_id']}", "/crm/account-executives", ae
        )
    lead_ids = {}
    for scenario in SCENARIOS:
        lead_id = lead_id_for(batch, scenario)
        domain = f"{scenario.slug}-{batch}.example"
        await sandbox_request(
            sandbox,
            "POST",
            "/crm/firmographics",
            {
                "domain": domain,
                "company_name": scenario.company,
                "industry": scenario.industry,
                "employees": scenario.employees,
                "country": scenario.country,
            },
        )
        if scenario.account_owner:
            await sandbox_request(
                sandbox,
                "POST",
                "/crm/accounts",
                {
                    "account_id": f"ACC-{batch * 1000 + scenario.suffix}",
                    "name": scenario.company,
                    "domain": domain,
                    "owner_ae_id": scenario.account_owner,
                    "status": "customer",
                },
            )
        first_name = scenario.contact.split()[0].lower()
        await sandbox_request(
            sandbox,
            "POST",
            "/crm/leads",
            {
                "lead_id": lead_id,
                "contact_name": scenario.contact,
                "email": f"{first_name}@{domain}",
                "company": scenario.company,
                "domain": domain,
                "country": scenario.country,
                "job_title": scenario.job_title,
                "message": scenario.message,
            },
        )
        lead_ids[scenario.suffix] = lead_id
    return lead_ids


async def _leave_reviews_waiting(handle: WorkflowHandle, state: CaseState) -> bool:
    """Nobody reviews in the demo: the printed command lets you do it."""
    return False


async def run(
    client: Client, settings: Settings, sandbox: httpx.AsyncClient, batch: int
) -> list[DemoCase]:
    """Seed, start and drive the lead-routing cases of ``batch``."""
    lead_ids = await seed(sandbox, batch)
    cases = []
    for scenario in SCENARIOS:
        lead_id = lead_ids[scenario.suffix]
        handle = await client.start_workflow(
            "LeadRouting",
            LeadRoutingInput(lead_id=lead_id),
            id=LeadRoutingWorkflow.case_id(lead_id),
            task_queue=settings.task_queue,
        )
        cases.append(DemoCase(handle, scenario.story, scenario.expected))
    await asyncio.gather(*(drive_case(case.handle, _leave_reviews_waiting) for case in cases))
    return cases
