"""The catalogue extends the ``casework`` command without the framework importing it.

A verb of a process's own (``casework deliver``, ``casework resubmit``) and a process's demo are
declared in modules of the demo packages (``CASEWORK_DEMOS``, default ``demos``) and found at
run time. The CLI tests run ``casework`` as a user does, with a package of the test's own on
``PYTHONPATH``; the demo tests seed the real demo declarations into a real sandbox.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from casework.catalogue import discover
from casework.cli import extensions
from casework.cli.demo import next_batch, process_demos, seed_scenarios
from casework.cli.seeding import DemoRun
from casework.config import Settings
from casework.discovery import CatalogueError
from casework.sandbox.server import running_sandbox
from casework.testing.temporal import BIN

# A verb that checks its argument before anything is contacted, as ``deliver`` does.
GREETING = """
from casework.cli.cases import CommandError
from casework.cli.extensions import Command


def add_arguments(parser):
    parser.add_argument("name", help="who to greet")


def read(args):
    if not args.name.isalpha():
        raise CommandError(f"name: {args.name!r} is not a name")
    return args.name


async def run(client, settings, name):
    print(f"hello {name}")
    return 0


COMMANDS = [Command("greet", "greet someone by name", add_arguments, read, run)]
"""


def write_package(root: Path, modules: dict[str, str]) -> str:
    """A package of ``modules`` (name -> source) under ``root``, with a name no test shares."""
    name = f"extensions_{uuid.uuid4().hex[:8]}"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text('"""What an organisation adds."""\n')
    for module, source in modules.items():
        (root / name / f"{module}.py").write_text(textwrap.dedent(source))
    return name


def casework(root: Path, packages: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        extensions.DEMOS_ENV: packages,
        # Nothing listens on port 1: whatever the command says came before any connection.
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    return subprocess.run(
        [str(BIN / "casework"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_verb_in_a_package_of_its_own_joins_the_cli_beside_the_catalogues(
    tmp_path: Path,
) -> None:
    package = write_package(tmp_path, {"greetings": GREETING})

    listed = casework(tmp_path, f"demos,{package}", "--help")
    refused = casework(tmp_path, f"demos,{package}", "greet", "R2-D2")

    assert listed.returncode == 0, listed.stderr
    for verb in ("deliver", "resubmit", "greet"):
        assert verb in listed.stdout
    assert "greet someone by name" in listed.stdout
    assert (refused.returncode, refused.stderr) == (1, "casework: name: 'R2-D2' is not a name\n")


def test_a_module_that_does_not_import_stops_the_cli_naming_it(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"broken": "import no_such_module_here\n"})

    result = casework(tmp_path, package, "--help")

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"casework: catalogue module {package}.broken does not import: ModuleNotFoundError"
    )


def test_a_verb_casework_has_already_is_refused(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"shadow": GREETING.replace('"greet"', '"start"')})

    result = casework(tmp_path, package, "--help")

    assert result.returncode == 1
    assert "declares the command 'start', which casework has already" in result.stderr


def test_a_declaration_of_the_wrong_kind_is_refused_naming_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_package(tmp_path, {"odd": "DEMO = {'process': 'refund'}\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(extensions.DEMOS_ENV, package)

    with pytest.raises(CatalogueError, match=rf"{package}\.odd\.DEMO must be a ProcessDemo"):
        process_demos()


# -- the demos the catalogue declares ---------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    with running_sandbox(tmp_path / "sandbox.db") as url:
        yield httpx.AsyncClient(base_url=url, trust_env=False, timeout=10.0)


def demo_run(sandbox: httpx.AsyncClient, batch: int) -> DemoRun:
    # Seeding only talks to the sandbox; starting and playing cases is what needs Temporal.
    client: Any = None
    return DemoRun(client, Settings(sandbox_url=str(sandbox.base_url)), sandbox, batch)


def test_every_process_demo_is_found_in_table_order() -> None:
    demos = process_demos()

    assert [demo.process for demo in demos] == [
        "invoice-exception",
        "ticket-triage",
        "incident-review",
        "refund",
        "vendor-onboarding",
        "loan-application",
        "lead-routing",
        "insurance-claim",
        "customer-onboarding",
    ]
    assert {demo.process for demo in demos} <= set(discover().processes)


async def test_each_run_seeds_a_fresh_batch_of_every_process(sandbox: httpx.AsyncClient) -> None:
    demos = process_demos()
    catalogue = discover()

    first_batch = await next_batch(sandbox, demos)
    first = await seed_scenarios(demo_run(sandbox, first_batch), demos)
    second_batch = await next_batch(sandbox, demos)
    second = await seed_scenarios(demo_run(sandbox, second_batch), demos)
    await sandbox.aclose()

    assert (first_batch, second_batch) == (1, 2)
    for demo, scenario, request in first + second:
        process = catalogue.process(demo.process)
        assert isinstance(request, process.input_model), (demo.process, scenario.story)
    case_ids = [catalogue.process(d.process).case_id(r) for d, _, r in first + second]
    assert len(set(case_ids)) == len(case_ids) == 2 * sum(len(d.scenarios) for d in demos)
    assert "invoice-exception-INV-1001" in case_ids
    assert "invoice-exception-INV-2001" in case_ids
