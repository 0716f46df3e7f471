"""Decision keys on disk: each person's private signing key and the workers' public key file.

- A person's key is ``<user>.json`` (``{"user": ..., "private_key": <base64 of the 32-byte
  Ed25519 seed>}``, readable by its owner only) in ``CASEWORK_SIGNING_KEYS_DIR``, by default
  ``$CASEWORK_HOME/signing``. ``casework approve --as carol`` signs with ``carol.json``; on a
  person's own machine that directory holds their key and nobody else's.
- Workers read every user's public key from ``CASEWORK_DECISION_KEYS_FILE``, by default
  ``$CASEWORK_HOME/signing/public-keys.json`` (``{"keys": {<user>: <base64 of 32 bytes>}}``);
  the ``policies.load`` activity hands them to each case with the directory.

``casework up`` generates a key for every user of the demo directory on first run, unless
``CASEWORK_DECISION_KEYS_FILE`` says the keys are managed elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError, field_validator

from casework.governance.loader import load_policy
from casework.governance.models import DIRECTORY_ID, Directory
from casework.signing import public_key_text, sign_decision

if TYPE_CHECKING:
    # Only named in annotations, as in casework.signing: the case package imports this module.
    from casework.case.tasks import TaskDecision

KEYS_SUBDIR = "signing"
PUBLIC_KEYS_FILE = "public-keys.json"
KEY_BYTES = 32

M = TypeVar("M", bound=BaseModel)


class SigningKeyError(Exception):
    """A key file is missing or malformed; the message names the file and what to do."""


def _raw_key(encoded: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise ValueError(f"{what} is not valid base64") from error
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


class PrivateKeyFile(BaseModel):
    user: str
    private_key: str

    @field_validator("private_key")
    @classmethod
    def _is_a_seed(cls, value: str) -> str:
        _raw_key(value, "private_key")
        return value

    def key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(_raw_key(self.private_key, "private_key"))


class PublicKeyFile(BaseModel):
    keys: dict[str, str]

    @field_validator("keys")
    @classmethod
    def _are_public_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for user, encoded in keys.items():
            _raw_key(encoded, f"the key of {user!r}")
        return keys


def _parse(model: type[M], path: Path) -> M:
    try:
        return model.model_validate_json(path.read_text())
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(document)'}: {item['msg']}"
            for item in error.errors()
        )
        raise SigningKeyError(f"key file {path} is invalid: {problems}") from error


def signing_keys_dir(state_dir: Path, env: Mapping[str, str] = os.environ) -> Path:
    named = env.get("CASEWORK_SIGNING_KEYS_DIR")
    return Path(named) if named else state_dir / KEYS_SUBDIR


def public_keys_path(state_dir: Path, env: Mapping[str, str] = os.environ) -> Path:
    named = env.get("CASEWORK_DECISION_KEYS_FILE")
    return Path(named) if named else state_dir / KEYS_SUBDIR / PUBLIC_KEYS_FILE


def load_public_keys(state_dir: Path, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Every user's public decision key, for the worker to hand to cases."""
    path = public_keys_path(state_dir, env)
    if not path.is_file():
        raise SigningKeyError(
            f"no decision keys at {path}: `casework up` generates the demo directory's; "
            "elsewhere set CASEWORK_DECISION_KEYS_FILE to the public key file"
        )
    return _parse(PublicKeyFile, path).keys


def load_signing_key(user: str, keys_dir: Path) -> Ed25519PrivateKey:
    """``user``'s private key from ``keys_dir`` (see :func:`signing_keys_dir`), to sign the
    decisions they send."""
    path = keys_dir / f"{user}.json"
    if not path.is_file():
        raise SigningKeyError(
            f"no signing key for {user!r} at {path}: decisions are signed with the approver's "
            "own key (`casework up` generates the demo directory's; elsewhere put yours there "
            "or set CASEWORK_SIGNING_KEYS_DIR)"
        )
    found = _parse(PrivateKeyFile, path)
    if found.user != user:
        raise SigningKeyError(f"{path} holds the key of {found.user!r}, not of {user!r}")
    return found.key()


def signed_by_approver(decision: TaskDecision, case_id: str, keys_dir: Path) -> TaskDecision:
    """``decision`` signed for ``case_id`` with its approver's key from ``keys_dir``."""
    return sign_decision(decision, case_id, load_signing_key(decision.approver, keys_dir))


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def ensure_signing_keys(directory: Path, users: Iterable[str]) -> Path:
    """Give every user in ``users`` a key under ``directory`` (keeping existing ones) and write
    the public key file for all of them; returns that file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    public: dict[str, str] = {}
    for user in sorted(users):
        path = directory / f"{user}.json"
        if path.exists():
            key = _parse(PrivateKeyFile, path).key()
        else:
            key = Ed25519PrivateKey.generate()
            seed = base64.b64encode(key.private_bytes_raw()).decode()
            _write_private(path, json.dumps({"user": user, "private_key": seed}, indent=2) + "\n")
        public[user] = public_key_text(key)
    keys_file = directory / PUBLIC_KEYS_FILE
    keys_file.write_text(json.dumps({"keys": public}, indent=2) + "\n")
    return keys_file


def ensure_demo_keys(state_dir: Path, env: Mapping[str, str] = os.environ) -> Path | None:
    """Generate the demo directory's keys under the state directory, unless the environment
    names key locations (keys managed elsewhere); returns the public key file written, if any."""
    if env.get("CASEWORK_DECISION_KEYS_FILE") or env.get("CASEWORK_SIGNING_KEYS_DIR"):
        return None
    return ensure_signing_keys(state_dir / KEYS_SUBDIR, _directory_users())


def keys_environment(directory: Path) -> dict[str, str]:
    """Give every directory user a key under ``directory``; return the environment that points
    workers (public keys) and signers (private keys) at them. For tests and harnesses that run
    stacks of their own."""
    public = ensure_signing_keys(directory, _directory_users())
    return {
        "CASEWORK_DECISION_KEYS_FILE": str(public.resolve()),
        "CASEWORK_SIGNING_KEYS_DIR": str(directory.resolve()),
    }


def _directory_users() -> list[str]:
    return list(Directory.model_validate(load_policy(DIRECTORY_ID).content).users)
