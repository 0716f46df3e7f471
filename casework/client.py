"""Connecting to Temporal the standard way, with casework's data converter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from casework.codec import load_key_ring
from casework.config import DEFAULT_TEMPORAL_ADDRESS, Settings
from casework.converter import data_converter, encrypting_converter


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
    converter = encrypting_converter(ring) if ring else data_converter
    return await Client.connect(
        **config, data_converter=converter, runtime=runtime, interceptors=interceptors
    )
