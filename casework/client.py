"""Connecting to Temporal the standard way, with casework's plugin (converter, codec, sandbox)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from casework import search_attributes as sa
from casework.codec import ENCODING, load_key_ring
from casework.config import DEFAULT_TEMPORAL_ADDRESS, Settings
from casework.plugin import CaseworkPlugin

_PROBE_TIMEOUT = timedelta(seconds=3)


async def connect(
    runtime: Runtime | None = None,
    interceptors: Sequence[Any] = (),
    settings: Settings | None = None,
) -> Client:
    """Connect using ``temporalio.envconfig``: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TLS settings or a profile in the Temporal config file; the embedded dev
    server on 127.0.0.1:7233 when none is set.

    Short-lived processes (the CLI) pass a runtime of their own and release it before exit: a
    default runtime torn down during interpreter shutdown can abort the process
    (temporalio/sdk-python#300).

    Payloads are encrypted when a codec key ring is configured (see ``casework.codec``)."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    ring = load_key_ring((settings or Settings.from_env()).state_dir)
    plugin = CaseworkPlugin(key_ring=ring, interceptors=interceptors)
    return await Client.connect(**config, plugins=[plugin], runtime=runtime)


def encrypts(client: Client) -> bool:
    """Whether ``client`` encrypts what it sends (it found a key ring)."""
    return client.data_converter.payload_codec is not None


async def codec_server_health(settings: Settings) -> dict[str, Any] | None:
    """What the casework codec server at ``settings.codec_url`` says of itself (its current key
    ID and the home whose key ring it serves), or None when none answers there."""
    try:
        async with httpx.AsyncClient(
            timeout=_PROBE_TIMEOUT.total_seconds(), trust_env=False
        ) as http:
            response = await http.get(f"{settings.codec_url.rstrip('/')}/health")
        health = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return health if isinstance(health, dict) and "current_key" in health else None


def _same_server(stack_address: str | None, client: Client) -> bool:
    """Whether the codec server's stack is the Temporal server ``client`` talks to (a server
    that does not say is taken to be): a stack running beside another server, as in a test
    session, has no say in what is sent there."""
    if not stack_address:
        return True
    target = client.service_client.config.target_host
    return stack_address.replace("localhost", "127.0.0.1") == target.replace(
        "localhost", "127.0.0.1"
    )


async def encryption_evidence(client: Client, settings: Settings) -> str | None:
    """Why the stack ``client`` talks to is known to encrypt payloads, or None.

    For a client without a key ring, before it sends anything: its input would otherwise be
    stored in the clear beside encrypted cases, and nobody could read the case afterwards. Two
    signs, either enough: a casework codec server answers where this client's settings say the
    stack's is (the embedded stack always runs one), or the newest case was started encrypted.
    """
    health = await codec_server_health(settings)
    if health and _same_server(health.get("temporal_address"), client):
        home = f" (its home: {health['home']})" if health.get("home") else ""
        return f"the stack's codec server at {settings.codec_url} decrypts its payloads{home}"
    try:
        async for execution in client.list_workflows(
            f"{sa.CASE_TYPE.name} IS NOT NULL", limit=1, rpc_timeout=_PROBE_TIMEOUT
        ):
            history = await client.workflow_service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=client.namespace,
                    execution=WorkflowExecution(workflow_id=execution.id, run_id=execution.run_id),
                    maximum_page_size=1,
                ),
                timeout=_PROBE_TIMEOUT,
            )
            started = history.history.events[0].workflow_execution_started_event_attributes
            if any(p.metadata.get("encoding") == ENCODING for p in started.input.payloads):
                return f"case {execution.id} on it was started with encrypted payloads"
    except (RPCError, IndexError):
        pass
    return None
