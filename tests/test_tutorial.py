"""docs/adding-a-process.md cannot rot: its files are built, discovered and tested as written.

Every fenced block on the page whose first line is ``# file: <path>`` is written to that path in
a copy of the catalogue (the repository's own processes beside it); in that copy the framework
must discover the new process and accept its policy without any shared file being edited, and
the tutorial's own tests must pass on the time-skipping server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
TUTORIAL = ROOT / "docs" / "adding-a-process.md"
BLOCK = re.compile(r"^```(?:python|yaml)\n# file: (\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CATALOGUE = ("workflows", "activities", "policies")
EXPECTED_FILES = {
    "activities/expenses.py",
    "activities/agents/expense_claim.py",
    "policies/expense_claim.yaml",
    "policies/expense_claim.py",
    "workflows/expense_claim.py",
    "tests/test_expense_claim.py",
}


def tutorial_files() -> dict[str, str]:
    text = TUTORIAL.read_text()
    return {path: f"# file: {path}\n{body}" for path, body in BLOCK.findall(text)}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the catalogue with the tutorial's files added, and the tests' shared setup."""
    root = tmp_path_factory.mktemp("tutorial")
    for package in CATALOGUE:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    (root / "tests").mkdir()
    for shared in ("__init__.py", "conftest.py"):
        shutil.copy(ROOT / "tests" / shared, root / "tests" / shared)
    for path, content in tutorial_files().items():
        target = root / path
        assert not target.exists(), f"the tutorial overwrites {path}: it must only add files"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return root


def run_in(tree: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, so its packages are the catalogue the framework finds.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, *command], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_tutorial_names_every_file_it_builds() -> None:
    assert set(tutorial_files()) == EXPECTED_FILES


def test_the_new_process_is_discovered_and_its_policy_accepted(tree: Path) -> None:
    check = (
        "from casework.catalogue import discover\n"
        "from casework.governance.loader import policy_dir\n"
        "from casework.governance.registry import policy_problems\n"
        "catalogue = discover()\n"
        "process = catalogue.process('expense-claim')\n"
        "print(process.workflow_type, process.workflow.__module__)\n"
        "print(policy_problems(policy_dir(), catalogue.policy_models))\n"
        "from casework.agents.tools import READ_ONLY\n"
        "print(READ_ONLY['get_expense_claim'].activity)\n"
    )
    completed = run_in(tree, "-c", check)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        "ExpenseClaim workflows.expense_claim",
        "[]",
        "expenses.get_claim",
    ]


def test_the_tutorials_own_tests_pass(tree: Path) -> None:
    # The repository's pytest settings (asyncio mode), with the copy as the root.
    settings = ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tree)]
    completed = run_in(
        tree,
        "-m",
        "pytest",
        *settings,
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_expense_claim.py",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "4 passed" in completed.stdout
