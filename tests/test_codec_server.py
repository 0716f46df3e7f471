"""The codec server outside the embedded stack: credentials, namespace and origin, and its log.

OIDC is tested against a real HTTP server on loopback publishing a discovery document and a
JWKS, with access tokens this test signs with its own RSA key, as an identity provider would.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from casework.codec import EncryptionCodec, KeyRing
from casework.codec_server import CodecAccess, CodecAuthError, create_codec_app

UI = "https://temporal-ui.example.com"
TOKEN = secrets.token_hex(32)
SECRET_TEXT = "IBAN DE89 3704 0044 0532 0130 00"


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


class IdentityProvider:
    """An OIDC issuer on loopback: discovery document and JWKS, and tokens signed with its key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "RS256"}]}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                documents = {
                    "/.well-known/openid-configuration": {
                        "issuer": provider.issuer,
                        "jwks_uri": f"{provider.issuer}/jwks.json",
                    },
                    "/jwks.json": jwks,
                }
                document = documents.get(self.path)
                body = json.dumps(document).encode()
                self.send_response(200 if document else 404)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def token(self, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        body = {
            "iss": self.issuer,
            "aud": "temporal-ui",
            "sub": "u-42",
            "email": "alice@example.com",
            "exp": int(time.time()) + 300,
        } | claims
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.thread.start()
    yield provider
    provider.server.shutdown()


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
async def sealed_body(ring: KeyRing) -> dict[str, Any]:
    (sealed,) = await EncryptionCodec(ring).encode([payload(SECRET_TEXT)])
    return json_format.MessageToDict(Payloads(payloads=[sealed]))


@pytest.fixture
async def codec(ring: KeyRing, idp: IdentityProvider) -> AsyncIterator[httpx.AsyncClient]:
    access = CodecAccess(
        token=TOKEN,
        oidc_issuer=idp.issuer,
        oidc_audience="temporal-ui",
        namespaces=["casework-prod"],
    )
    app = create_codec_app(ring, [UI], access=access)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://codec"
    ) as http:
        yield http


def headers(token: str | None = TOKEN, namespace: str | None = "casework-prod", **extra: str):
    found = {"authorization": f"Bearer {token}"} if token else {}
    return found | ({"x-namespace": namespace} if namespace else {}) | extra


def decoded(response: httpx.Response) -> list[Payload]:
    assert response.status_code == 200, response.text
    return list(json_format.ParseDict(response.json(), Payloads()).payloads)


async def test_a_decode_without_credentials_is_refused(
    codec: httpx.AsyncClient, sealed_body: dict[str, Any]
) -> None:
    response = await codec.post("/decode", json=sealed_body, headers=headers(token=None))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert SECRET_TEXT not in response.text
    wrong = await codec.post("/decode", json=sealed_body, headers=headers(token="x" * 64))
    assert wrong.status_code == 401 and SECRET_TEXT not in wrong.text
    basic = await codec.post(
        "/decode", json=sealed_body, headers={"authorization": f"Basic {TOKEN}"}
    )
    assert basic.status_code == 401
    # Encoding needs the same credentials.
    assert (await codec.post("/encode", json=sealed_body)).status_code == 401


async def test_the_configured_token_decodes(
    codec: httpx.AsyncClient, sealed_body: dict[str, Any]
) -> None:
    response = await codec.post("/decode", json=sealed_body, headers=headers())
    assert decoded(response) == [payload(SECRET_TEXT)]


async def test_a_wrong_or_missing_namespace_is_refused(
    codec: httpx.AsyncClient, sealed_body: dict[str, Any]
) -> None:
    wrong = await codec.post("/decode", json=sealed_body, headers=headers(namespace="default"))
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "namespace 'default' is not served here"
    missing = await codec.post("/decode", json=sealed_body, headers=headers(namespace=None))
    assert missing.status_code == 403
    assert missing.json()["detail"] == "the X-Namespace header is required"


async def test_the_web_ui_forwarded_access_token_is_verified_with_the_issuer_keys(
    codec: httpx.AsyncClient, sealed_body: dict[str, Any], idp: IdentityProvider
) -> None:
    response = await codec.post(
        "/decode", json=sealed_body, headers=headers(token=idp.token(), origin=UI)
    )
    assert decoded(response) == [payload(SECRET_TEXT)]
    assert response.headers["access-control-allow-origin"] == UI

    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refusals = {
        "signed with another key": idp.token(key=impostor),
        "expired": idp.token(exp=int(time.time()) - 60),
        "for another audience": idp.token(aud="some-other-app"),
        "from another issuer": idp.token(iss="https://elsewhere.example.com"),
    }
    for why, token in refusals.items():
        refused = await codec.post("/decode", json=sealed_body, headers=headers(token=token))
        assert refused.status_code == 401, why
        assert refused.json()["detail"].startswith("access token not accepted"), why


