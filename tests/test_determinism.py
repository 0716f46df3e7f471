"""Workers run workflow code outside the sandbox by default, so they check it before they run it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from casework.catalogue import discover
from casework.cli.demo import run_demo
from casework.config import Settings, SettingsError, workflow_sandbox
from casework.determinism import source_problems, workflow_problems
from casework.worker import running_worker

CLOCK_READING_WORKFLOW = """
from datetime import datetime

from pydantic import BaseModel
from temporalio import workflow

from casework.case import CaseWorkflow


class Reading(BaseModel):
    meter: str


@workflow.defn(name="ClockReading")
class ClockReadingWorkflow(CaseWorkflow):
    case_type = "clock-reading"
    input_model = Reading
    business_key = "meter"

    @workflow.run
    async def run(self, request: Reading) -> str:
        return datetime.now().isoformat()
"""


def test_every_workflow_of_the_catalogue_and_the_framework_passes() -> None:
    assert workflow_problems(discover().workflows) == []


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("import time", "imports time"),
        ("import os.path", "imports os.path"),
        ("from random import choice", "imports from random"),
        ("from urllib.request import urlopen", "imports from urllib.request"),
        ("import httpx", "imports httpx"),
        ("x = datetime.now()", "reads the wall clock (datetime.now()): use workflow.now()"),
        ("x = datetime.datetime.utcnow()", "reads the wall clock (datetime.utcnow())"),
        ("x = date.today()", "reads the wall clock (date.today())"),
        ("x = open('ledger.csv')", "calls open()"),
    ],
)
def test_what_the_sandbox_would_refuse_is_named_with_its_line(line: str, what: str) -> None:
    problems = source_problems(f"import asyncio\n\n{line}\n", "flow.py")
    assert len(problems) == 1
    assert problems[0].startswith(f"flow.py:3: {what}")


def test_deterministic_workflow_idioms_pass() -> None:
    source = (
        "import asyncio\n"
        "from datetime import datetime, timedelta\n"
        "from temporalio import workflow\n"
        "started = workflow.now()\n"
        "key = workflow.uuid4()\n"
        "later = datetime.fromisoformat('2026-01-01') + timedelta(days=1)\n"
        "await asyncio.gather(workflow.sleep(1))\n"
    )
    assert source_problems(source, "flow.py") == []


def test_a_worker_refuses_to_start_on_a_workflow_that_reads_the_clock(tmp_path: Path) -> None:
    package = tmp_path / "clockflows"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "clock_reading.py").write_text(CLOCK_READING_WORKFLOW)
    env = os.environ | {
        "CASEWORK_CATALOGUE": "clockflows",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    worker = subprocess.run(
        [sys.executable, "-m", "workers"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 2, worker.stderr
    assert "not starting: nondeterministic workflow code" in worker.stderr
    line = CLOCK_READING_WORKFLOW.splitlines().index("        return datetime.now().isoformat()")
    assert f"{package / 'clock_reading.py'}:{line + 1}: reads the wall clock" in worker.stderr


def test_the_sandbox_setting_is_strict_or_off() -> None:
    assert workflow_sandbox({}) is False
    assert workflow_sandbox({"CASEWORK_WORKFLOW_SANDBOX": "strict"}) is True
    with pytest.raises(SettingsError, match="CASEWORK_WORKFLOW_SANDBOX must be one of off"):
        workflow_sandbox({"CASEWORK_WORKFLOW_SANDBOX": "loose"})


async def test_without_the_sandbox_every_demo_case_ends_as_its_scenario_says(
    temporal: WorkflowEnvironment,
    sandbox_url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # What `make demo` runs: a worker as production runs it, workflow code unsandboxed. The
    # demo writes files under its home (a vendor's corrected document): the test's own, not a
    # .casework in the checkout, which later commands there would take for the user's home.
    settings = Settings(
        task_queue=f"unsandboxed-{uuid.uuid4().hex}",
        sandbox_url=sandbox_url,
        sandboxed_workflows=False,
        state_dir=tmp_path / "casework",
    )
    async with running_worker(temporal.client, settings):
        outcome = await run_demo(temporal.client, settings)

    assert outcome == 0, capsys.readouterr().out
