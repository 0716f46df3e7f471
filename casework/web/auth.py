"""Sign-in for the review queue: directory users, hashed passwords, signed sessions, CSRF tokens.

State lives in ``<state_dir>/ui/``:

- ``users.json``: one scrypt hash (with its salt) per directory user; no password is kept;
- ``secret``: the key sessions and CSRF tokens are signed with (readable by the owner only);
- ``demo-credentials.txt``: the passwords generated for the demo directory, written once so the
  people trying ``make demo`` can sign in; delete it, or reset a password with
  ``casework ui --reset-password USER``, outside a demo.

Sessions are a signed cookie (user, expiry, nonce) that counts only while the server holds the
session open (:class:`Sessions`): signing out ends it, so a copy of the cookie kept from before is
refused. Each session's CSRF token is derived from its nonce, so a form posted from anywhere else,
or without the token, is refused. Failed sign-ins are throttled per user and per client address
(:class:`SignInThrottle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

SESSION_COOKIE = "casework_session"
LOGIN_COOKIE = "casework_login"
FLASH_COOKIE = "casework_flash"
SESSION_SECONDS = 8 * 3600
FAILED_SIGN_INS_PER_USER = 5
FAILED_SIGN_INS_PER_ADDRESS = 20
"""Higher than per user: people sharing an address (one machine, a proxy) each mistype."""
SIGN_IN_WINDOW_SECONDS = 15 * 60
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class PasswordHash(BaseModel):
    salt: str
    hash: str
    n: int = _SCRYPT["n"]
    r: int = _SCRYPT["r"]
    p: int = _SCRYPT["p"]

    @classmethod
    def of(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(16)
        return cls(salt=salt.hex(), hash=_scrypt(password, salt, **_SCRYPT).hex())

    def matches(self, password: str) -> bool:
        computed = _scrypt(password, bytes.fromhex(self.salt), n=self.n, r=self.r, p=self.p)
        return hmac.compare_digest(computed.hex(), self.hash)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


class _UserFile(BaseModel):
    users: dict[str, PasswordHash] = {}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    temporary.replace(path)


class Credentials:
    """The review queue's users and signing key under ``<state_dir>/ui``."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "ui"
        self.users_file = self.folder / "users.json"
        self.secret_file = self.folder / "secret"
        self.handout_file = self.folder / "demo-credentials.txt"

    def _load(self) -> _UserFile:
        try:
            return _UserFile.model_validate_json(self.users_file.read_bytes())
        except FileNotFoundError:
            return _UserFile()

    def _save(self, users: _UserFile) -> None:
        _write_private(self.users_file, users.model_dump_json(indent=2))

    def secret(self) -> bytes:
        try:
            return bytes.fromhex(self.secret_file.read_text().strip())
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            _write_private(self.secret_file, key.hex())
            return key

    def ensure(self, user_ids: list[str]) -> dict[str, str]:
        """Give every user in ``user_ids`` a password if they have none; return the new ones.

        New passwords are also written to the demo handout file, so they can be found later."""
        self.secret()
        users = self._load()
        created = {
            user_id: secrets.token_urlsafe(9) for user_id in user_ids if user_id not in users.users
        }
        if created:
            for user_id, password in created.items():
                users.users[user_id] = PasswordHash.of(password)
            self._save(users)
            self._hand_out(created)
        return created

    def set_password(self, user_id: str, password: str | None = None) -> str:
        password = password or secrets.token_urlsafe(9)
        users = self._load()
        users.users[user_id] = PasswordHash.of(password)
        self._save(users)
        if self.handout_file.exists():
            self._hand_out({user_id: password})
        return password

    def _hand_out(self, passwords: dict[str, str]) -> None:
        known: dict[str, str] = {}
        if self.handout_file.exists():
            for line in self.handout_file.read_text().splitlines():
                if line and not line.startswith("#") and " " in line:
                    user, password = line.split(maxsplit=1)
                    known[user] = password
        known |= passwords
        text = (
            "# casework review queue: demo sign-in passwords (user password).\n"
            "# Only hashes are used to sign in (users.json); this file is for trying the demo.\n"
            "# Delete it, or reset a password with: casework ui --reset-password USER\n"
            + "".join(f"{user} {password}\n" for user, password in sorted(known.items()))
        )
        _write_private(self.handout_file, text)

    def verify(self, user_id: str, password: str) -> bool:
        stored = self._load().users.get(user_id)
        if stored is None:
            # Spend the same time on an unknown user, so timing does not tell who exists.
            PasswordHash.of(password)
            return False
        return stored.matches(password)


