"""The embedded stack against real processes: Temporal dev server, sandbox and a worker.

Every test gets its own state dir and free ports, so none collides with a stack a developer
has running, and a finalizer stops whatever a test started even when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from casework import search_attributes
from casework.codec import load_key_ring
from casework.config import Settings
from casework.stack import COMPONENTS, StackConfig, StackError, stack_down, stack_status, stack_up
from casework.stack.state import load_state
from casework.testing.stack import free_ports

# Polls the task queue the stack tells it about, like the real worker, without depending on
# the real worker's workflows and activities.
STUB_WORKER = """
import asyncio, os
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

@workflow.defn
class Noop:
    @workflow.run
    async def run(self) -> None:
        pass

async def main() -> None:
    client = await Client.connect(
        os.environ["TEMPORAL_ADDRESS"], namespace=os.environ["TEMPORAL_NAMESPACE"]
    )
    worker = Worker(
        client,
        task_queue=os.environ["CASEWORK_TASK_QUEUE"],
        workflows=[Noop],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    await worker.run()

asyncio.run(main())
"""


class Progress:
    """Collects progress messages."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


def quiet(message: str) -> None:
    pass


def pid_running(pid: int) -> bool:
    """Whether a live process has this pid; a zombie waiting for its parent is not one."""
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return state.stdout.strip()[:1] not in ("", "Z")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[StackConfig]:
    ports = free_ports(7)
    temporal_port, ui_port, sandbox_port, codec_port, review_port, metrics_port, intake_port = ports
    stub_worker = tmp_path / "stub_worker.py"
    stub_worker.write_text(STUB_WORKER)
    config = StackConfig(
        state_dir=tmp_path / "state",
        temporal_port=temporal_port,
        ui_port=ui_port,
        sandbox_port=sandbox_port,
        codec_port=codec_port,
        review_port=review_port,
        metrics_port=metrics_port,
        intake_port=intake_port,
        task_queue="stack-test",
        worker_command=[sys.executable, str(stub_worker)],
    )
    yield config
    stack_down(config, progress=quiet)


def pids(config: StackConfig) -> dict[str, int | None]:
    return {name: status.pid for name, status in stack_status(config).items()}


async def test_up_starts_a_healthy_stack_with_the_search_attributes(config: StackConfig) -> None:
    progress = Progress()

    result = stack_up(config, progress)

    assert not result.already_running
    assert result.started == list(COMPONENTS)
    assert result.temporal_address == f"127.0.0.1:{config.temporal_port}"
    assert result.ui_url == f"http://localhost:{config.ui_port}"
    assert result.sandbox_url == f"http://127.0.0.1:{config.sandbox_port}"
    assert (
        f"starting Temporal dev server on 127.0.0.1:{config.temporal_port} "
        f"(Web UI http://localhost:{config.ui_port}) ..."
    ) in progress.messages
    assert "Temporal dev server healthy" in progress.text
    statuses = stack_status(config)
    assert set(statuses) == set(COMPONENTS)
    assert all(status.running and status.healthy for status in statuses.values()), statuses
    assert all((config.log_dir / f"{name}.log").exists() for name in COMPONENTS)
    # Payload encryption is on by default: a private key ring, and a codec server the Web UI
    # was pointed at.
    assert result.key_ring.stat().st_mode & 0o777 == 0o600
    # The intake service signs with a secret of this home's own, private to its owner.
    assert result.intake_secret.stat().st_mode & 0o777 == 0o600
    intake_env = load_state(config).processes["intake"]
    assert intake_env.command[-4:] == ["--host", "127.0.0.1", "--port", str(config.intake_port)]
    assert load_key_ring(config.state_dir, {}) is not None
    temporal_command = load_state(config).processes["temporal"].command
    assert temporal_command[temporal_command.index("--ui-codec-endpoint") + 1] == result.codec_url
    async with httpx.AsyncClient(trust_env=False) as http:
        assert (await http.get(f"{result.codec_url}/health")).status_code == 200

    client = await Client.connect(result.temporal_address, namespace=result.namespace)
    registered = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=result.namespace)
    )
    for key in search_attributes.ALL:
        assert registered.custom_attributes[key.name] == key.indexed_value_type.value, key.name


def test_second_up_is_a_no_op(config: StackConfig) -> None:
    stack_up(config, quiet)
    before = pids(config)
    progress = Progress()

    result = stack_up(config, progress)

    assert result.already_running
    assert result.started == []
    summary = progress.messages[-1]
    assert summary.startswith(
        f"casework is already running (Temporal 127.0.0.1:{config.temporal_port}"
    )
    assert not any(message.startswith("starting") for message in progress.messages)
    assert pids(config) == before