async def test_a_browser_from_another_origin_is_refused_even_with_credentials(
    codec: httpx.AsyncClient, sealed_body: dict[str, Any], idp: IdentityProvider
) -> None:
    evil = await codec.post(
        "/decode",
        json=sealed_body,
        headers=headers(token=idp.token(), origin="https://evil.example.com"),
    )
    assert evil.status_code == 403
    assert "access-control-allow-origin" not in evil.headers
    assert SECRET_TEXT not in evil.text
    # The Web UI's preflight is answered for its own origin only.
    preflight = {"access-control-request-method": "POST"}
    ok = await codec.options("/decode", headers=preflight | {"origin": UI})
    assert ok.headers["access-control-allow-origin"] == UI
    other = await codec.options("/decode", headers=preflight | {"origin": "https://evil.test"})
    assert "access-control-allow-origin" not in other.headers


async def test_the_log_names_who_decoded_what_and_never_the_payload(
    codec: httpx.AsyncClient,
    sealed_body: dict[str, Any],
    idp: IdentityProvider,
    ring: KeyRing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="casework.codec_server"):
        await codec.post("/decode", json=sealed_body, headers=headers(token=idp.token()))
        await codec.post("/decode", json=sealed_body, headers=headers(token=None))
    lines = [record.getMessage() for record in caplog.records]
    (decode,) = [line for line in lines if line.startswith("decode for")]
    assert decode == (
        f"decode for alice@example.com (oidc): namespace casework-prod, origin -, 1 payloads, "
        f"keys {ring.current}"
    )
    assert any("refused (credentials required" in line for line in lines)
    text = "\n".join(lines)
    assert "DE89" not in text and TOKEN not in text and idp.token()[:40] not in text


def test_settings_come_from_the_environment_and_errors_name_the_variable(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "codec-token"
    token_file.write_text(TOKEN + "\n")
    access = CodecAccess.from_env(
        {
            "CASEWORK_CODEC_AUTH_TOKEN_FILE": str(token_file),
            "CASEWORK_CODEC_OIDC_ISSUER": "https://id.example.com",
            "CASEWORK_CODEC_NAMESPACES": "prod, staging",
        }
    )
    assert access.configured and access.token is not None
    assert access.token.get_secret_value() == TOKEN
    assert access.namespaces == ["prod", "staging"]
    assert not CodecAccess.from_env({}).configured
    with pytest.raises(CodecAuthError, match=r"CASEWORK_CODEC_AUTH_TOKEN: .* at least 32"):
        CodecAccess.from_env({"CASEWORK_CODEC_AUTH_TOKEN": "short"})
    with pytest.raises(CodecAuthError, match="CASEWORK_CODEC_AUTH_TOKEN_FILE: cannot read"):
        CodecAccess.from_env({"CASEWORK_CODEC_AUTH_TOKEN_FILE": str(tmp_path / "missing")})


def _server(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CASEWORK_")
    } | {
        "CASEWORK_HOME": str(tmp_path),
        "CASEWORK_CODEC_KEYS": KeyRing.generate().model_dump_json(),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "casework.codec_server", "--port", "0", *args],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_without_credentials_it_serves_loopback_only_and_says_so(tmp_path: Path) -> None:
    exposed = _server(tmp_path, "--host", "0.0.0.0")
    _, stderr = exposed.communicate(timeout=60)
    assert exposed.returncode == 2
    assert "refusing to serve decrypted payloads on 0.0.0.0 without credentials" in stderr

    loopback = _server(tmp_path, "--host", "127.0.0.1")
    try:
        assert loopback.stderr is not None
        first = loopback.stderr.readline()
        assert "loopback only, no credentials (embedded stack)" in first, first
    finally:
        loopback.terminate()
        loopback.wait(timeout=30)

    guarded = _server(tmp_path, "--host", "0.0.0.0", CASEWORK_CODEC_AUTH_TOKEN=TOKEN)
    try:
        assert guarded.stderr is not None
        first = guarded.stderr.readline()
        assert "authenticated (codec token), namespaces default" in first, first
        assert TOKEN not in first
    finally:
        guarded.terminate()
        guarded.wait(timeout=30)


def test_the_compose_codec_server_is_authenticated_for_the_web_ui_it_serves() -> None:
    compose = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
    service = compose["services"]["codec-server"]
    given = {"CASEWORK_CODEC_AUTH_TOKEN": TOKEN, "CASEWORK_CODEC_KEYS": "{}"}

    def substituted(value: str) -> str:
        # ${NAME:?message} must be given; ${NAME:-default} falls back to its default.
        def one(match: re.Match[str]) -> str:
            name, kind, rest = match.groups()
            return given[name] if kind == ":?" else given.get(name, rest)

        return re.sub(r"\$\{(\w+)(:\?|:-)([^}]*)\}", one, value)

    environment = {name: substituted(str(value)) for name, value in service["environment"].items()}
    access = CodecAccess.from_env(environment)
    assert access.configured and access.namespaces == ["default"]
    assert "${CASEWORK_CODEC_AUTH_TOKEN:?" in service["environment"]["CASEWORK_CODEC_AUTH_TOKEN"]
    ui = compose["services"]["temporal-ui"]
    port = ui["ports"][0].rsplit(":", 2)[1]
    assert environment["CASEWORK_CODEC_ALLOWED_ORIGINS"] == f"http://localhost:{port}"
    assert ui["environment"]["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith(":8789")
