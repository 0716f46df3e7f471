"""The real parts, each as its own process, so they can be killed and restarted.

- the Temporal dev server (``temporal server start-dev``) on a SQLite file it persists to, so it
  can be stopped and started again on the same cases;
- the systems-of-record sandbox (``python -m casework.sandbox``);
- the worker (``python -m workers``, ``bench.waiting.WorkerProcess``), pointed at the
  scripted model server and at a policy folder that names a fallback model;
- the scripted OpenAI-compatible model server (``casework.testing.scripted_llm``), in this
  process, so the suite decides what every model call gets.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode

from bench.infra import progress
from bench.waiting import WorkerProcess
from casework.case.tasks import TaskDecision
from casework.converter import data_converter
from casework.governance.loader import catalogue_policy_dir
from casework.search_attributes import dev_server_flags
from casework.signing_keys import keys_environment
from casework.testing.scripted_llm import SCRIPTED_API_KEY, SCRIPTED_MODEL, scripted_llm_server
from casework.testing.signing import signed
from casework.testing.stack import free_port
from casework.testing.temporal import BIN
from reliability.model import FALLBACK_MODEL, FaultyModel

T = TypeVar("T")
NAMESPACE = "default"
READY_TIMEOUT = 60.0
# The worker gives a model call this long; the suite's "timeout" answers take longer.
LLM_TIMEOUT_SECONDS = 3.0
# Errors a call to Temporal can meet while the dev server is down or just restarting.
TRANSIENT = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN)


def quiet_runtime() -> Runtime:
    """A runtime whose core does not log each retried call while the server is restarting:
    the harness expects those, and reports what matters itself."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


async def retrying(call: Callable[[], Awaitable[T]], *, what: str, timeout: float = 90.0) -> T:
    """Call Temporal, riding out the moments the dev server is being restarted."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except RPCError as error:
            if error.status not in TRANSIENT or time.monotonic() > deadline:
                raise
        except RuntimeError as error:
            # The client's connection itself failed (the server is not listening yet).
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {error}") from error
        await asyncio.sleep(0.5)


class DevServer:
    """``temporal server start-dev`` on a persisted SQLite file; stop and start it at will."""

    def __init__(self, db_file: Path, log: Path) -> None:
        self.db_file = db_file
        self.port = free_port()
        self._log_path = log
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "temporal"),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--db-filename",
                    str(self.db_file),
                    "--namespace",
                    NAMESPACE,
                    *dev_server_flags(),
                    "--log-level",
                    "error",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, client: Client | None = None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the dev server exited; see {self._log_path}")
            try:
                probe = client or await Client.connect(self.address, namespace=NAMESPACE)
                await probe.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=NAMESPACE)
                )
                return
            except (RuntimeError, RPCError):
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None


class SandboxProcess:
    """``python -m casework.sandbox`` on a free port, over a SQLite file of its own."""

    def __init__(self, db_file: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "casework.sandbox",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--db",
                    str(db_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0, trust_env=False) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the sandbox exited; see {self._log_path}")
                try:
                    if (await http.get("/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the sandbox did not answer; see {self._log_path}")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def write_policies(target: Path) -> Path:
    """The bundled policies, with the fallback model listed for every agent.

    The suite's "provider stays down" fault needs a fallback to take over; the rest of each
    policy is what ships, so cases take the routes they take in production.
    """
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(catalogue_policy_dir().glob("*.yaml")):
        content = yaml.safe_load(source.read_text())
        agents = content.get("agents") if isinstance(content, dict) else None
        if isinstance(agents, dict):
            for settings in agents.values():
                if isinstance(settings, dict):
                    settings["fallback_models"] = [FALLBACK_MODEL]
            (target / source.name).write_text(yaml.safe_dump(content, sort_keys=False))
        else:
            shutil.copy(source, target / source.name)
    return target


@dataclass
class Stack:
    work: Path
    server: DevServer
    sandbox: SandboxProcess
    http: httpx.AsyncClient
    """The sandbox's HTTP API, for seeding, faults and reading the ledger."""
    client: Client
    model: FaultyModel
    task_queue: str
    worker_env: dict[str, str]
    casework_env: dict[str, str]
    """This stack's decision keys (``casework.signing_keys.keys_environment``) and state dir,
    for its worker and for the commands the suite runs against it."""
    worker: WorkerProcess | None = None
    worker_generation: int = 0
    events: list[str] = field(default_factory=list)

    def sign(self, case_id: str, decision: TaskDecision) -> TaskDecision:
        """``decision`` signed by its approver for ``case_id``, as ``casework approve`` does."""
        return signed(case_id, decision, keys=Path(self.casework_env["CASEWORK_SIGNING_KEYS_DIR"]))

    @property
    def worker_pid(self) -> int | None:
        return self.worker.process.pid if self.worker else None

    async def start_worker(self) -> None:
        self.worker_generation += 1
        self.worker = WorkerProcess(
            self.server.address,
            self.sandbox.url,
            self.task_queue,
            self.work / f"worker-{self.worker_generation}.log",
            extra_env=self.worker_env,
        )
        await self.worker.ready()

    async def kill_worker(self, *, then_restart: bool = True) -> None:
        """SIGKILL the worker mid-case, then start a new one (which replays what it needs)."""
        assert self.worker is not None
        self.worker.kill()
        self.worker = None
        if then_restart:
            await self.start_worker()

    async def restart_server(self, down_seconds: float = 2.0) -> None:
        """Stop the dev server (SIGTERM) and start it again on the same SQLite file."""
        self.server.stop()
        await asyncio.sleep(down_seconds)
        self.server.start()
        await self.server.ready(self.client)
        self.server.restarts += 1

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.process.poll() is None:
            self.worker.stop()
        self.worker = None


