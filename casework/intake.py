"""The intake service: cases started by events, as webhook senders deliver them.

``POST /intake/{process}`` takes a case's input as JSON and starts the case under its business
key. Senders sign the raw body with HMAC-SHA256 and the deployment's secret, the convention
GitHub and Stripe webhooks use::

    X-Casework-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>

- a missing or wrong signature is 401 and starts nothing (compared in constant time);
- a process the catalogue does not have is 404;
- a body that is not the process's input is 422, naming the field;
- a new case is 201; a second delivery of the same business object (senders retry) is 200
  with the case that object already has.

The secret is ``CASEWORK_INTAKE_SECRET`` or the file ``CASEWORK_INTAKE_SECRET_FILE`` names;
``casework up`` generates one under its home (``intake-secret``). The service listens on
loopback unless told otherwise: put it behind the proxy that terminates TLS for senders.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from casework.catalogue import discover
from casework.client import connect
from casework.config import DEFAULT_INTAKE_PORT, Settings, SettingsError
from casework.intake_signing import (
    SECRET_ENV,
    SECRET_FILE,
    SIGNATURE_HEADER,
    SIGNATURE_PREFIX,
    load_secret,
    signed_by,
)
from casework.starting import InputProblem, case_input, start_case

MAX_BODY_BYTES = 1_000_000


class Started(BaseModel):
    case_id: str
    run_id: str | None
    process: str
    created: bool
    """False: the business object already had this case (a retried delivery)."""
    status: Literal["started", "existing"]


def create_app(client: Client | None, secret: SecretStr, task_queue: str) -> FastAPI:
    """The intake app starting cases through ``client`` (None: connect as the environment says
    when the app starts) on ``task_queue``."""
    clients: dict[str, Client] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        clients["temporal"] = client or await connect()
        yield

    app = FastAPI(
        title="casework intake",
        description=__doc__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/intake/{process_name}",
        status_code=201,
        responses={200: {"model": Started}, 401: {}, 404: {}, 413: {}, 422: {}},
    )
    async def intake(process_name: str, request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        # Authenticate before anything else: an unsigned caller learns nothing, not even
        # which processes exist.
        if not signed_by(body, request.headers.get(SIGNATURE_HEADER), secret.get_secret_value()):
            raise HTTPException(
                401,
                f"missing or wrong {SIGNATURE_HEADER}: sign the raw body with HMAC-SHA256 "
                f"and send {SIGNATURE_PREFIX}<hex>",
            )
        processes = discover().processes
        process = processes.get(process_name)
        if process is None:
            raise HTTPException(
                404, f"no process {process_name!r}; processes: {', '.join(sorted(processes))}"
            )
        try:
            payload: Any = json.loads(body)
        except ValueError as error:
            raise HTTPException(422, f"the body is not JSON: {error}") from error
        try:
            case = case_input(process, payload)
        except InputProblem as problem:
            raise HTTPException(422, str(problem)) from problem
        case_id = process.case_id(case)
        temporal = clients["temporal"]
        try:
            handle = await start_case(temporal, process, case, case_id, task_queue)
        except WorkflowAlreadyStartedError as error:
            # A retried delivery: the business object has its case already.
            existing = Started(
                case_id=case_id,
                run_id=error.run_id,
                process=process.name,
                created=False,
                status="existing",
            )
            return JSONResponse(existing.model_dump(), status_code=200)
        started = Started(
            case_id=case_id,
            run_id=handle.result_run_id,
            process=process.name,
            created=True,
            status="started",
        )
        return JSONResponse(started.model_dump(), status_code=201)

    return app


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m casework.intake",
        description="Run the intake service: POST /intake/{process} starts a case from a signed "
        f"JSON body ({SIGNATURE_HEADER}: sha256=<hex of HMAC-SHA256(secret, body)>). The secret "
        f"is {SECRET_ENV}, or the file {SECRET_ENV}_FILE names, else the home's {SECRET_FILE}.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_INTAKE_PORT, help="port (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        secret = load_secret()
    except SettingsError as error:
        raise SystemExit(f"casework intake: {error}") from error
    app = create_app(None, secret, settings.task_queue)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
