"""Reading policy documents from disk: file I/O, so activities and tools only, never workflows."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from casework.governance.models import PolicyDocument, PolicyRef

POLICIES_PACKAGE = "policies"
"""The catalogue package whose folder holds the policy documents an installation ships."""


class PolicyNotFoundError(LookupError):
    pass


def catalogue_policy_dir() -> Path:
    """The policy documents shipped with the catalogue's ``policies`` package, found by name at
    run time: the framework imports no catalogue module."""
    spec = importlib.util.find_spec(POLICIES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PolicyNotFoundError(
            f"no {POLICIES_PACKAGE!r} package to read policies from; set CASEWORK_POLICY_DIR"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def policy_dir() -> Path:
    """Where policies are read from: ``CASEWORK_POLICY_DIR``, or the catalogue's own."""
    if configured := os.environ.get("CASEWORK_POLICY_DIR"):
        return Path(configured)
    return catalogue_policy_dir()


def load_policy(policy_id: str, directory: Path | None = None) -> PolicyDocument:
    path = (directory or policy_dir()) / f"{policy_id}.yaml"
    if not path.is_file():
        raise PolicyNotFoundError(f"policy {policy_id!r} not found at {path}")
    raw = path.read_bytes()
    content = _parsed_yaml(raw)
    if not isinstance(content, dict):
        raise ValueError(f"policy {path} must be a mapping at the top level")
    if content.get("id") != policy_id:
        raise ValueError(f"policy {path} declares id {content.get('id')!r}, expected {policy_id!r}")
    version = content.get("version")
    if not isinstance(version, int):
        raise ValueError(f"policy {path} needs an integer 'version'")
    # The hash covers the exact bytes, so any edit (even one that forgot to bump the version)
    # is visible in the audit trail.
    ref = PolicyRef(id=policy_id, version=version, sha256=hashlib.sha256(raw).hexdigest())
    return PolicyDocument(ref=ref, content=content)


@lru_cache(maxsize=64)
def _parsed_yaml(raw: bytes) -> Any:
    """Every case loads its policy and the directory: parse each text once per worker. Keyed by
    the exact bytes, so an edited file is parsed again; nothing mutates what it returns."""
    return yaml.safe_load(raw)
