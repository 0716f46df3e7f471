"""Calling systems of record over HTTP, with failures mapped to what Temporal should do next.

A 4xx means the request itself is wrong (unknown record, conflict, refused): retrying cannot fix
it, so it is non-retryable with a type users can match. A 5xx, a timeout or a refused connection
is the system being unavailable: Temporal retries it with backoff.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

RECORD_NOT_FOUND = "RecordNotFound"
REQUEST_CONFLICT = "RequestConflict"
REQUEST_REJECTED = "RequestRejected"
SYSTEM_UNAVAILABLE = "SystemUnavailable"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:300]


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Any:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    try:
        response = await client.request(method, path, json=json, params=params, headers=headers)
    except httpx.TransportError as error:
        raise ApplicationError(
            f"{method} {path} could not reach the system: {error!r}", type=SYSTEM_UNAVAILABLE
        ) from error
    if response.is_success:
        return response.json()
    message = f"{method} {path} answered {response.status_code}: {_detail(response)}"
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise ApplicationError(message, type=SYSTEM_UNAVAILABLE)
    error_type = {404: RECORD_NOT_FOUND, 409: REQUEST_CONFLICT}.get(
        response.status_code, REQUEST_REJECTED
    )
    raise ApplicationError(message, type=error_type, non_retryable=True)