def test_up_starts_only_what_died(config: StackConfig) -> None:
    stack_up(config, quiet)
    before = pids(config)
    worker_pid = before["worker"]
    assert worker_pid is not None
    os.killpg(worker_pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously; on a busy machine the process can still be there
    # for a moment, and `up` would rightly leave a live worker alone.
    deadline = time.monotonic() + 10
    while stack_status(config)["worker"].running:
        assert time.monotonic() < deadline, "the killed worker did not exit"
        time.sleep(0.05)

    result = stack_up(config, quiet)

    assert result.started == ["worker"]
    after = pids(config)
    assert after["temporal"] == before["temporal"]
    assert after["sandbox"] == before["sandbox"]
    assert after["worker"] != worker_pid
    assert all(status.healthy for status in stack_status(config).values())


def test_down_stops_everything_and_a_second_down_says_so(config: StackConfig) -> None:
    stack_up(config, quiet)
    started = pids(config)
    progress = Progress()

    stopped = stack_down(config, progress)

    assert stopped == ["ui", "intake", "worker", "sandbox", "temporal", "codec"]
    assert "stopped Temporal dev server" in progress.messages
    for name, pid in started.items():
        assert pid is not None and not pid_running(pid), name
    assert not config.state_file.exists()
    assert not any(status.running for status in stack_status(config).values())

    again = Progress()
    assert stack_down(config, again) == []
    assert again.messages == ["casework is not running"]


def test_the_stack_outlives_the_up_process_and_another_process_stops_it(
    config: StackConfig,
) -> None:
    # The CLI's `up` exits right after starting the stack and `down` runs as another process.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from casework.stack import StackConfig, stack_up; "
            "stack_up(StackConfig.model_validate_json(sys.argv[1]))",
            config.model_dump_json(),
        ],
        check=True,
    )
    started = pids(config)
    assert all(status.healthy for status in stack_status(config).values())

    assert stack_down(config, quiet) == ["ui", "intake", "worker", "sandbox", "temporal", "codec"]

    for name, pid in started.items():
        assert pid is not None and not pid_running(pid), name


async def test_cases_survive_down_and_up(config: StackConfig) -> None:
    temporal_only = config.model_copy(update={"components": ("temporal",)})
    result = stack_up(temporal_only, quiet)
    client = await Client.connect(result.temporal_address)
    # No worker runs, so the workflow simply stays open across the restart.
    await client.start_workflow("Anything", id="survivor", task_queue=config.task_queue)
    stack_down(temporal_only, quiet)

    stack_up(temporal_only, quiet)

    client = await Client.connect(result.temporal_address)
    description = await client.get_workflow_handle("survivor").describe()
    assert description.raw_description.workflow_execution_info.status == (
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    )


def test_a_taken_port_fails_before_anything_starts(config: StackConfig) -> None:
    with (
        socket.create_server(("127.0.0.1", config.sandbox_port)),
        pytest.raises(StackError) as raised,
    ):
        stack_up(config, quiet)

    message = str(raised.value)
    assert message.startswith(
        f"port {config.sandbox_port} (sandbox) on 127.0.0.1 is already in use by another process"
    )
    assert "CASEWORK_SANDBOX_URL" in message
    assert not config.state_file.exists()
    assert not config.log_dir.exists()


def test_a_process_dying_at_startup_reports_its_log_and_rolls_back(config: StackConfig) -> None:
    crashing = config.model_copy(
        update={
            "components": ("temporal", "worker"),
            "worker_command": [
                sys.executable,
                "-c",
                "import sys; print('no workflows to run'); sys.exit(3)",
            ],
        }
    )

    with pytest.raises(StackError) as raised:
        stack_up(crashing, quiet)

    message = str(raised.value)
    assert "worker" in message
    assert "exited with code 3 during startup" in message
    assert "no workflows to run" in message
    # The Temporal server this attempt started was stopped again.
    assert not config.state_file.exists()


def test_up_with_other_ports_than_the_running_stack_fails(config: StackConfig) -> None:
    temporal_only = config.model_copy(update={"components": ("temporal",)})
    stack_up(temporal_only, quiet)
    (other_port,) = free_ports(1)

    with pytest.raises(StackError, match="already running with other settings"):
        stack_up(temporal_only.model_copy(update={"temporal_port": other_port}), quiet)


def test_down_never_signals_a_recycled_pid(config: StackConfig) -> None:
    # A live process that happens to have the recorded pid but runs something else.
    bystander = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, "-c", "input()"])
    try:
        config.state_dir.mkdir(parents=True)
        config.state_file.write_text(
            json.dumps(
                {
                    "config": config.model_dump(mode="json"),
                    "processes": {
                        "temporal": {
                            "pid": bystander,
                            "command": ["temporal", "server", "start-dev"],
                            "log": str(config.log_dir / "temporal.log"),
                            "started_at": 0,
                        }
                    },
                }
            )
        )
        progress = Progress()

        assert stack_down(config, progress) == []

        assert progress.messages == ["casework is not running"]
        assert pid_running(bystander)
    finally:
        os.kill(bystander, signal.SIGKILL)
        os.waitpid(bystander, 0)


def test_config_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7300")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "cases")
    settings = Settings(
        task_queue="queue",
        sandbox_url="http://127.0.0.1:9001",
        ui_url="http://localhost:9002",
        state_dir=tmp_path / "home",
    )

    config = StackConfig.from_settings(settings)

    assert config == StackConfig(
        state_dir=tmp_path / "home",
        temporal_port=7300,
        ui_port=9002,
        sandbox_port=9001,
        namespace="cases",
        task_queue="queue",
    )


def test_the_real_worker_comes_up_healthy(config: StackConfig) -> None:
    pytest.importorskip("casework.worker", reason="the worker is not importable yet")
    real = config.model_copy(update={"worker_command": None})

    result = stack_up(real, quiet)

    assert result.started == list(COMPONENTS)
    assert all(status.healthy for status in stack_status(real).values())
