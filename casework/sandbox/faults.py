"""Fault injection: make the next matching calls slow, fail, or lose their response.

Faults live in memory only; they are a test and demo device, not part of any system of record.
They are consulted by an ASGI middleware and managed through the async routes below, so all
access happens on the event loop and needs no lock.
"""

from __future__ import annotations

import asyncio
from fnmatch import fnmatchcase
from itertools import count
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.sandbox.models import StrictModel

# Never faulted, so a test can always reach the switchboard and the readiness probe.
EXEMPT_PATHS = ("/health", "/_faults")

# Statuses that mean "only delay, then process normally".
PASS_THROUGH = (0, 200)


class FaultSpec(StrictModel):
    method: str = Field("*", description="HTTP method, or a glob such as '*'.")
    path: str = Field(
        pattern=r"^[/*]", description="Glob matched against the request path, e.g. /payments*."
    )
    count: int = Field(1, ge=1, description="How many matching calls the fault applies to.")
    status: int = Field(
        503, description="Status to answer with; 0 or 200 means delay only, then process."
    )
    delay_seconds: float = Field(0, ge=0, le=300)
    idempotency_key: str = Field(
        "*",
        description="Glob matched against the request's Idempotency-Key header, e.g. "
        "'invoice-exception-INV-1001:*' for one case's writes; '*' (the default) matches any "
        "request, with a key or without.",
    )
    when: Literal["before", "after"] = Field(
        "before",
        description="'before': answer without processing. 'after': process the request, then "
        "answer with the status anyway, as if the response had been lost.",
    )

    @field_validator("method")
    @classmethod
    def _upper(cls, method: str) -> str:
        return method.upper()

    @field_validator("status")
    @classmethod
    def _error_status(cls, status: int) -> int:
        if status not in PASS_THROUGH and not 400 <= status <= 599:
            raise ValueError("must be 0 or 200 (delay only) or an error status from 400 to 599")
        return status


class Fault(FaultSpec):
    id: str
    remaining: int


class Cleared(BaseModel):
    cleared: int


class FaultRegistry:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = count(1)

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(**spec.model_dump(), id=f"FAULT-{next(self._ids)}", remaining=spec.count)
        self._faults.append(fault)
        return fault

    def active(self) -> list[Fault]:
        return [fault.model_copy() for fault in self._faults]

    def clear(self) -> int:
        cleared = len(self._faults)
        self._faults.clear()
        return cleared

    def take(self, method: str, path: str, key: str | None = None) -> Fault | None:
        """Use up one call of the oldest fault matching this request, if any."""
        if path in EXEMPT_PATHS:
            return None
        for fault in self._faults:
            if (
                fnmatchcase(method, fault.method)
                and fnmatchcase(path, fault.path)
                and (fault.idempotency_key == "*" or fnmatchcase(key or "", fault.idempotency_key))
            ):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None


class FaultMiddleware:
    def __init__(self, app: ASGIApp, registry: FaultRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = None
        if scope["type"] == "http":
            key = dict(scope["headers"]).get(b"idempotency-key")
            fault = self.registry.take(
                scope["method"], scope["path"], key.decode("latin-1") if key else None
            )
        if fault is None:
            await self.app(scope, receive, send)
            return
        await asyncio.sleep(fault.delay_seconds)
        if fault.status in PASS_THROUGH:
            await self.app(scope, receive, send)
            return
        if fault.when == "after":
            await self.app(scope, receive, _discard)
        detail = (
            f"injected fault {fault.id}: {fault.status} for {scope['method']} {scope['path']}"
            + (" (the request was processed)" if fault.when == "after" else "")
        )
        await JSONResponse({"detail": detail}, status_code=fault.status)(scope, receive, send)


async def _discard(message: Message) -> None:
    """Swallow the real response of a request whose answer the fault replaces."""


def _registry(request: Request) -> FaultRegistry:
    registry: FaultRegistry = request.app.state.faults
    return registry


Registry = Annotated[FaultRegistry, Depends(_registry)]

router = APIRouter(prefix="/_faults", tags=["Faults"])


@router.post("", status_code=201)
async def add_fault(spec: FaultSpec, registry: Registry) -> Fault:
    """Fault the next `count` calls matching `method` and `path`."""
    return registry.add(spec)


@router.get("")
async def list_faults(registry: Registry) -> list[Fault]:
    """Faults that still have calls left, with how many."""
    return registry.active()


@router.delete("")
async def clear_faults(registry: Registry) -> Cleared:
    """Remove every fault."""
    return Cleared(cleared=registry.clear())