@dataclass(frozen=True)
class Session:
    user: str
    expires: int
    nonce: str


class Signer:
    """Signs and checks session cookies, CSRF tokens and flash messages with one key."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._secret, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()

    def sign(self, purpose: str, value: str) -> str:
        encoded = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
        return f"{encoded}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        encoded, mac = signed.rsplit(".", 1)
        try:
            value = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return value if hmac.compare_digest(mac, self._mac(purpose, value)) else None

    def new_session(self, user: str) -> tuple[Session, str]:
        session = Session(
            user=user, expires=int(time.time()) + SESSION_SECONDS, nonce=secrets.token_hex(16)
        )
        value = json.dumps({"u": session.user, "e": session.expires, "n": session.nonce})
        return session, self.sign("session", value)

    def session(self, cookie: str | None) -> Session | None:
        value = self.unsign("session", cookie)
        if value is None:
            return None
        try:
            data = json.loads(value)
            session = Session(user=str(data["u"]), expires=int(data["e"]), nonce=str(data["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce and token) and hmac.compare_digest(
            self.csrf_token(nonce or ""), token or ""
        )


class Sessions:
    """The sessions the review queue holds open: a signed cookie counts only while its session
    is here. Sign-out ends it at once; so does a restart of the review queue (they live in its
    memory only, never on disk)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._open: dict[str, Session] = {}
        self._clock = clock

    def open(self, session: Session) -> None:
        now = self._clock()
        # Forget expired sessions as new ones open, so the table stays as small as the queue's
        # users.
        self._open = {nonce: s for nonce, s in self._open.items() if s.expires > now}
        self._open[session.nonce] = session

    def is_open(self, session: Session) -> bool:
        held = self._open.get(session.nonce)
        return held == session and held.expires > self._clock()

    def end(self, session: Session) -> None:
        self._open.pop(session.nonce, None)


class SignInThrottle:
    """Failed sign-ins in the last :data:`SIGN_IN_WINDOW_SECONDS`, per user and per client
    address. Past either limit, sign-in is refused before the password is checked (a right
    password too), until enough of the failures are older than the window."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        per_user: int = FAILED_SIGN_INS_PER_USER,
        per_address: int = FAILED_SIGN_INS_PER_ADDRESS,
        window_seconds: float = SIGN_IN_WINDOW_SECONDS,
    ) -> None:
        self._clock = clock
        self._limits = {"user": per_user, "address": per_address}
        self._window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= self._clock() - self._window:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def refusal(self, user: str, address: str) -> str | None:
        """Why a sign-in as ``user`` from ``address`` is refused now, or None."""
        for kind, value, who in (
            ("user", user, f"for {user}"),
            ("address", address, "from this address"),
        ):
            failures = self._recent((kind, value))
            if len(failures) >= self._limits[kind]:
                # The oldest failure that keeps the count at the limit must leave the window.
                wait = failures[-self._limits[kind]] + self._window - self._clock()
                minutes = max(1, -(-int(wait) // 60))
                return (
                    f"Too many failed sign-ins {who}: try again in {minutes} "
                    f"minute{'s' if minutes != 1 else ''}."
                )
        return None

    def failed(self, user: str, address: str) -> None:
        for key in (("user", user), ("address", address)):
            self._failures.setdefault(key, self._recent(key)).append(self._clock())

    def succeeded(self, user: str) -> None:
        self._failures.pop(("user", user), None)
