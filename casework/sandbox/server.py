"""Run the sandbox for tests and tooling: in a background thread, or as a process of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from casework.sandbox.app import create_app

STARTUP_TIMEOUT_SECONDS = 10.0


@contextmanager
def running_sandbox(db_path: str | Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the sandbox over `db_path` while the block runs, yielding its base URL.

    `port=0` picks a free port. The URL is yielded only once `/health` answers, and the
    server is stopped (and its database closed) when the block exits.
    """
    # Binding here rather than in uvicorn tells us the port before the server starts, and the
    # listening socket queues our health probe until the server is ready to answer it.
    ipv6 = ":" in host
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ipv6 else socket.AF_INET)
    # asyncio only disables Nagle on sockets it recognises as TCP by their protocol number, which
    # create_server leaves at 0; without this every keep-alive request waits ~40 ms for an ACK.
    # Accepted connections inherit the option from the listening socket.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(db_path), log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="casework-sandbox", daemon=True
    )
    url_host = f"[{host}]" if ipv6 else host
    base_url = f"http://{url_host}:{sock.getsockname()[1]}"
    thread.start()
    try:
        _wait_until_healthy(base_url, thread)
        yield base_url
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    # trust_env=False: a proxy configured in the environment must not intercept loopback calls.
    with httpx.Client(base_url=base_url, timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                raise RuntimeError(f"the sandbox at {base_url} stopped while starting up")
            try:
                response = client.get("/health")
            except httpx.TransportError:
                continue  # not serving yet: the probe waited in the listen queue and timed out
            if response.status_code != 200:
                raise RuntimeError(f"the sandbox at {base_url} is unhealthy: {response.text}")
            return
    raise TimeoutError(f"the sandbox at {base_url} did not become healthy in time")


@contextmanager
def sandbox_process(db_path: Path, log: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """``python -m casework.sandbox`` over ``db_path`` on a free port while the block runs,
    yielding its base URL once ``/health`` answers; its output goes to ``log``.

    For measurements: systems of record never share a worker's process, and a sandbox in a
    thread of the measuring process would take its CPU from the worker under measurement."""
    with socket.create_server((host, 0)) as probe:
        port = probe.getsockname()[1]
    base_url = f"http://{host}:{port}"
    command = [sys.executable, "-m", "casework.sandbox", "--host", host, "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--db", str(db_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        with httpx.Client(base_url=base_url, timeout=1.0, trust_env=False) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the sandbox exited while starting; see {log}")
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the sandbox at {base_url} did not answer; see {log}")
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
