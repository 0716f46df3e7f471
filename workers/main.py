"""The casework worker: every process's workflows and activities on one task queue.

Run it with ``casework worker`` or ``python -m workers``; scale out by running more.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.credit_bureau import CreditBureauActivities
from activities.crm import CrmActivities
from activities.crm_sales import CrmSalesActivities
from activities.erp import ErpActivities
from activities.erp_vendors import ErpVendorActivities
from activities.fraud import FraudActivities
from activities.itsm import ItsmActivities
from activities.kyc import KycActivities
from activities.lending import LendingActivities
from activities.orders import OrderActivities
from activities.payments import PaymentActivities
from activities.vendors import VendorPortalActivities
from casework import telemetry
from casework.agents.llm import LlmActivities
from casework.agents.region import AgentRegionWorkflow
from casework.client import connect
from casework.config import Settings, SettingsError
from casework.governance import activity as policy
from casework.governance.loader import load_policy, policy_dir
from casework.governance.models import DIRECTORY_ID, Directory
from casework.governance.registry import policy_problems
from casework.signing_keys import SigningKeyError, load_public_keys
from casework.systems.notifications import NotificationActivities
from workflows.invoice_exception import InvoiceExceptionWorkflow
from workflows.lead_routing import LeadRoutingWorkflow
from workflows.loan_application import LoanApplicationWorkflow
from workflows.refund import RefundWorkflow
from workflows.ticket_triage import TicketTriageWorkflow
from workflows.vendor_onboarding import VendorOnboardingWorkflow

WORKFLOWS: list[type] = [
    InvoiceExceptionWorkflow,
    TicketTriageWorkflow,
    AgentRegionWorkflow,
    RefundWorkflow,
    LoanApplicationWorkflow,
    LeadRoutingWorkflow,
    VendorOnboardingWorkflow,
]

log = logging.getLogger("casework.worker")


def build_activities(settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    erp = ErpActivities(http)
    payments = PaymentActivities(http)
    notifications = NotificationActivities(http)
    itsm = ItsmActivities(http)
    llm = LlmActivities(settings)
    orders = OrderActivities(http)
    crm = CrmActivities(http)
    fraud = FraudActivities(http)
    lending = LendingActivities(http)
    kyc = KycActivities(http)
    credit_bureau = CreditBureauActivities(http)
    crm_sales = CrmSalesActivities(http)
    vendor_portal = VendorPortalActivities(http)
    erp_vendors = ErpVendorActivities(http)
    return [
        policy.load,
        erp.get_invoice,
        erp.get_purchase_order,
        erp.list_goods_receipts,
        erp.get_supplier,
        erp.set_invoice_status,
        payments.pay,
        payments.reverse,
        payments.find,
        notifications.send,
        itsm.get_ticket,
        itsm.get_configuration_item,
        itsm.search_knowledge_base,
        itsm.get_kb_article,
        itsm.find_similar_tickets,
        itsm.classify_ticket,
        itsm.assign_ticket,
        itsm.resolve_ticket,
        itsm.comment_on_ticket,
        llm.propose,
        llm.chat,
        orders.get_order,
        orders.list_customer_orders,
        crm.get_customer,
        crm.add_refund_note,
        fraud.list_signals,
        fraud.get_alert,
        payments.issue_refund,
        payments.reverse_refund,
        payments.list_refunds,
        lending.get_application,
        lending.set_application_status,
        lending.get_message,
        kyc.verify_identity,
        kyc.screen_sanctions,
        credit_bureau.request_report,
        credit_bureau.get_request,
        payments.disburse,
        crm_sales.get_lead,
        crm_sales.enrich_company,
        crm_sales.find_account,
        crm_sales.list_account_executives,
        crm_sales.assign_lead,
        crm_sales.unassign_lead,
        crm_sales.nurture_lead,
        crm_sales.queue_first_touch,
        vendor_portal.get_application,
        vendor_portal.set_application_status,
        vendor_portal.get_document,
        erp_vendors.create_vendor,
        erp_vendors.deactivate_vendor,
    ]


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """A worker polling ``settings.task_queue`` for as long as the context is open."""
    async with httpx.AsyncClient(base_url=settings.sandbox_url, timeout=20.0) as http:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=build_activities(settings, http),
            max_cached_workflows=settings.max_cached_workflows,
        )
        async with worker:
            yield worker


async def serve(settings: Settings) -> None:
    client = await connect(
        runtime=telemetry.runtime(settings.metrics_address),
        interceptors=telemetry.tracing_interceptors("casework-worker"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    model = settings.model or "offline stand-in (set CASEWORK_MODEL to use a real model)"
    async with running_worker(client, settings):
        log.info(
            "worker polling task queue %r on %s; systems at %s; model: %s",
            settings.task_queue,
            client.service_client.config.target_host,
            settings.sandbox_url,
            model,
        )
        if settings.metrics_address:
            log.info("Prometheus metrics on http://%s/metrics", settings.metrics_address)
        if endpoint := telemetry.otlp_endpoint():
            log.info("OpenTelemetry traces to %s", endpoint)
        await stop.wait()
    telemetry.shutdown_tracing()
    log.info("worker stopped")


def check_policies() -> None:
    """Refuse to start on a broken policy, naming file and field, rather than fail each case
    that loads it."""
    directory = policy_dir()
    if problems := policy_problems(directory):
        print(f"casework worker: not starting: invalid policy in {directory}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(2)


def check_decision_keys(settings: Settings) -> None:
    """Refuse to start without the users' public decision keys: every case would fail when it
    loads its directory. Users without a key are named, since their decisions will be refused."""
    try:
        keys = load_public_keys(settings.state_dir)
    except SigningKeyError as error:
        print(f"casework worker: not starting: {error}", file=sys.stderr)
        sys.exit(2)
    users = Directory.model_validate(load_policy(DIRECTORY_ID).content).users
    if unkeyed := sorted(set(users) - set(keys)):
        log.warning("no decision key for %s: their decisions will be refused", ", ".join(unkeyed))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    check_policies()
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"casework worker: not starting: {error}", file=sys.stderr)
        sys.exit(2)
    check_decision_keys(settings)
    asyncio.run(serve(settings))
