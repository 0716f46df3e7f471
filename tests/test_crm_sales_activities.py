"""The sales CRM activities run in Temporal's activity environment against a real sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.crm_sales import (
    CompanyLookup,
    CrmSalesActivities,
    Firmographics,
    FirstTouchRequest,
    LeadAssignment,
    LeadLookup,
    LeadRelease,
    RosterLookup,
)
from casework.sandbox.server import running_sandbox
from casework.systems.http import RECORD_NOT_FOUND, REQUEST_CONFLICT


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    with running_sandbox(tmp_path / "db.sqlite") as url:
        with httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http:
            for path, body in [
                (
                    "/crm/account-executives",
                    {
                        "ae_id": "AE-1",
                        "name": "Sofia Keller",
                        "email": "sofia@example.com",
                        "territory": "emea",
                        "current_load": 3,
                        "capacity": 10,
                    },
                ),
                (
                    "/crm/accounts",
                    {
                        "account_id": "ACC-1",
                        "name": "Nordwind",
                        "domain": "nordwind.example",
                        "owner_ae_id": "AE-1",
                    },
                ),
                (
                    "/crm/firmographics",
                    {
                        "domain": "nordwind.example",
                        "company_name": "Nordwind GmbH",
                        "industry": "logistics",
                        "employees": 850,
                        "country": "DE",
                    },
                ),
                (
                    "/crm/leads",
                    {
                        "lead_id": "L-1",
                        "contact_name": "Anna Berg",
                        "email": "anna@nordwind.example",
                        "company": "Nordwind GmbH",
                        "domain": "nordwind.example",
                        "country": "DE",
                        "message": "Pricing for 40 seats, please.",
                    },
                ),
            ]:
                response = http.post(path, json=body)
                assert response.status_code == 201, response.text
        yield url


@pytest.fixture
async def crm(sandbox_url: str) -> AsyncIterator[CrmSalesActivities]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0, trust_env=False) as http:
        yield CrmSalesActivities(http)


async def run(fn: Callable[..., Awaitable[Any]], arg: BaseModel) -> Any:
    return await ActivityEnvironment().run(fn, arg)


async def test_reads_return_typed_records(crm: CrmSalesActivities) -> None:
    lead = await run(crm.get_lead, LeadLookup(lead_id="L-1"))
    enrichment = await run(crm.enrich_company, CompanyLookup(domain="nordwind.example"))
    match = await run(crm.find_account, CompanyLookup(domain="nordwind.example"))
    roster = await run(crm.list_account_executives, RosterLookup())

    assert (lead.lead_id, lead.status, lead.message) == (
        "L-1",
        "new",
        "Pricing for 40 seats, please.",
    )
    assert enrichment.firmographics == Firmographics(
        domain="nordwind.example",
        company_name="Nordwind GmbH",
        industry="logistics",
        employees=850,
        country="DE",
    )
    assert match.account is not None and match.account.owner_ae_id == "AE-1"
    assert [(ae.ae_id, ae.current_load, ae.capacity) for ae in roster.account_executives] == [
        ("AE-1", 3, 10)
    ]


async def test_unknown_domain_is_an_answer_not_an_error(crm: CrmSalesActivities) -> None:
    enrichment = await run(crm.enrich_company, CompanyLookup(domain="new.example"))
    match = await run(crm.find_account, CompanyLookup(domain="new.example"))

    assert (enrichment.domain, enrichment.firmographics) == ("new.example", None)
    assert match.account is None


async def test_unknown_lead_fails_for_good(crm: CrmSalesActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(crm.get_lead, LeadLookup(lead_id="L-404"))

    assert (caught.value.type, caught.value.non_retryable) == (RECORD_NOT_FOUND, True)
    assert "lead L-404 not found" in caught.value.message


async def test_writes_assign_message_and_undo(crm: CrmSalesActivities) -> None:
    assignment = LeadAssignment(
        lead_id="L-1", ae_id="AE-1", account_id="ACC-1", idempotency_key="case:assign"
    )
    assigned = await run(crm.assign_lead, assignment)
    again = await run(crm.assign_lead, assignment)
    message = await run(
        crm.queue_first_touch,
        FirstTouchRequest(
            lead_id="L-1", ae_id="AE-1", subject="s", body="b", idempotency_key="case:first-touch"
        ),
    )
    released = await run(
        crm.unassign_lead,
        LeadRelease(lead_id="L-1", reason="undo", idempotency_key="case:unassign"),
    )
    nurtured = await run(
        crm.nurture_lead, LeadRelease(lead_id="L-1", reason="later", idempotency_key="case:n")
    )
    roster = await run(crm.list_account_executives, RosterLookup())

    assert (assigned.status, assigned.owner_ae_id, assigned.account_id) == (
        "assigned",
        "AE-1",
        "ACC-1",
    )
    assert again == assigned
    assert (message.lead_id, message.to, message.status) == (
        "L-1",
        "anna@nordwind.example",
        "queued",
    )
    assert (released.status, released.owner_ae_id) == ("new", None)
    assert nurtured.status == "nurture"
    assert roster.account_executives[0].current_load == 3


async def test_first_touch_to_a_lead_the_ae_does_not_own_is_a_conflict(
    crm: CrmSalesActivities,
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await run(
            crm.queue_first_touch,
            FirstTouchRequest(
                lead_id="L-1", ae_id="AE-1", subject="s", body="b", idempotency_key="k"
            ),
        )

    assert (caught.value.type, caught.value.non_retryable) == (REQUEST_CONFLICT, True)
