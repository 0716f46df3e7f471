"""What the workflow sandbox would catch, checked before a worker runs workflow code without it.

casework's workers run workflow code outside Temporal's sandbox by default
(``casework.config.workflow_sandbox`` says why); tests and the replayer keep the sandbox. So that
a nondeterministic workflow is still refused before it runs a single case, the worker reads the
source of every workflow module it registers and stops, naming file and line, on what the
sandbox would have stopped at run time: importing a module for time, randomness, processes,
threads, files or the network, and reading the wall clock or opening a file. Workflow code gets
time, randomness and waiting from ``temporalio.workflow`` instead.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

FORBIDDEN_MODULES = frozenset(
    {
        "aiohttp",
        "concurrent",
        "http",
        "httpx",
        "io",
        "multiprocessing",
        "os",
        "pathlib",
        "random",
        "requests",
        "secrets",
        "select",
        "shutil",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib",
        "uuid",
    }
)
"""Top-level modules whose use in workflow code is I/O or nondeterminism (``workflow.now``,
``workflow.uuid4``, ``workflow.random`` and ``workflow.sleep`` are the deterministic ones)."""
WALL_CLOCK_CALLS = frozenset({"now", "utcnow", "today"})
"""``datetime.now()`` and the like, on ``datetime`` or ``date``."""
FORBIDDEN_BUILTINS = frozenset({"open", "input"})


def source_problems(source: str, filename: str) -> list[str]:
    """Each use the sandbox would refuse, as ``file:line: what``."""
    problems: list[str] = []

    def refuse(node: ast.AST, what: str) -> None:
        problems.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    refuse(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                refuse(node, f"imports from {node.module}")
        elif isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name) and function.id in FORBIDDEN_BUILTINS:
                refuse(node, f"calls {function.id}()")
            elif (
                isinstance(function, ast.Attribute)
                and function.attr in WALL_CLOCK_CALLS
                and isinstance(function.value, ast.Name | ast.Attribute)
                and _last_name(function.value) in {"datetime", "date"}
            ):
                refuse(
                    node,
                    f"reads the wall clock ({_last_name(function.value)}.{function.attr}()): "
                    "use workflow.now()",
                )
    return problems


def module_problems(module: ModuleType) -> list[str]:
    path = Path(inspect.getfile(module))
    return source_problems(path.read_text(), str(path))


def workflow_problems(workflows: Iterable[type]) -> list[str]:
    """Problems in the modules defining ``workflows`` and the classes they build on (the case
    base), each module read once."""
    modules = {
        inspect.getmodule(cls)
        for workflow in workflows
        for cls in workflow.__mro__
        if cls is not object and not cls.__module__.startswith(("temporalio", "typing"))
    }
    return [
        problem
        for module in sorted((m for m in modules if m is not None), key=lambda m: m.__name__)
        for problem in module_problems(module)
    ]


def _last_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
