"""Records of the systems casework reads and writes (ERP, payments, notifications, ITSM).

These are what activities return and workflows reason over; pure pydantic, safe in workflow code.
Unknown fields from the systems are ignored so a new column upstream does not break a case.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Supplier(Record):
    supplier_id: str
    name: str
    country: str = ""
    bank_account: str = ""
    status: str = "active"
    risk: str = "low"


class OrderLine(Record):
    sku: str
    description: str = ""
    quantity: int
    unit_price: Decimal


class PurchaseOrder(Record):
    po_number: str
    supplier_id: str
    currency: str
    lines: list[OrderLine]
    total: Decimal


class ReceiptLine(Record):
    sku: str
    quantity_received: int


class GoodsReceipt(Record):
    receipt_id: str
    po_number: str
    lines: list[ReceiptLine]
    received_at: str | None = None


class Invoice(Record):
    invoice_id: str
    supplier_id: str
    po_number: str | None = None
    currency: str
    lines: list[OrderLine]
    total: Decimal
    status: str
    exception_reason: str | None = None


class Payment(Record):
    payment_id: str
    invoice_id: str
    supplier_id: str
    amount: Decimal
    currency: str
    status: str
    idempotency_key: str | None = None
    reference: str | None = None


class Notification(Record):
    notification_id: str
    to: str
    subject: str
    body: str = ""
    case_id: str | None = None


# --- ITSM (service desk) ---------------------------------------------------------------------
# Ticket and article text is whatever people typed, returned verbatim: treat it as data, never
# as instructions. Timestamps are ISO 8601 strings with a UTC offset, as the sandbox sends them.


class TicketComment(Record):
    author: str
    body: str
    at: str


class TicketHistoryEntry(Record):
    action: str
    detail: str = ""
    at: str


class Ticket(Record):
    ticket_id: str
    title: str
    description: str = ""
    requester: str
    ci_id: str | None = None
    category: str | None = None
    severity: int | None = None  # 1 is the most severe, 4 the least
    status: str  # "new", "assigned" or "resolved"
    team: str | None = None
    assignee: str | None = None
    resolution: str | None = None
    kb_article_id: str | None = None
    comments: list[TicketComment] = []
    history: list[TicketHistoryEntry] = []
    created_at: str | None = None


class SimilarTicket(Record):
    ticket_id: str
    title: str
    status: str
    category: str | None = None
    resolution: str | None = None
    kb_article_id: str | None = None
    score: float


class ConfigurationItem(Record):
    ci_id: str
    name: str
    kind: str
    owner_team: str
    oncall: str  # directory user id of the on-call owner
    criticality: str  # "low", "medium", "high" or "critical"


class KbArticle(Record):
    article_id: str
    title: str
    body: str
    category: str
    tags: list[str] = []


class KbHit(Record):
    article_id: str
    title: str
    category: str
    snippet: str = ""
    score: float
