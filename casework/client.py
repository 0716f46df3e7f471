"""Connecting to Temporal the standard way, with casework's data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from casework.config import DEFAULT_TEMPORAL_ADDRESS
from casework.converter import data_converter


async def connect() -> Client:
    """Connect using ``temporalio.envconfig``: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY, TLS settings or a profile in the Temporal config file; the embedded dev
    server on 127.0.0.1:7233 when none is set."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    return await Client.connect(**config, data_converter=data_converter)
