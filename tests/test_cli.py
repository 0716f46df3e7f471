"""The ``casework`` command as a user runs it: a real embedded stack, commands as subprocesses.

The stack runs on free ports under a temporary CASEWORK_HOME, so it never touches a stack the
developer has running.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from casework.testing.temporal import BIN

CASEWORK = str(BIN / "casework")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def casework(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CASEWORK, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("casework-home")
    env = {
        **os.environ,
        "CASEWORK_HOME": str(home),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
        "CASEWORK_UI_URL": f"http://localhost:{_free_port()}",
        "CASEWORK_SANDBOX_URL": f"http://127.0.0.1:{_free_port()}",
        "CASEWORK_CODEC_URL": f"http://127.0.0.1:{_free_port()}",
        "CASEWORK_REVIEW_URL": f"http://127.0.0.1:{_free_port()}",
        "CASEWORK_INTAKE_URL": f"http://127.0.0.1:{_free_port()}",
        "CASEWORK_METRICS_ADDRESS": f"127.0.0.1:{_free_port()}",
        "CASEWORK_TASK_QUEUE": "casework-cli-test",
    }
    env.pop("CASEWORK_MODEL", None)
    up = casework(env, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        down = casework(env, "down")
        assert down.returncode == 0, down.stdout + down.stderr


def test_help_lists_commands_and_examples() -> None:
    result = subprocess.run([CASEWORK, "--help"], capture_output=True, text=True, check=True)
    commands = ("up", "down", "start", "show", "approve", "reject", "signal", "inbox", "audit")
    for command in (*commands, "demo"):
        assert f"    {command} " in result.stdout
    assert "casework start invoice-exception --input" in result.stdout
    assert "casework signal loan-application-APP-1001 credit_report --input" in result.stdout


def test_invalid_input_is_refused_before_anything_starts_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "case.json"
    bad.write_text(json.dumps({"invoiceId": "INV-1", "submitted_by": "alice"}))
    result = subprocess.run(
        [CASEWORK, "start", "invoice-exception", "--input", f"@{bad}"],
        capture_output=True,
        text=True,
        # No Temporal at this address: validation must not need one.
        env={**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        check=False,
    )
    assert result.returncode == 1
    assert "invoice_id: Field required" in result.stderr
    assert "invoiceId: Extra inputs are not permitted" in result.stderr


def test_input_that_is_not_json_is_refused() -> None:
    result = subprocess.run(
        [CASEWORK, "start", "invoice-exception", "--input", "{invoice_id: INV-1}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "--input is not valid JSON" in result.stderr


def test_second_up_is_a_no_op_that_says_so(stack_env: dict[str, str]) -> None:
    result = casework(stack_env, "up")
    assert result.returncode == 0
    assert "already running" in result.stdout


def test_demo_runs_every_outcome_and_leaves_one_case_waiting(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    demo = casework(stack_env, "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    # Table rows are the lines that start with a case ID and carry its Web UI link.
    rows = [
        line
        for line in demo.stdout.splitlines()
        if line.split(" ", 1)[0].startswith(
            (
                "invoice-exception-",
                "ticket-triage-",
                "loan-application-",
                "lead-routing-",
                "insurance-claim-",
            )
        )
        and "/workflows/" in line
    ]

    def statuses(prefix: str) -> list[str]:
        return sorted(
            json.loads(casework(stack_env, "show", row.split()[0], "--json").stdout)["state"][
                "status"
            ]
            for row in rows
            if row.startswith(prefix)
        )

    assert statuses("invoice-exception-") == [
        "awaiting_approval",
        "failed_compensated",
        "paid",
        "paid",
        "rejected",
    ]
    assert statuses("ticket-triage-") == ["assigned", "awaiting_approval", "escalated", "resolved"]
    assert statuses("loan-application-") == [
        "awaiting_approval",
        "disbursed",
        "failed_compensated",
        "rejected",
    ]
    assert statuses("lead-routing-") == ["awaiting_approval", "routed", "routed", "routed"]
    assert "offline stand-in" in demo.stdout
    (waiting,) = [row.split()[0] for row in rows if "awaiting finance_manager" in row]
    (review,) = [row.split()[0] for row in rows if "awaiting service_desk_lead" in row]
    assert f"casework approve {waiting} --as carol" in demo.stdout  # bare or .venv/bin/...
    assert f"casework approve {review} --as frank" in demo.stdout
    (lead_review,) = [row.split()[0] for row in rows if "awaiting sales_ops" in row]
    assert f"casework approve {lead_review} --as paul" in demo.stdout

    inbox = casework(stack_env, "inbox", "--json")
    assert inbox.returncode == 0, inbox.stderr
    (underwriting,) = [row.split()[0] for row in rows if "awaiting underwriter" in row]
    (investigation,) = [row.split()[0] for row in rows if "awaiting fraud_investigator" in row]
    # The severity-1 incident the triage demo escalates starts its post-incident review, a case
    # of its own that waits for the incident manager.
    (paged,) = [
        row.split()[0] for row in rows if row.startswith("ticket-triage-") and "escalated" in row
    ]
    incident_review = paged.replace("ticket-triage-", "incident-review-")
    assert sorted(task["case_id"] for task in json.loads(inbox.stdout)) == sorted(
        [waiting, review, underwriting, lead_review, investigation, incident_review]
    )

    refused = casework(stack_env, "approve", waiting, "--as", "bob")
    assert refused.returncode == 1
    assert "bob (ap_supervisor) may not decide this task" in refused.stderr

    approved = casework(stack_env, "approve", waiting, "--as", "carol", "--comment", "agreed")
    assert approved.returncode == 0, approved.stderr

    shown = casework(stack_env, "show", waiting, "--json")
    state = json.loads(shown.stdout)
    assert state["execution_status"] in {"RUNNING", "COMPLETED"}

    trail = casework(stack_env, "audit", waiting, "--jsonl")
    *lines, end = [json.loads(line) for line in trail.stdout.splitlines()]
    events = [line["event"] for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {"case_started", "agent_proposal", "policy_decision", "human_decision"} <= {
        e["kind"] for e in events
    }
    assert end["count"] == len(events)

    exported = tmp_path / "audit.jsonl"
    exported.write_text(trail.stdout)
    verified = casework(stack_env, "audit", "--verify", str(exported))
    assert verified.returncode == 0, verified.stderr
    assert f"{len(events)} events of {waiting} verified" in verified.stdout
    edited = bytearray(trail.stdout.encode())
    third_line_start = sum(len(line) + 1 for line in trail.stdout.splitlines()[:2])
    position = edited.index(b'"summary":"', third_line_start) + len('"summary":"')
    edited[position] = ord("X") if edited[position] != ord("X") else ord("Y")
    exported.write_bytes(bytes(edited))
    refused = casework(stack_env, "audit", "--verify", str(exported))
    assert refused.returncode == 1
    assert "line 3: its content does not match its hash (it was edited)" in refused.stderr


def test_unknown_case_is_a_clear_error(stack_env: dict[str, str]) -> None:
    result = casework(stack_env, "show", "invoice-exception-NOPE")
    assert result.returncode == 1
    assert "no case 'invoice-exception-NOPE'" in result.stderr
