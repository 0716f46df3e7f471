"""deploy/prometheus/alerts.yml: valid, tested, actionable, and reading only real metrics.

``promtool`` (Debian's ``prometheus`` package; ``.ci/run`` installs it) checks the rules and
runs their unit tests (deploy/prometheus/alerts.test.yml). Without it those two tests are skipped
locally and fail in CI. The SDK metrics the rules read are checked against what temporalio's Core
runtime really exports: a worker on a dev server fails workflow tasks, once with an exception in
workflow code and once with a nondeterminism error, and its /metrics endpoint is scraped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from casework import metrics, telemetry
from casework.testing.stack import free_ports
from casework.testing.temporal import eventually

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}
NOT_YET_EXPORTED = {"casework_agent_regions_ended_total"}
"""Read by CaseworkAgentOffRailSpike for the ``off_rail`` region outcome; casework/metrics.py
does not count region outcomes yet (docs/operations.md, Alerts, says so)."""
METRIC = re.compile(r"\b(?:casework|temporal)_[a-z0-9_]+\b")
BY_LABELS = re.compile(r"\bby\s*\(([^)]*)\)")


def _rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is missing (apt-get install prometheus: Debian ships promtool in it)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_every_rule() -> None:
    checked = _run(_promtool(), "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_promtool_unit_tests_fire_and_stay_quiet_as_written() -> None:
    tested = _run(_promtool(), "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    # Every alert is exercised: a rule nobody tests firing could never fire unnoticed.
    tested_alerts = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested_alerts == {rule["alert"] for rule in _rules()}


def test_every_alert_says_how_urgent_it_is_and_what_to_do() -> None:
    documented = OPERATIONS.read_text().split("\n## Alerts\n", 1)
    assert len(documented) == 2, "docs/operations.md has no '## Alerts' section"
    alerts_section = documented[1].split("\n## ", 1)[0]
    for rule in _rules():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: no `for:`"
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and "\n" not in annotations["summary"], name
        assert "docs/operations.md, Alerts" in annotations["description"], name
        assert f"`{name}`" in alerts_section, f"{name} is not explained in docs/operations.md"


def test_rules_read_only_metrics_casework_exports() -> None:
    exported = {f"{name}_total" for name in metrics.DESCRIPTIONS}
    assert not NOT_YET_EXPORTED & exported, (
        "casework now exports the region-outcome counter: drop it from NOT_YET_EXPORTED and from "
        "the note in docs/operations.md, Alerts"
    )
    read = {name for rule in _rules() for name in METRIC.findall(rule["expr"])}
    assert {name for name in read if name.startswith("casework_")} <= exported | NOT_YET_EXPORTED


# -- the SDK's metrics, as a real worker exports them ------------------------------------------


@workflow.defn(name="AlertProbeRaises")
class RaisesInWorkflowCode:
    @workflow.run
    async def run(self) -> None:
        # Not an ApplicationError: the SDK fails the workflow task, as it does for a bug.
        raise RuntimeError("a bug in workflow code")


@workflow.defn(name="AlertProbeChanged")
class WaitsWithDeadline:
    """The first release: waits for ``proceed`` with a timer as its deadline."""

    def __init__(self) -> None:
        self.proceeding = False

    @workflow.signal
    def proceed(self) -> None:
        self.proceeding = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.proceeding, timeout=timedelta(hours=1))


@workflow.defn(name="AlertProbeChanged")
class WaitsWithoutDeadline:
    """A second release that dropped the timer without workflow.patched: nondeterministic."""

    def __init__(self) -> None:
        self.proceeding = False

    @workflow.signal
    def proceed(self) -> None:
        self.proceeding = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.proceeding)


def _series(url: str, name: str) -> list[dict[str, str]]:
    """The label sets of metric ``name`` in a Prometheus text scrape."""
    text = httpx.get(url, timeout=10, trust_env=False).text
    return [
        dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        for labels in re.findall(rf"^{name}\{{(.*)\}} \S+$", text, flags=re.MULTILINE)
    ]


async def _timer_started(handle: WorkflowHandle[Any, Any]) -> bool | None:
    events = (await handle.fetch_history()).events
    return any(event.HasField("timer_started_event_attributes") for event in events) or None


async def test_rules_read_workflow_task_failures_as_the_sdk_exports_them(
    temporal: WorkflowEnvironment,
) -> None:
    sdk_metrics = {
        name
        for rule in _rules()
        for name in METRIC.findall(rule["expr"])
        if name.startswith("temporal_")
    }
    assert sdk_metrics == {"temporal_workflow_task_execution_failed_total"}
    (failed_tasks,) = sdk_metrics
    grouped_by = {
        label.strip()
        for rule in _rules()
        if failed_tasks in rule["expr"]
        for labels in BY_LABELS.findall(rule["expr"])
        for label in labels.split(",")
    }
    reasons_read = {
        reason
        for rule in _rules()
        for reason in re.findall(r'failure_reason!?="(\w+)"', rule["expr"])
    }
    assert reasons_read == {"NonDeterminismError"}

    # A runtime serving Prometheus metrics exactly as the worker's does.
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    client = await Client.connect(
        temporal.client.service_client.config.target_host,
        namespace=temporal.client.namespace,
        runtime=telemetry.runtime(f"127.0.0.1:{port}"),
    )
    queue = f"alert-probe-{uuid.uuid4().hex}"

    def worker(*workflows: type) -> Worker:
        return Worker(
            client,
            task_queue=queue,
            workflows=list(workflows),
            workflow_runner=UnsandboxedWorkflowRunner(),
        )

    async with worker(RaisesInWorkflowCode, WaitsWithDeadline):
        raising = await client.start_workflow(
            RaisesInWorkflowCode.run, id=f"raises-{uuid.uuid4().hex}", task_queue=queue
        )
        changed = await client.start_workflow(
            WaitsWithDeadline.run, id=f"changed-{uuid.uuid4().hex}", task_queue=queue
        )
        await eventually(lambda: _timer_started(changed), what="the timer started")

    async def failures() -> list[dict[str, str]] | None:
        found = _series(url, failed_tasks)
        reasons = {series.get("failure_reason") for series in found}
        return found if {"WorkflowError", "NonDeterminismError"} <= reasons else None

    async with worker(WaitsWithoutDeadline):
        await changed.signal(WaitsWithoutDeadline.proceed)
        found = await eventually(
            failures, what="both workflow task failures in /metrics", timeout=60
        )
    await raising.terminate("probe done")
    await changed.terminate("probe done")

    by_type = {(series["workflow_type"], series["failure_reason"]) for series in found}
    assert ("AlertProbeRaises", "WorkflowError") in by_type
    assert ("AlertProbeChanged", "NonDeterminismError") in by_type
    for series in found:
        assert grouped_by <= series.keys(), (grouped_by - series.keys(), series)
        assert series["task_queue"] == queue and series["namespace"] == temporal.client.namespace
