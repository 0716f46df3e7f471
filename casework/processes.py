"""The catalogue of processes the CLI can start: name, workflow type, input model, business key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from workflows import (
    invoice_exception,
    lead_routing,
    loan_application,
    refund,
    ticket_triage,
    vendor_onboarding,
)


@dataclass(frozen=True)
class Process:
    name: str
    workflow_type: str
    input_model: type[BaseModel]
    case_id: Callable[[Any], str]
    """The business key: one running case per business object."""
    description: str


PROCESSES: dict[str, Process] = {
    process.name: process
    for process in [
        Process(
            name=invoice_exception.CASE_TYPE,
            workflow_type="InvoiceException",
            input_model=invoice_exception.InvoiceExceptionInput,
            case_id=lambda request: invoice_exception.case_id_for(request.invoice_id),
            description="explain an AP invoice exception, approve by policy, pay exactly once",
        ),
        Process(
            name=ticket_triage.CASE_TYPE,
            workflow_type="TicketTriage",
            input_model=ticket_triage.TicketTriageInput,
            case_id=lambda request: ticket_triage.case_id_for(request.ticket_id),
            description="an agent triages an IT ticket; policy decides; severity 1 pages on-call",
        ),
        Process(
            name=refund.CASE_TYPE,
            workflow_type="Refund",
            input_model=refund.RefundInput,
            case_id=lambda request: refund.case_id_for(request.order_id),
            description="refund a customer by policy tier; fraud flags go to an investigator",
        ),
        Process(
            name=loan_application.CASE_TYPE,
            workflow_type="LoanApplication",
            input_model=loan_application.LoanApplicationInput,
            case_id=lambda request: loan_application.case_id_for(request.application_id),
            description="KYC, a late credit report and an income-reading agent decide a loan; "
            "a fraud alert after disbursement reverses it",
        ),
        Process(
            name=lead_routing.CASE_TYPE,
            workflow_type="LeadRouting",
            input_model=lead_routing.LeadRoutingInput,
            case_id=lambda request: lead_routing.case_id_for(request.lead_id),
            description="score and read an inbound lead, route it to an AE by territory and load",
        ),
        Process(
            name=vendor_onboarding.CASE_TYPE,
            workflow_type="VendorOnboarding",
            input_model=vendor_onboarding.VendorOnboardingInput,
            case_id=lambda request: vendor_onboarding.case_id_for(request.application_id),
            description="check a vendor's documents; all reviews approve; create it in the ERP",
        ),
    ]
}
