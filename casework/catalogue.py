"""Where the catalogue lives: the packages of processes, systems and policies the framework serves.

The framework never imports the catalogue by name in its code; it finds it here, at run time, so
an organisation can point casework at catalogue packages of its own.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

POLICIES_PACKAGE = "policies"


def catalogue_policy_dir() -> Path:
    """The policy documents shipped with the catalogue's ``policies`` package."""
    spec = importlib.util.find_spec(POLICIES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(
            f"no {POLICIES_PACKAGE!r} package to read policies from; set CASEWORK_POLICY_DIR"
        )
    return Path(next(iter(spec.submodule_search_locations)))
