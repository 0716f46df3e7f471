"""The intake service's webhook signatures and the secret they are made with.

Kept apart from the service (``casework.intake``) so that ``casework up``, senders' scripts and
tests sign and generate secrets without loading a web server.

A sender signs the raw body with HMAC-SHA256 and the deployment's secret, the convention GitHub
and Stripe webhooks use, and sends ``X-Casework-Signature: sha256=<hex>``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from casework.config import SettingsError, find_home, secret_from_env

SIGNATURE_HEADER = "X-Casework-Signature"
SIGNATURE_PREFIX = "sha256="
SECRET_ENV = "CASEWORK_INTAKE_SECRET"
"""The secret itself; ``CASEWORK_INTAKE_SECRET_FILE`` names a file holding it instead."""
SECRET_FILE = "intake-secret"
"""The secret's file under the home, as ``casework up`` generates it."""


def signature(body: bytes, secret: str) -> str:
    """The header value a sender puts on ``body``: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def signed_by(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is ``body``'s signature with ``secret``, compared in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(header.encode(), signature(body, secret).encode())


def ensure_secret(path: Path) -> Path:
    """The secret at ``path``, generated (readable by its owner only) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path


def load_secret(env: Mapping[str, str] = os.environ) -> SecretStr:
    """``CASEWORK_INTAKE_SECRET``, else the file ``CASEWORK_INTAKE_SECRET_FILE`` names, else the
    one ``casework up`` generated under the home."""
    if found := secret_from_env(env, SECRET_ENV):
        return found
    path = find_home(env)[0] / SECRET_FILE
    if path.is_file():
        return SecretStr(path.read_text().strip())
    raise SettingsError(
        f"no intake secret: set {SECRET_ENV} or {SECRET_ENV}_FILE, or run `casework up` to "
        f"generate {path}"
    )
