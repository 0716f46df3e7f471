"""The framework imports nothing from the catalogue: casework/ serves any organisation's processes.

Processes, systems, policies and the worker entry point live in the top-level packages the design
card names; the framework finds them at run time (``casework.catalogue``), never by import.
"""

from __future__ import annotations

import ast
from pathlib import Path

CATALOGUE_PACKAGES = {"workflows", "activities", "policies", "workers", "sandbox", "demos", "evals"}
FRAMEWORK = Path(__file__).parent.parent / "casework"


def catalogue_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(FRAMEWORK.parent)}:{node.lineno} imports {name}"
            for name in names
            if name.split(".")[0] in CATALOGUE_PACKAGES
        ]
    return found


def test_no_framework_module_imports_the_catalogue() -> None:
    modules = sorted(FRAMEWORK.rglob("*.py"))
    assert len(modules) > 50, "the walk found too few framework modules to mean anything"
    offending = [line for path in modules for line in catalogue_imports(path)]
    assert not offending, "\n".join(offending)
