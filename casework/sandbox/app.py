"""The systems-of-record sandbox: one HTTP service standing in for an ERP, a payments system,
a notification system and an IT service desk, so casework's activities have something real to
call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from casework.sandbox import faults, notifications
from casework.sandbox.store import Database
from sandbox import (
    credit_bureau,
    crm,
    crm_sales,
    erp,
    erp_vendors,
    fraud,
    itsm,
    kyc,
    lending,
    orders,
    payments,
    vendors,
)

DESCRIPTION = """
Stand-ins for the systems of record casework's activities act on, backed by one SQLite file:

* **ERP**: suppliers, purchase orders, goods receipts and supplier invoices with a status history.
* **Payments**: pays invoices and disburses loans (one ledger, `/payments`), and refunds
  customers (`/payments/refunds`); every payout is reversible.
* **Notifications**: an outbox that records messages instead of sending them.
* **ITSM**: a service desk with tickets (classify, assign, comment, resolve; similar tickets),
  a configuration database of services and servers with their on-call owners, and a knowledge
  base with word-overlap search. Ticket and article text is stored and returned verbatim.
* **Orders**: customer orders with lines, payment status (captured, pending, ...) and fulfilment.
* **CRM (customers)**: customer records with their tier, and refund notes on them
  (`/crm/customers/...`).
* **Fraud signals**: signals raised against a customer or one of their orders.
* **Lending, KYC, credit bureau**: loan applications with income documents and a status history;
  an identity-document registry and a sanctions list with their checks; a credit bureau that
  takes report requests now and answers later.
* **CRM (sales)**: leads (assign, unassign, nurture), accounts with their owning account
  executive, account executives with territory, load and capacity, firmographics by web domain
  (enrichment), and the queue of first-touch messages to leads.
* **Vendor portal**: vendor applications with the documents vendors upload (a new upload of a
  kind replaces the previous one) and the application's status; document text is verbatim.
* **ERP vendor master**: vendors created from approved applications (`/erp/vendors`), one
  active vendor per tax ID, deactivation.

**Idempotency.** Writes that must not happen twice take an `Idempotency-Key` header. A retry
with the same key and the same body is not applied again: it gets the first response back with
status 200 and `Idempotent-Replayed: true`. Reusing a key for a different request is a 409.
Keys are scoped to an operation: a payment key and a notification key never collide.

**Faults.** `POST /_faults` makes the next matching calls slow, fail before they are processed,
or fail *after* they are processed (a lost response, the case idempotency keys exist for).
`/health` and `/_faults` are never faulted.

Errors are `{"detail": "..."}` with a message that names the field or record at fault.
"""


# Systems whose module holds its tables (``SCHEMA``) beside its routes.
SYSTEMS_WITH_OWN_SCHEMA: tuple[ModuleType, ...] = (
    orders,
    crm,
    fraud,
    lending,
    kyc,
    credit_bureau,
    crm_sales,
    vendors,
    erp_vendors,
)


class Health(BaseModel):
    status: Literal["ok"]


def create_app(db_path: str | Path) -> FastAPI:
    """Build the sandbox app over the SQLite file at `db_path`, creating its tables if missing.

    The database is opened here, so the app works with any ASGI client, and closed when the
    app's lifespan ends; an app therefore serves one server run.
    """
    db = Database(db_path, [system.SCHEMA for system in SYSTEMS_WITH_OWN_SCHEMA])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(
        title="casework systems-of-record sandbox",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
        exception_handlers={RequestValidationError: _validation_error},
    )
    app.state.db = db
    app.state.faults = faults.FaultRegistry()
    app.add_middleware(faults.FaultMiddleware, registry=app.state.faults)
    for module in (erp, payments, notifications, itsm, *SYSTEMS_WITH_OWN_SCHEMA, faults):
        app.include_router(module.router)

    @app.get("/health", tags=["Health"])
    def health() -> Health:
        # Touch the database so "ok" means requests can actually be served.
        with db.transaction() as conn:
            conn.execute("SELECT 1")
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Flatten FastAPI's list of validation errors into one sentence a person can act on."""
    problems = []
    for error in exc.errors():
        location = tuple(error["loc"])
        # "body" is implied for body fields, but keep it when the body as a whole is at fault.
        if location[:1] == ("body",) and len(location) > 1:
            location = location[1:]
        problems.append(f"{'.'.join(map(str, location))}: {error['msg']}")
    return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, status_code=422)
