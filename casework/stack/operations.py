"""``casework up``, ``down`` and ``status``: the stack's operations, built on its parts.

Both ``up`` and ``down`` are idempotent and hold the state dir's lock. Everything here reports
through a ``progress`` callback and raises :class:`StackError` with a message meant for the
user, so the CLI stays a thin layer over it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from casework.codec import ensure_key_ring
from casework.intake_signing import ensure_secret
from casework.signing_keys import KEYS_SUBDIR, ensure_demo_keys, public_keys_path
from casework.stack.config import (
    COMPONENTS,
    LABELS,
    StackConfig,
    StackError,
    addresses,
    listen_port,
    summary,
)
from casework.stack.health import Probe, check_ports_free, port_in_use, wait_healthy
from casework.stack.processes import Launch, runs_recorded_command, start, stop
from casework.stack.state import StackState, load_state, locked, save_state

T = TypeVar("T")


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
    intake_url: str
    intake_secret: Path
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


def stack_up(
    config: StackConfig,
    progress: Callable[[str], None] = print,
    timeout_seconds: float = 60,
) -> UpResult:
    """Start whichever configured components are not running and wait until all are healthy.

    If startup fails, the processes this call started are stopped again; ones that were
    already running are left alone.
    """
    with locked(config):
        return _run(_up(config, progress, timeout_seconds))


def stack_down(config: StackConfig, progress: Callable[[str], None] = print) -> list[str]:
    """Stop the processes recorded in stack.json (worker first); return the names stopped."""
    stopped: list[str] = []
    if config.state_file.exists():
        with locked(config):
            state = load_state(config)
            for name in reversed(COMPONENTS):
                process = state.processes.get(name) if state else None
                if process is not None and stop(Launch(name, process), progress):
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
    previous = load_state(config)
    alive = {
        name: process
        for name, process in (previous.processes if previous else {}).items()
        if runs_recorded_command(process)
    }
    if previous and alive and addresses(previous.config) != addresses(config):
        raise StackError(
            "casework is already running with other settings "
            f"({summary(previous.config, list(alive))}); run `casework down` first"
        )
    check_ports_free(config, [name for name in config.components if name not in alive])

    state = StackState(config=config, processes=alive)
    save_state(state)
    if not config.key_ring.exists():
        progress(f"generating the payload encryption key ring {config.key_ring} (keep it safe)")
        ensure_key_ring(config.state_dir)
    if not public_keys_path(config.state_dir).exists():
        progress(
            "generating the directory users' decision signing keys under "
            f"{config.state_dir / KEYS_SUBDIR}"
        )
    ensure_demo_keys(config.state_dir)
    if not config.intake_secret.exists():
        progress(f"generating the intake service's webhook secret {config.intake_secret}")
        ensure_secret(config.intake_secret)
    probe = Probe(config)
    started: list[Launch] = []
    try:
        for name in config.components:
            if name in alive:
                launch = Launch(name, alive[name])
                progress(f"{LABELS[name]} already running (pid {launch.process.pid})")
            else:
                launch = start(config, name, progress)
                started.append(launch)
                # Record before waiting, so `down` finds it even if this process dies now.
                state.processes[name] = launch.process
                save_state(state)
            began = time.monotonic()
            await wait_healthy(probe, launch, deadline, timeout_seconds, progress)
            if launch.popen is not None:
                progress(f"{LABELS[name]} healthy ({time.monotonic() - began:.1f}s)")
    except BaseException:
        for launch in reversed(started):
            stop(launch, progress)
            del state.processes[launch.name]
        save_state(state)
        raise

    if not started:
        progress(f"casework is already running ({summary(config, list(config.components))})")
    return UpResult(
        temporal_address=config.temporal_address,
        namespace=config.namespace,
        ui_url=config.ui_url,
        sandbox_url=config.sandbox_url,
        codec_url=config.codec_url,
        key_ring=config.key_ring,
        review_url=config.review_url,
        metrics_url=config.metrics_url,
        intake_url=config.intake_url,
        intake_secret=config.intake_secret,
        log_dir=config.log_dir,
        already_running=not started,
        started=[launch.name for launch in started],
    )


async def _status(config: StackConfig) -> dict[str, ComponentStatus]:
    state = load_state(config)
    recorded = state.processes if state else {}
    # Probe where the running stack actually listens, which is what stack.json says.
    probe = Probe(state.config if state else config)
    statuses: dict[str, ComponentStatus] = {}
    for name in COMPONENTS:
        process = recorded.get(name)
        if process is not None and runs_recorded_command(process):
            healthy = await probe.healthy(name, process)
            statuses[name] = ComponentStatus(running=True, pid=process.pid, healthy=healthy)
        elif name in config.components or name in recorded:
            port = listen_port(config, name)
            taken = port is not None and port_in_use(config.host, port)
            statuses[name] = ComponentStatus(running=False, port_taken=taken)
    return statuses


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
