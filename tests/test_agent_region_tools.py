"""Tools from every system: each system of record offers its read-only lookups to agents, and
never a write. The lookups added for agents run against the real sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.erp_vendors import ErpVendorActivities, VendorCreation, VendorLookup, VendorSearch
from activities.itsm_followups import FollowUpActivities, FollowUpLookup, FollowUpRequest
from activities.kyc import KycActivities, SanctionsEntryLookup
from activities.payments import InvoicePaymentsLookup, PaymentActivities, PaymentRequest
from activities.pep import PepActivities, PepRegisterLookup
from casework.agents.tools import READ_ONLY
from casework.catalogue import discover
from casework.systems.notifications import NotificationActivities

# The one lookup whose argument is an idempotency key: the ledger is asked what a case's own
# key paid, which only the case can know; the agent allowlist decides whether it is offered.
KEYED_LOOKUPS = {"find_payment"}


def test_every_system_of_record_offers_its_lookups_to_agents() -> None:
    catalogue = discover()
    tools_by_activity = {tool.activity for tool in READ_ONLY.values()}
    for system in catalogue.systems:
        if system is NotificationActivities or not system.of_record:
            continue
        offered = [name for name, _, _ in system.read_only_tools()]
        assert offered, f"{system.__module__}.{system.__name__} offers agents no lookup"
        assert {activity for _, activity, _ in system.read_only_tools()} <= tools_by_activity


def test_no_write_is_a_tool_and_every_tool_says_what_it_is_for() -> None:
    discover()
    for name, tool in READ_ONLY.items():
        # Every write carries an idempotency key (ARCHITECTURE.md); a tool that takes one is a
        # write in disguise, unless it is the ledger lookup by a case's own key.
        if name not in KEYED_LOOKUPS:
            assert "idempotency_key" not in tool.arguments.model_fields, name
        assert tool.description != name and len(tool.description) > 20, name
    writes = {"payments.pay", "payments.reverse", "erp.create_vendor", "kyc.screen_sanctions"}
    assert not writes & {tool.activity for tool in READ_ONLY.values()}


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, trust_env=False, timeout=10.0) as client:
        yield client


async def test_the_lookups_added_for_agents_read_the_sandboxs_records(
    http: httpx.AsyncClient,
) -> None:
    env = ActivityEnvironment()
    erp = ErpVendorActivities(http)
    created = await env.run(
        erp.create_vendor,
        VendorCreation(
            name="Lookup Tools GmbH",
            country="DE",
            tax_id="DE-TOOLS-123",
            bank_account="DE89370400440532013000",
            contact_email="ap@tools.example",
            application_id="APP-TOOLS-1",
            approved_by=["carol"],
            documents=[],
            idempotency_key="tools-test:vendor",
        ),
    )
    assert await env.run(erp.get_vendor, VendorLookup(vendor_id=created.vendor_id)) == created
    found = await env.run(erp.find_vendors, VendorSearch(tax_id="DE-TOOLS-123"))
    assert [vendor.vendor_id for vendor in found] == [created.vendor_id]

    entry: dict[str, Any] = {"entry_id": "SAN-TOOLS-1", "name": "Ivan Example", "program": "EU"}
    assert (await http.post("/kyc/sanctions", json=entry)).status_code == 201
    kyc = KycActivities(http)
    read = await env.run(kyc.get_sanctions_entry, SanctionsEntryLookup(entry_id="SAN-TOOLS-1"))
    assert (read.entry_id, read.name, read.program) == ("SAN-TOOLS-1", "Ivan Example", "EU")

    payments = PaymentActivities(http)
    paid = await env.run(
        payments.pay,
        PaymentRequest(
            invoice_id="INV-TOOLS-1",
            supplier_id="SUP-1",
            amount=Decimal("12.50"),
            currency="EUR",
            idempotency_key="tools-test:pay",
        ),
    )
    listed = await env.run(
        payments.list_invoice_payments, InvoicePaymentsLookup(invoice_id="INV-TOOLS-1")
    )
    assert listed == [paid]

    pep = PepActivities(http)
    person = {
        "entry_id": "PEP-TOOLS-1",
        "name": "Horvat, Marek",
        "date_of_birth": "1969-05-09",
        "position": "Deputy minister",
        "country": "HR",
    }
    assert (await http.post("/pep/persons", json=person)).status_code == 201
    entries = await env.run(pep.find_entries, PepRegisterLookup(name="horvat"))
    assert [(e.entry_id, e.position) for e in entries] == [("PEP-TOOLS-1", "Deputy minister")]
    assert await env.run(pep.find_entries, PepRegisterLookup(name="Nobody Such")) == []

    ticket = {"ticket_id": "INC-TOOLS-1", "title": "down", "description": "d", "requester": "erin"}
    assert (await http.post("/itsm/tickets", json=ticket)).status_code == 201
    follow_ups = FollowUpActivities(http)
    created_task = await env.run(
        follow_ups.create_follow_up,
        FollowUpRequest(
            incident_id="INC-TOOLS-1",
            title="Alert on replication lag",
            owner="ivy",
            due_in_days=7,
            idempotency_key="tools-test:follow-up",
        ),
    )
    assert await env.run(follow_ups.list_follow_ups, FollowUpLookup(incident_id="INC-TOOLS-1")) == [
        created_task
    ]
