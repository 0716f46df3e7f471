"""The worker's startup check: every policy document valid, or it refuses to start naming
file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from casework import worker
from casework.catalogue import discover
from casework.governance.loader import catalogue_policy_dir
from casework.governance.registry import policy_problems


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    for source in catalogue_policy_dir().glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_shipped_policies_are_valid() -> None:
    assert policy_problems(catalogue_policy_dir(), discover().policy_models) == []


def test_every_shipped_policy_has_a_model() -> None:
    shipped = {path.stem for path in catalogue_policy_dir().glob("*.yaml")}
    models = discover().policy_models
    assert shipped <= set(models), "give the new policy's model a policy_id naming its document"


def test_a_field_error_names_file_and_field(policies: Path) -> None:
    edit(policies / "invoice_exception.yaml", "  percent: 2.0", "  percent: -2.0")
    (problem,) = policy_problems(policies, discover().policy_models)
    assert str(policies / "invoice_exception.yaml") in problem
    assert "tolerance.percent: Input should be greater than or equal to 0" in problem


def test_broken_yaml_names_file_and_line(policies: Path) -> None:
    edit(policies / "directory.yaml", "users:", "users: [")
    (problem,) = policy_problems(policies, discover().policy_models)
    assert str(policies / "directory.yaml") in problem
    assert "not valid YAML: line" in problem


def test_a_missing_policy_is_a_problem(policies: Path) -> None:
    (policies / "ticket_triage.yaml").unlink()
    (problem,) = policy_problems(policies, discover().policy_models)
    assert "ticket_triage" in problem and "not found" in problem


def test_a_document_without_a_model_gets_the_loaders_checks(policies: Path) -> None:
    (policies / "someday.yaml").write_text("id: someday\nversion: 1\nanything: goes\n")
    assert policy_problems(policies, discover().policy_models) == []
    (policies / "someday.yaml").write_text("id: another\nversion: 1\n")
    (problem,) = policy_problems(policies, discover().policy_models)
    assert "declares id 'another'" in problem


def test_the_worker_refuses_to_start(
    policies: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(policies / "ticket_triage.yaml", "sla: 8h}", "sla: soon}")
    monkeypatch.setenv("CASEWORK_POLICY_DIR", str(policies))
    with pytest.raises(SystemExit) as exit_:
        worker.check_policies(discover())
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "casework worker: not starting" in err
    assert f"{policies / 'ticket_triage.yaml'}: review.tiers.0.sla" in err
