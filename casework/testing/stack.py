"""An embedded stack (``casework up``) for tests that run casework as an operator does.

Each stack gets its own CASEWORK_HOME, free ports for every component and its own task queue, so
it neither collides with another stack on the machine nor picks up a model configured in the
environment unless the test asks for one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casework.testing.temporal import BIN

CASEWORK = str(BIN / "casework")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    # Hold all sockets open at once so the kernel hands out distinct ports.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Stack:
    env: dict[str, str]
    home: Path
    review_url: str
    metrics_url: str
    sandbox_url: str
    ui_url: str
    codec_url: str = ""
    intake_url: str = ""
    demo_stdout: str = ""
    """What ``casework demo`` printed: its table lists the cases it ran."""

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CASEWORK, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        if check:
            assert result.returncode == 0, f"casework {args}: {result.stdout}\n{result.stderr}"
        return result

    def password(self, user: str) -> str:
        handout = (self.home / "ui" / "demo-credentials.txt").read_text()
        (line,) = [line for line in handout.splitlines() if line.startswith(f"{user} ")]
        return line.split()[1]

    def audit(self, case_id: str, cwd: Path | None = None) -> list[dict[str, Any]]:
        """The case's audit events, from its hash-chained export: one {"case_id", "event",
        "prev", "hash"} line per event, then an end record counting them. ``cwd``: where to run
        from, for a stack whose home is found from there rather than named in its environment."""
        trail = self.run("audit", case_id, "--jsonl", cwd=cwd).stdout
        *lines, end = [json.loads(line) for line in trail.splitlines()]
        assert end["end"] is True and end["count"] == len(lines), end
        assert all(line["case_id"] == case_id for line in lines)
        return [line["event"] for line in lines]


def stack_on_free_ports(
    home: Path,
    task_queue: str,
    env: Mapping[str, str] | None = None,
    *,
    home_from_env: bool = True,
) -> Stack:
    """A stack's settings: every component on a free port, its own task queue, and its home
    ``home``: CASEWORK_HOME names it, or with ``home_from_env`` False casework finds it by
    itself (the caller sets HOME and the working directory so that it does).

    The stack runs the offline stand-in model unless ``env`` configures one (CASEWORK_MODEL ...);
    the worker inherits this environment."""
    temporal, ui, sandbox, review, metrics, codec, intake = free_ports(7)
    stack_env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
        "CASEWORK_UI_URL": f"http://localhost:{ui}",
        "CASEWORK_SANDBOX_URL": f"http://127.0.0.1:{sandbox}",
        "CASEWORK_REVIEW_URL": f"http://127.0.0.1:{review}",
        "CASEWORK_METRICS_ADDRESS": f"127.0.0.1:{metrics}",
        # Its own codec server too: the default port may be taken by another stack.
        "CASEWORK_CODEC_URL": f"http://127.0.0.1:{codec}",
        "CASEWORK_INTAKE_URL": f"http://127.0.0.1:{intake}",
        "CASEWORK_TASK_QUEUE": task_queue,
    }
    stack_env.pop("CASEWORK_MODEL", None)
    stack_env.pop("CASEWORK_HOME", None)
    if home_from_env:
        stack_env["CASEWORK_HOME"] = str(home)
    stack_env.update(env or {})
    return Stack(
        env=stack_env,
        home=home,
        review_url=f"http://127.0.0.1:{review}",
        metrics_url=f"http://127.0.0.1:{metrics}/metrics",
        sandbox_url=f"http://127.0.0.1:{sandbox}",
        ui_url=f"http://localhost:{ui}",
        codec_url=f"http://127.0.0.1:{codec}",
        intake_url=f"http://127.0.0.1:{intake}",
    )


@contextmanager
def embedded_stack(
    home: Path, task_queue: str, env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """``casework up`` under ``home`` for the duration of the block, then ``casework down``."""
    stack = stack_on_free_ports(home, task_queue, env)
    try:
        up = stack.run("up")
        assert "review queue healthy" in up.stdout and "passwords created" in up.stdout
        yield stack
    finally:
        stack.run("down", check=False)


def demo_table(stdout: str) -> list[dict[str, str]]:
    """The rows of the table ``casework demo`` prints, by column name."""
    lines = stdout.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.split()[:2] == ["case", "scenario"]]
    spans = [match.span() for match in re.finditer(r"-+", lines[at + 1])]
    names = [lines[at][start:stop].strip() for start, stop in spans]
    assert names == ["case", "scenario", "outcome", "detail", "Web UI"], names
    rows = []
    for line in lines[at + 2 :]:
        if not line.strip():
            break
        rows.append({name: line[a:b].strip() for name, (a, b) in zip(names, spans, strict=True)})
    return rows
