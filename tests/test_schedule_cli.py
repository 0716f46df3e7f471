"""``casework schedule``: a schedule the CLI creates starts a case when Temporal triggers it.

The CLI and the Temporal CLI run as subprocesses against a real dev server; the case it starts
runs on a worker with the process's systems faked by activity name.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from casework.testing.fakes import fake_worker
from casework.testing.stack import CASEWORK
from casework.testing.temporal import BIN, eventually
from tests.customer_onboarding_support import FakeOnboardingSystems, application
from workflows.customer_onboarding import (
    CustomerOnboardingResult,
    CustomerOnboardingWorkflow,
    Outcome,
)


@pytest.fixture
def cli_env(temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {
        **os.environ,
        "CASEWORK_HOME": str(tmp_path_factory.mktemp("schedule-home")),
        "TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "CASEWORK_TASK_QUEUE": f"schedule-test-{uuid.uuid4().hex}",
        # No codec server answers here: nothing about this stack asks for encryption.
        "CASEWORK_CODEC_URL": "http://127.0.0.1:9",
    }


def casework(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CASEWORK, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_a_schedule_created_by_the_cli_starts_a_case_when_triggered(
    temporal: WorkflowEnvironment, cli_env: dict
) -> None:
    request = application(f"APP-SCH-{uuid.uuid4().hex[:8]}")
    schedule_id = f"high-risk-review-{request.application_id}"
    created = casework(
        cli_env,
        "schedule",
        "create",
        "customer-onboarding",
        "--id",
        schedule_id,
        "--cron",
        "0 9 1 * *",
        "--overlap",
        "buffer-one",
        "--input",
        request.model_dump_json(),
    )
    assert created.returncode == 0, created.stderr
    assert f"created schedule {schedule_id}: customer-onboarding cron 0 9 1 * *" in created.stdout

    description = await temporal.client.get_schedule_handle(schedule_id).describe()
    assert description.schedule.policy.overlap.name == "BUFFER_ONE"

    listed = json.loads(casework(cli_env, "schedule", "list", "--json").stdout)
    (mine,) = [row for row in listed if row["schedule_id"] == schedule_id]
    assert mine["process"] == "customer-onboarding"
    assert mine["next_run"] is not None

    fakes = FakeOnboardingSystems(request=request)
    async with fake_worker(
        temporal.client,
        fakes,
        CustomerOnboardingWorkflow,
        task_queue=cli_env["CASEWORK_TASK_QUEUE"],
    ):
        trigger = subprocess.run(
            [
                str(BIN / "temporal"),
                "schedule",
                "trigger",
                "--schedule-id",
                schedule_id,
                "--address",
                cli_env["TEMPORAL_ADDRESS"],
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert trigger.returncode == 0, trigger.stderr

        async def started() -> str | None:
            async for run in temporal.client.list_workflows(
                f"TemporalScheduledById = '{schedule_id}'"
            ):
                return run.id
            return None

        case_id = await eventually(started, what="the triggered case to start", timeout=60)
        result = await temporal.client.get_workflow_handle(
            case_id, result_type=CustomerOnboardingResult
        ).result()
    assert case_id.startswith(f"{CustomerOnboardingWorkflow.case_id_for(request)}-")
    assert result.outcome is Outcome.ONBOARDED
    assert result.application_id == request.application_id
    description = await temporal.client.get_workflow_handle(case_id).describe()
    assert description.status is WorkflowExecutionStatus.COMPLETED

    deleted = casework(cli_env, "schedule", "delete", schedule_id)
    assert deleted.returncode == 0, deleted.stderr
    listed = json.loads(casework(cli_env, "schedule", "list", "--json").stdout)
    assert schedule_id not in [row["schedule_id"] for row in listed]
    again = casework(cli_env, "schedule", "delete", schedule_id)
    assert again.returncode != 0
    assert f"no schedule {schedule_id}" in again.stderr


def test_an_invalid_input_creates_no_schedule(cli_env: dict) -> None:
    payload = json.loads(application("APP-SCH-BAD").model_dump_json())
    del payload["email"]
    created = casework(
        cli_env,
        "schedule",
        "create",
        "customer-onboarding",
        "--id",
        "never-created",
        "--every",
        "30d",
        "--input",
        json.dumps(payload),
    )
    assert created.returncode != 0
    assert "email" in created.stderr
    listed = json.loads(casework(cli_env, "schedule", "list", "--json").stdout)
    assert "never-created" not in [row["schedule_id"] for row in listed]


def test_an_interval_must_be_one(cli_env: dict) -> None:
    created = casework(
        cli_env,
        "schedule",
        "create",
        "customer-onboarding",
        "--id",
        "x",
        "--every",
        "monthly",
        "--input",
        "{}",
    )
    assert created.returncode == 2
    assert "'monthly' is not an interval" in created.stderr