def worker_environment(model: FaultyModel, policy_dir: Path) -> dict[str, str]:
    return {
        "CASEWORK_MODEL": SCRIPTED_MODEL,
        "CASEWORK_LLM_API_BASE": model.server.base_url,
        "CASEWORK_LLM_API_KEY": SCRIPTED_API_KEY,
        "CASEWORK_LLM_TIMEOUT": str(LLM_TIMEOUT_SECONDS),
        "CASEWORK_POLICY_DIR": str(policy_dir),
        # The harness reads the worker's log for its "polling" line: keep it unbuffered.
        "PYTHONUNBUFFERED": "1",
    }


@asynccontextmanager
async def running_stack(
    work: Path, model_replies: Any, *, offline_model: bool = False
) -> AsyncIterator[Stack]:
    """Dev server, sandbox, scripted model and worker, all up; everything stopped on exit.

    ``model_replies`` is the ``FaultyModel``'s source of good answers (the case drivers). With
    ``offline_model`` the worker uses casework's offline stand-in instead (no HTTP per call),
    for runs that measure scale rather than model faults.
    """
    async with AsyncExitStack() as exit_stack:
        server = DevServer(work / "temporal.db", work / "temporal.log")
        server.start()
        exit_stack.callback(server.stop)
        sandbox = SandboxProcess(work / "sandbox.db", work / "sandbox.log")
        exit_stack.callback(sandbox.stop)
        llm = exit_stack.enter_context(scripted_llm_server())
        model = FaultyModel(llm, model_replies, timeout_seconds=LLM_TIMEOUT_SECONDS)
        await asyncio.gather(server.ready(), sandbox.ready())
        progress(f"dev server on {server.address} ({server.db_file}), sandbox on {sandbox.url}")
        client = await Client.connect(
            server.address,
            namespace=NAMESPACE,
            data_converter=data_converter,
            runtime=quiet_runtime(),
        )
        http = await exit_stack.enter_async_context(
            httpx.AsyncClient(base_url=sandbox.url, timeout=30.0, trust_env=False)
        )
        # A home of its own: a casework up state dir where the suite runs (its codec key ring,
        # say) must not reach the suite's worker or CLI, whose harness reads plain payloads.
        casework_env = keys_environment(work / "keys") | {
            "CASEWORK_HOME": str(work / "home"),
            # This stack runs no codec server; one on the default port is a user's own stack's
            # (`make demo`), and would make every command refuse to send to this one.
            "CASEWORK_CODEC_URL": "http://127.0.0.1:1",
        }
        stack = Stack(
            work=work,
            server=server,
            sandbox=sandbox,
            http=http,
            client=client,
            model=model,
            task_queue=f"reliability-{uuid.uuid4().hex[:6]}",
            worker_env=worker_environment(model, write_policies(work / "policies")) | casework_env,
            casework_env=casework_env,
        )
        if offline_model:
            stack.worker_env = {
                key: value
                for key, value in stack.worker_env.items()
                if not key.startswith("CASEWORK_LLM") and key != "CASEWORK_MODEL"
            }
        exit_stack.callback(stack.stop_worker)
        await stack.start_worker()
        progress(f"worker polling {stack.task_queue!r} (pid {stack.worker_pid})")
        yield stack
