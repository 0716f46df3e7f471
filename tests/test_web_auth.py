"""The review queue's sign-in, sessions, CSRF and loopback rules, without a Temporal server."""

from __future__ import annotations

import base64
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from casework.config import Settings
from casework.web.app import create_app
from casework.web.auth import SESSION_COOKIE, Credentials, PasswordHash, Signer, SignInThrottle
from casework.web.server import NotLoopback, listen_address


def test_passwords_are_kept_as_salted_hashes_only(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path)
    created = credentials.ensure(["bob", "carol"])
    assert set(created) == {"bob", "carol"}
    stored = credentials.users_file.read_text()
    assert created["carol"] not in stored and "scrypt" not in stored
    assert credentials.verify("carol", created["carol"])
    assert not credentials.verify("carol", created["bob"])
    assert not credentials.verify("zed", "anything")
    # Only new users get a password; the existing ones keep theirs.
    assert credentials.ensure(["bob", "carol", "dave"]).keys() == {"dave"}
    assert credentials.verify("bob", created["bob"])
    for path in (credentials.users_file, credentials.secret_file, credentials.handout_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert f"carol {created['carol']}" in credentials.handout_file.read_text()
    new = credentials.set_password("carol")
    assert credentials.verify("carol", new) and not credentials.verify("carol", created["carol"])
    two = PasswordHash.of("same")
    assert two.salt != PasswordHash.of("same").salt


def test_sessions_and_csrf_tokens_cannot_be_forged() -> None:
    signer = Signer(b"k" * 32)
    session, cookie = signer.new_session("carol")
    assert signer.session(cookie) == session
    other = Signer(b"x" * 32)
    assert other.session(cookie) is None
    # The same signature on a cookie that names someone else.
    encoded, mac = cookie.rsplit(".", 1)
    value = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    forged = base64.urlsafe_b64encode(value.replace("carol", "dave").encode()).decode()
    assert signer.session(forged.rstrip("=") + "." + mac) is None
    assert signer.session("garbage") is None and signer.session(None) is None
    token = signer.csrf_token(session.nonce)
    assert signer.csrf_ok(session.nonce, token)
    assert not signer.csrf_ok(session.nonce, other.csrf_token(session.nonce))
    assert not signer.csrf_ok(session.nonce, None)


def test_the_review_queue_listens_on_loopback_only() -> None:
    assert listen_address("http://127.0.0.1:8790") == ("127.0.0.1", 8790)
    assert listen_address("http://localhost:9000") == ("127.0.0.1", 9000)
    assert listen_address("http://[::1]:9000") == ("::1", 9000)
    for url in ("http://0.0.0.0:8790", "http://10.1.2.3:8790", "http://example.com"):
        with pytest.raises(NotLoopback):
            listen_address(url)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Credentials]]:
    credentials = Credentials(tmp_path)

    async def no_temporal() -> Any:
        return None

    client = TestClient(
        create_app(Settings(state_dir=tmp_path), no_temporal), base_url="http://127.0.0.1:8790"
    )
    with client:
        yield client, credentials


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, html
    return match.group(1)


def test_sign_in_needs_the_right_password_and_the_form_token(
    app: tuple[TestClient, Credentials],
) -> None:
    client, credentials = app
    password = credentials.set_password("carol", "correct horse")
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")

    form = client.get("/login")
    assert form.headers["content-security-policy"].startswith("default-src 'none'")
    assert form.headers["x-frame-options"] == "DENY"
    token = _token(form.text)
    # Without the sign-in form's token: refused.
    refused = client.post("/login", data={"user": "carol", "password": password})
    assert refused.status_code == 403
    wrong = client.post(
        "/login",
        data={"user": "carol", "password": "nope", "csrf_token": token},
        follow_redirects=False,
    )
    assert "error=1" in wrong.headers["location"]
    assert SESSION_COOKIE not in client.cookies
    signed_in = client.post(
        "/login",
        data={"user": "carol", "password": password, "csrf_token": token, "next": "//evil.com"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie

    # Signing out is a state change too: it needs the session's token.
    assert client.post("/logout", data={}).status_code == 403


def test_requests_for_another_host_name_are_refused(app: tuple[TestClient, Credentials]) -> None:
    client, _ = app
    response = client.get("/login", headers={"host": "attacker.example:8790"})
    assert response.status_code == 421
    assert client.get("/healthz", headers={"host": "localhost:8790"}).text == "ok"


def test_a_session_counts_only_until_sign_out(app: tuple[TestClient, Credentials]) -> None:
    client, credentials = app
    password = credentials.set_password("carol", "correct horse")
    token = _token(client.get("/login").text)
    client.post(
        "/login",
        data={"user": "carol", "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    kept = client.cookies[SESSION_COOKIE]
    # Signed out with the session's own token (the queue page needs Temporal; the form's
    # token is the session's CSRF token, derived from its nonce).
    session = Signer(credentials.secret()).session(kept)
    assert session is not None
    csrf = Signer(credentials.secret()).csrf_token(session.nonce)
    signed_out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert signed_out.status_code == 303
    client.cookies.set(SESSION_COOKIE, kept)
    after = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert after.status_code == 403 and "not signed in" in after.text


def test_sign_in_throttle_counts_per_user_and_address_within_its_window() -> None:
    now = [1000.0]
    throttle = SignInThrottle(clock=lambda: now[0], per_user=3, per_address=5, window_seconds=60)
    for _ in range(3):
        assert throttle.refusal("carol", "10.0.0.1") is None
        throttle.failed("carol", "10.0.0.1")
    assert throttle.refusal("carol", "10.0.0.2") == (
        "Too many failed sign-ins for carol: try again in 1 minute."
    )
    assert throttle.refusal("dave", "10.0.0.1") is None
    throttle.failed("dave", "10.0.0.1")
    throttle.failed("erin", "10.0.0.1")
    assert "from this address" in (throttle.refusal("frank", "10.0.0.1") or "")
    assert throttle.refusal("frank", "10.0.0.3") is None
    # A minute after the failures, both counts have forgotten them.
    now[0] += 60
    assert throttle.refusal("carol", "10.0.0.1") is None
    # A success clears the user's count, not the address's.
    throttle.failed("grace", "10.0.0.4")
    throttle.succeeded("grace")
    assert throttle.refusal("grace", "10.0.0.9") is None
