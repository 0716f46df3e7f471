"""Run the sandbox in a background thread, for tests and in-process tooling."""

from __future__ import annotations

import socket
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
