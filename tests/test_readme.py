"""The README's examples, run as written against the embedded stack.

The examples come out of README.md itself, so the README cannot drift from what works: every
fenced ``bash`` block runs as a script and every ``python`` block as a program (with top-level
``await``, as ``python -m asyncio`` allows), in the README's order, after the quick start's
``make demo``. The only change made to them is where the stack listens: this stack runs on free
ports (another may hold the defaults), so the default sandbox and codec-server addresses in the
examples are pointed at it; Temporal's address comes from TEMPORAL_ADDRESS, as for any user.
Inline code (``casework answer CASE ...``) names commands with placeholders and is not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.cli.main import build_parser
from casework.config import DEFAULT_CODEC_PORT, DEFAULT_SANDBOX_PORT
from casework.testing.stack import Stack, stack_on_free_ports
from casework.testing.temporal import BIN

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
QUICK_START = ["make demo", "make test", "make down"]
"""The quick start's commands: ``make demo`` brings this module's stack up, ``make down`` takes
it down; ``make test`` is the whole test suite, this module included, so it is not run here."""

_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)

# Runs a README python block: top-level await, as in `python -m asyncio`. os._exit after it:
# the SDK's default runtime, torn down at interpreter exit, can abort the process
# (temporalio/sdk-python#300) after the example itself has succeeded.
_PYTHON_RUNNER = """
import ast, asyncio, os, sys
code = compile(sys.stdin.read(), "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
async def main():
    result = eval(code, {"__name__": "__main__"})
    if asyncio.iscoroutine(result):
        await result
asyncio.run(main())
sys.stdout.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class Example:
    lang: str
    code: str
    line: int
    """Where it starts in README.md, for failure messages."""


def readme_examples() -> list[Example]:
    text = README.read_text()
    examples = []
    for match in _FENCE.finditer(text):
        indent = len(match["indent"])
        code = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        examples.append(Example(match["lang"], code, text[: match.start()].count("\n") + 1))
    return examples


def commands_of(script: str) -> list[str]:
    """A bash block's commands, one per line, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    lines = [line.split("  #")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def for_this_stack(code: str, stack: Stack) -> str:
    sandbox = stack.sandbox_url.removeprefix("http://")
    codec = stack.codec_url.removeprefix("http://")
    for default, here in [
        (f"localhost:{DEFAULT_SANDBOX_PORT}", sandbox),
        (f"127.0.0.1:{DEFAULT_SANDBOX_PORT}", sandbox),
        (f"127.0.0.1:{DEFAULT_CODEC_PORT}", codec),
    ]:
        code = code.replace(default, here)
    return code


def run_example(example: Example, stack: Stack) -> subprocess.CompletedProcess[str]:
    code = for_this_stack(example.code, stack)
    if example.lang == "bash":
        command, stdin = ["bash", "-euo", "pipefail", "-c", code], None
    else:
        command, stdin = [sys.executable, "-c", _PYTHON_RUNNER], code
    result = subprocess.run(
        command,
        input=stdin,
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"README.md line {example.line} ({example.lang}) failed:\n{code}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def until(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return value


def shown(stack: Stack, case_id: str) -> dict[str, Any]:
    return json.loads(stack.run("show", case_id, "--json").stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    (quick_start,) = [e for e in readme_examples() if "make demo" in e.code]
    assert commands_of(quick_start.code) == QUICK_START
    stack = stack_on_free_ports(
        tmp_path_factory.mktemp("readme") / "casework",
        # The README's commands name the default task queue; this stack has a server of its own.
        task_queue="casework",
        env={"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )

    def make(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", target], cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=600
        )

    try:
        demo = make("demo")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        stack.demo_stdout = demo.stdout
        yield stack
    finally:
        down = make("down")
        assert down.returncode == 0, down.stdout + down.stderr


def test_every_readme_example_runs_as_written(stack: Stack) -> None:
    examples = [e for e in readme_examples() if e.lang in ("bash", "python")]
    # Every block that is not a command is data or a picture; a new language would need a runner.
    assert {e.lang for e in readme_examples()} <= {"bash", "python", "json", ""}
    # The quick start's block is the fixture's `make demo` and `make down`.
    to_run = [e for e in examples if not (e.lang == "bash" and commands_of(e.code) == QUICK_START)]
    assert len(to_run) == len(examples) - 1 >= 5
    outputs = [run_example(example, stack).stdout for example in to_run]

    # What they did. The quick start's commands decided the cases the demo left waiting.
    assert until(lambda: shown(stack, "invoice-exception-INV-1005")["status"] == "paid", "INV-1005")
    triage = shown(stack, "ticket-triage-INC-1004")
    assert triage["state"]["open_tasks"] == [] and triage["status"] != "awaiting_approval"
    # The plain Temporal CLI decided INV-7001 by signal and INV-7002 by update; the Python
    # example started and decided INV-7003 (it waited for the result).
    for number in (7001, 7002, 7003):
        case_id = f"invoice-exception-INV-{number}"
        assert until(lambda c=case_id: shown(stack, c)["status"] == "paid", f"{case_id} paid")
        trail = stack.audit(case_id)
        decisions = [e for e in trail if e["kind"] == "human_decision"]
        assert [d["data"]["decision"]["approver"] for d in decisions] == ["carol"], case_id
        # Nothing was refused along the way: no decision came before the task was open.
        assert not [e for e in trail if e["kind"] == "decision_refused"], case_id
        assert [e["kind"] for e in trail].count("case_started") == 1
    # The signed-decisions section's signal approved the lead the demo left for sales ops.
    assert until(
        lambda: shown(stack, "lead-routing-LEAD-1004")["status"] == "routed", "LEAD-1004 routed"
    )
    # The sandbox section's curl armed a fault on the payments API, as the sandbox answered.
    (armed,) = [out for e, out in zip(to_run, outputs, strict=True) if "/_faults" in e.code]
    fault = json.loads(armed)
    assert (fault["method"], fault["path"], fault["count"]) == ("POST", "/payments", 2)


def _readme_commands(startswith: str) -> list[str]:
    """The README's commands (continuation lines joined) that start with ``startswith``."""
    return [
        command
        for example in readme_examples()
        if example.lang == "bash"
        for command in commands_of(example.code)
        if command.startswith(startswith)
    ]


def _bash(stack: Stack, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", for_this_stack(command, stack)],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _runs(stack: Stack, case_id: str) -> list[dict[str, Any]]:
    return shown(stack, case_id)["runs"]


def test_the_documented_start_never_starts_a_completed_case_again(stack: Stack) -> None:
    """Defect 7: the README's own `temporal workflow start` on a business key that completed."""
    starts = _readme_commands("temporal workflow start")
    assert len(starts) >= 2
    for documented in starts:
        assert "--id-reuse-policy AllowDuplicateFailedOnly --fail-existing" in documented
    (start,) = [command for command in starts if "invoice-exception-INV-7001" in command]
    until(lambda: shown(stack, "invoice-exception-INV-7001")["status"] == "paid", "INV-7001")
    again = _bash(stack, start)
    assert again.returncode != 0, again.stdout
    assert "already" in (again.stdout + again.stderr).lower()
    assert len(_runs(stack, "invoice-exception-INV-7001")) == 1
    # And `casework start` on it says how the case ended instead of starting it again.
    cli = stack.run(
        "start",
        "invoice-exception",
        "--input",
        json.dumps({"invoice_id": "INV-7001", "submitted_by": "alice"}),
        check=False,
    )
    assert cli.returncode == 1
    assert "invoice-exception-INV-7001 already exists and ended paid" in cli.stderr
    assert len(_runs(stack, "invoice-exception-INV-7001")) == 1


def _waiting_invoice(stack: Stack, number: int) -> str:
    """An invoice case waiting for a finance_manager (the README's own recipe, one number)."""
    with httpx.Client(base_url=stack.sandbox_url, timeout=10, trust_env=False) as sandbox:
        line = {"sku": "BRK-220", "description": "Brake assembly", "quantity": 400}
        for path, body in [
            (
                "/erp/purchase-orders",
                {
                    "po_number": f"PO-{number}",
                    "supplier_id": "SUP-ACME",
                    "lines": [line | {"unit_price": "30.00"}],
                },
            ),
            (
                "/erp/goods-receipts",
                {
                    "receipt_id": f"GR-{number}",
                    "po_number": f"PO-{number}",
                    "lines": [{"sku": "BRK-220", "quantity_received": 400}],
                },
            ),
            (
                "/erp/invoices",
                {
                    "invoice_id": f"INV-{number}",
                    "supplier_id": "SUP-ACME",
                    "po_number": f"PO-{number}",
                    "lines": [line | {"unit_price": "31.50"}],
                },
            ),
        ]:
            assert sandbox.post(path, json=body).status_code == 201
    request = json.dumps({"invoice_id": f"INV-{number}", "submitted_by": "alice"})
    started = stack.run("start", "invoice-exception", "--input", request, "--wait")
    assert "waiting for finance_manager" in started.stdout
    return f"invoice-exception-INV-{number}"


def test_the_documented_list_query_leaves_out_a_terminated_case(stack: Stack) -> None:
    """Defect 6: the README's `temporal workflow list` lists only running cases."""
    waiting, terminated = _waiting_invoice(stack, 7101), _waiting_invoice(stack, 7102)
    ended = subprocess.run(
        [str(BIN / "temporal"), "workflow", "terminate", "--workflow-id", terminated],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 0, ended.stderr
    (documented,) = _readme_commands("temporal workflow list")
    listing = _bash(stack, documented)
    assert listing.returncode == 0, listing.stderr
    assert waiting in listing.stdout and terminated not in listing.stdout


def test_the_documented_update_reads_as_the_reason_when_refused(stack: Stack) -> None:
    """Defect 8: the README's update command decodes the result, and a refusal reads as why."""
    case_id = _waiting_invoice(stack, 7103)
    (update,) = _readme_commands("temporal workflow update execute")
    assert "--codec-endpoint" in update
    # bob (ap_supervisor, limit 5,000) may not decide a 12,600.00 EUR invoice.
    as_bob = update.replace("invoice-exception-INV-7002", case_id).replace("carol", "bob")
    refused = _bash(stack, as_bob)
    assert refused.returncode != 0
    assert "bob (ap_supervisor) may not decide this task" in refused.stderr, refused.stderr
    assert "Encoded failure" not in refused.stderr
    approved = _bash(stack, update.replace("invoice-exception-INV-7002", case_id))
    assert approved.returncode == 0, approved.stderr
    assert f"approve of 12,600.00 EUR by carol recorded for {case_id}" in approved.stdout


def test_the_readme_cli_block_lists_every_command() -> None:
    (block,) = [e.code for e in readme_examples() if e.lang == "" and "casework up |" in e.code]
    listed = set(re.findall(r"^casework (\w+)", block, re.M)) | set(
        re.findall(r"^casework up \| (\w+) \| (\w+)", block, re.M)[0]
    )
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert listed == set(commands.choices)
    # A command without options of its own says in its --help what it does.
    bare = [name for name, c in commands.choices.items() if len(c._actions) == 1]
    assert {"up", "down", "status", "worker", "demo"} <= set(bare)
    for name in bare:
        assert len(commands.choices[name].description or "") > 40, name
