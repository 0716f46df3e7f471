"""The systems-of-record sandbox: one HTTP service standing in for the systems of record a
catalogue's processes act on, so casework's activities have something real to call.

The systems are found at run time: every module of the packages ``CASEWORK_SANDBOX_SYSTEMS``
names (comma-separated; default ``sandbox``) that has a FastAPI ``router`` serves it, and its
``SCHEMA`` (SQL, optional) creates its tables. The notification outbox and fault injection are
the framework's own, served whatever the catalogue holds.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel
from starlette.routing import Route

from casework.discovery import CatalogueError, import_package, packages_named
from casework.sandbox import faults, notifications
from casework.sandbox.mcp import MCP_PATH, lookup_endpoint
from casework.sandbox.store import Database

SYSTEMS_ENV = "CASEWORK_SANDBOX_SYSTEMS"
DEFAULT_SYSTEMS = ("sandbox",)

DESCRIPTION = """
Stand-ins for the systems of record casework's activities act on, backed by one SQLite file:

{systems}

**Idempotency.** Writes that must not happen twice take an `Idempotency-Key` header. A retry
with the same key and the same body is not applied again: it gets the first response back with
status 200 and `Idempotent-Replayed: true`. Reusing a key for a different request is a 409.
Keys are scoped to an operation: a payment key and a notification key never collide.

**Faults.** `POST /_faults` makes the next matching calls slow, fail before they are processed,
or fail *after* they are processed (a lost response, the case idempotency keys exist for).
`/health` and `/_faults` are never faulted.

Errors are `{{"detail": "..."}}` with a message that names the field or record at fault.
"""


@dataclass(frozen=True)
class StandIn:
    """One system's stand-in, as its module declares it."""

    module: str
    router: APIRouter
    schema: str | None
    summary: str
    """The first paragraph of the module's docstring, for the API page."""


def discover_systems(packages: Sequence[str] | None = None) -> list[StandIn]:
    """The stand-ins of ``packages`` (default: as ``CASEWORK_SANDBOX_SYSTEMS`` says), in module
    order; a module that does not import, or declares a ``router`` or ``SCHEMA`` of the wrong
    kind, stops the sandbox naming it."""
    found = []
    for package in packages or packages_named(SYSTEMS_ENV, DEFAULT_SYSTEMS):
        for module in import_package(package):
            router = getattr(module, "router", None)
            schema = getattr(module, "SCHEMA", None)
            if router is None and schema is None:
                continue  # a helper module: nothing to serve
            if not isinstance(router, APIRouter):
                raise CatalogueError(
                    f"sandbox module {module.__name__} must declare `router`, a FastAPI "
                    f"APIRouter, to serve its system (found {type(router).__name__})"
                )
            if schema is not None and not isinstance(schema, str):
                raise CatalogueError(
                    f"sandbox module {module.__name__}: SCHEMA must be SQL text, not "
                    f"{type(schema).__name__}"
                )
            found.append(StandIn(module.__name__, router, schema, _summary(module)))
    return found


def _summary(module: ModuleType) -> str:
    first_paragraph = (inspect.getdoc(module) or module.__name__).split("\n\n")[0]
    return " ".join(first_paragraph.split())


class Health(BaseModel):
    status: Literal["ok"]


def create_app(db_path: str | Path, packages: Sequence[str] | None = None) -> FastAPI:
    """Build the sandbox app over the SQLite file at `db_path`, creating its tables if missing,
    with the systems of ``packages`` (default: as ``CASEWORK_SANDBOX_SYSTEMS`` says).

    The database is opened here, so the app works with any ASGI client, and closed when the
    app's lifespan ends; an app therefore serves one server run.
    """
    systems = discover_systems(packages)
    db = Database(db_path, [system.schema for system in systems if system.schema])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_sessions.run():
            yield
        db.close()

    app = FastAPI(
        title="casework systems-of-record sandbox",
        description=DESCRIPTION.format(
            systems="\n".join(
                f"* {summary}"
                for summary in [*(s.summary for s in systems), _summary(notifications)]
            )
        ),
        version="1.0.0",
        lifespan=lifespan,
        exception_handlers={RequestValidationError: _validation_error},
    )
    app.state.db = db
    app.state.faults = faults.FaultRegistry()
    app.add_middleware(faults.FaultMiddleware, registry=app.state.faults)
    for router in (*(system.router for system in systems), notifications.router, faults.router):
        app.include_router(router)
    # The same lookups over MCP (casework.sandbox.mcp), for agents given them as MCP tools.
    mcp_endpoint = lookup_endpoint(app)
    mcp_sessions = mcp_endpoint.manager
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp_endpoint.app))

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
