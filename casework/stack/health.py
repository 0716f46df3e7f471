"""Whether each component answers: health probes, waiting for a started one, and ports.

A probe answers False, rather than raising, while a component comes up; waiting for one fails
with the tail of its log when it exits or does not become healthy in time.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from datetime import timedelta

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError

from casework.stack.config import LABELS, Component, StackConfig, StackError
from casework.stack.processes import POLL_SECONDS, Launch, log_tail
from casework.stack.state import RecordedProcess

_PROBE_TIMEOUT = timedelta(seconds=2)
_PROGRESS_EVERY_SECONDS = 5.0


class Probe:
    """Health checks. Each answers False, rather than raising, while a component comes up."""

    def __init__(self, config: StackConfig) -> None:
        self._config = config
        # A runtime of its own, not the process-wide default, so that it is released with the
        # probe (see ``casework.stack.operations._run``) instead of during interpreter shutdown.
        self._runtime = Runtime(telemetry=TelemetryConfig())
        self._client: Client | None = None

    async def healthy(self, name: Component, process: RecordedProcess) -> bool:
        check = {
            "codec": self._codec,
            "temporal": self._temporal,
            "sandbox": self._sandbox,
            "worker": self._worker,
            "intake": self._intake,
            "ui": self._ui,
        }
        try:
            return await check[name](process)
        except (OSError, RuntimeError, RPCError, httpx.HTTPError):
            # Refused connections, failed client connects, RPC errors, timeouts: not yet.
            return False

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await Client.connect(
                self._config.temporal_address,
                namespace=self._config.namespace,
                connect_timeout=_PROBE_TIMEOUT,
                runtime=self._runtime,
            )
        return self._client

    async def _temporal(self, process: RecordedProcess) -> bool:
        client = await self._connect()
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=self._config.namespace), timeout=_PROBE_TIMEOUT
        )
        # The Web UI is a separate listener; the stack is only up once a browser can use it.
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(self._config.host, self._config.ui_port),
            _PROBE_TIMEOUT.total_seconds(),
        )
        writer.close()
        await writer.wait_closed()
        return True

    async def _sandbox(self, process: RecordedProcess) -> bool:
        return await self._http_health(self._config.sandbox_url)

    async def _codec(self, process: RecordedProcess) -> bool:
        return await self._http_health(self._config.codec_url)

    async def _intake(self, process: RecordedProcess) -> bool:
        return await self._http_health(self._config.intake_url)

    async def _http_health(self, base_url: str) -> bool:
        # trust_env=False: a proxy configured in the environment must not see loopback calls.
        async with httpx.AsyncClient(
            timeout=_PROBE_TIMEOUT.total_seconds(), trust_env=False
        ) as http:
            response = await http.get(f"{base_url}/health")
        return response.status_code == 200

    async def _ui(self, process: RecordedProcess) -> bool:
        async with httpx.AsyncClient(
            timeout=_PROBE_TIMEOUT.total_seconds(), trust_env=False
        ) as http:
            response = await http.get(f"{self._config.review_url}/healthz")
        return response.status_code == 200

    async def _worker(self, process: RecordedProcess) -> bool:
        client = await self._connect()
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._config.namespace,
                task_queue=TaskQueue(name=self._config.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=_PROBE_TIMEOUT,
        )
        # Pollers stay listed for a while after their worker died; only count ones that
        # polled since this worker was started.
        return any(
            poller.last_access_time.ToNanoseconds() / 1e9 >= process.started_at
            for poller in response.pollers
        )


async def wait_healthy(
    probe: Probe,
    launch: Launch,
    deadline: float,
    timeout_seconds: float,
    progress: Callable[[str], None] = print,
) -> None:
    label = LABELS[launch.name]
    process = launch.process
    began = time.monotonic()
    next_note = began + _PROGRESS_EVERY_SECONDS
    while not await probe.healthy(launch.name, process):
        if time.monotonic() >= next_note:
            # A slow machine can take a while: say so rather than sit silent.
            progress(f"  still waiting for the {label} ({time.monotonic() - began:.0f}s) ...")
            next_note += _PROGRESS_EVERY_SECONDS
        if not launch.running():
            code = launch.popen.poll() if launch.popen else None
            status = f" with code {code}" if code is not None else ""
            raise StackError(
                f"{label} (pid {process.pid}) exited{status} during startup; "
                f"last lines of {process.log}:\n{log_tail(process.log, launch.log_offset)}"
            )
        if time.monotonic() >= deadline:
            raise StackError(
                f"{label} (pid {process.pid}) did not become healthy within "
                f"{timeout_seconds:g}s; see {process.log}"
            )
        await asyncio.sleep(POLL_SECONDS)


def check_ports_free(config: StackConfig, names: list[Component]) -> None:
    """Fail before starting anything if a port the given components need is taken."""
    ports: list[tuple[int, str, str]] = []
    if "temporal" in names:
        ports += [
            (config.temporal_port, "Temporal frontend", f"TEMPORAL_ADDRESS={config.host}:<port>"),
            (config.ui_port, "Temporal Web UI", "CASEWORK_UI_URL=http://localhost:<port>"),
        ]
    if "sandbox" in names:
        ports.append(
            (config.sandbox_port, "sandbox", f"CASEWORK_SANDBOX_URL=http://{config.host}:<port>")
        )
    if "worker" in names and config.worker_command is None:
        ports.append(
            (
                config.metrics_port,
                "worker metrics",
                f"CASEWORK_METRICS_ADDRESS={config.host}:<port>",
            )
        )
    if "ui" in names:
        ports.append(
            (config.review_port, "review queue", f"CASEWORK_REVIEW_URL=http://{config.host}:<port>")
        )
    problems = [
        f"port {port} ({purpose}) on {config.host} is already in use by another process; "
        f"stop it or set {setting} to use another port"
        for port, purpose, setting in ports
        if port_in_use(config.host, port)
    ]
    if problems:
        raise StackError("\n".join(problems))


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Connections lingering in TIME_WAIT from a just-stopped stack must not count as "in
        # use"; with SO_REUSEADDR, bind still fails while another socket listens on the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise StackError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    return False
