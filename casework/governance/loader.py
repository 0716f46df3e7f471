"""Reading policy documents from disk: file I/O, so activities and tools only, never workflows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import yaml

from casework.catalogue import catalogue_policy_dir
from casework.governance.models import PolicyDocument, PolicyRef


class PolicyNotFoundError(LookupError):
    pass


def policy_dir() -> Path:
    """Where policies are read from: ``CASEWORK_POLICY_DIR`` or the documents shipped here."""
    if configured := os.environ.get("CASEWORK_POLICY_DIR"):
        return Path(configured)
    return catalogue_policy_dir()


def load_policy(policy_id: str, directory: Path | None = None) -> PolicyDocument:
    path = (directory or policy_dir()) / f"{policy_id}.yaml"
    if not path.is_file():
        raise PolicyNotFoundError(f"policy {policy_id!r} not found at {path}")
    raw = path.read_bytes()
    content = yaml.safe_load(raw)
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
