"""Tests never read the user's state: a checkout where `make demo` ran (a `.casework/` home with a
payload key ring, a stack on the default ports) changes nothing a test's commands do.

``tests/conftest.py`` gives the session a home of its own and points the default stack
addresses nowhere; every command a test starts inherits both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from casework.codec import ENCODING, KEY_RING_FILE, ensure_key_ring
from casework.config import HOME_DIR_NAME
from tests.conftest import NOWHERE

CASEWORK = Path(sys.executable).parent / "casework"


def test_the_session_has_a_home_of_its_own_and_no_default_stack_address() -> None:
    home = Path(os.environ["CASEWORK_HOME"])
    assert home.name.startswith("casework-test-home-")
    assert not home.is_relative_to(Path(__file__).resolve().parents[1])
    for name, nowhere in NOWHERE.items():
        assert os.environ[name] == nowhere, name


async def test_a_test_started_cli_ignores_a_key_ring_in_its_working_directory(
    tmp_path: Path, temporal: WorkflowEnvironment
) -> None:
    # What `make demo` leaves in a checkout: a home with a key ring, found from the working
    # directory when CASEWORK_HOME is unset.
    ring = ensure_key_ring(tmp_path / HOME_DIR_NAME)
    assert ring.name == KEY_RING_FILE
    env = os.environ | {
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal.client.namespace,
        "CASEWORK_TASK_QUEUE": f"isolation-{uuid.uuid4().hex}",
    }

    status = subprocess.run(
        [str(CASEWORK), "status"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    home_line = status.stdout.splitlines()[0]
    assert home_line.split()[1] == os.environ["CASEWORK_HOME"], status.stdout
    assert "(CASEWORK_HOME)" in home_line

    invoice_id = f"INV-ISO-{uuid.uuid4().hex[:6].upper()}"
    started = subprocess.run(
        [
            str(CASEWORK),
            "start",
            "invoice-exception",
            "--input",
            json.dumps({"invoice_id": invoice_id, "submitted_by": "alice"}),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    handle = temporal.client.get_workflow_handle(f"invoice-exception-{invoice_id}")
    history = await handle.fetch_history()
    started_event = history.events[0].workflow_execution_started_event_attributes
    encodings = {p.metadata["encoding"].decode() for p in started_event.input.payloads}
    # Not sealed with the working directory's key ring: a test's worker (no key ring) reads it.
    assert ENCODING.decode() not in encodings and encodings == {"json/plain"}, encodings
    await handle.terminate("checked what the CLI sent")
