"""The codec server: lets the Temporal Web UI (and ``temporal`` CLI) show decrypted payloads.

It speaks Temporal's remote codec protocol (``POST /encode`` and ``POST /decode`` with
``{"payloads": [...]}`` in protobuf JSON) using the same key ring as clients and workers.
Whoever it decodes for reads cases, so it runs in one of two ways:

- **Loopback, no credentials** (the embedded stack): bound to 127.0.0.1 only, for the people on
  this machine, who can read the key ring anyway. It says so when it starts, and refuses to bind
  anywhere else without credentials configured.
- **Authenticated** (any deployment): every ``/encode`` and ``/decode`` needs
  ``Authorization: Bearer ...`` carrying either the configured shared secret (compared in
  constant time; for the ``temporal`` CLI's ``--codec-auth``) or an access token issued by the
  configured OIDC issuer, verified against the issuer's published keys (JWKS): the Web UI
  forwards its signed-in user's token with ``TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true``. The
  ``X-Namespace`` header must name an allowed namespace.

In both, a browser request from an origin other than the allowed Web UI origins is refused, and
each decode is logged with who asked, for which namespace, how many payloads and under which
key IDs: never a payload.

Run it with ``python -m casework.codec_server --port 8789``; ``casework up`` starts it and points
the dev server's Web UI at it. Settings (environment): ``CASEWORK_CODEC_AUTH_TOKEN`` (or
``CASEWORK_CODEC_AUTH_TOKEN_FILE``), ``CASEWORK_CODEC_OIDC_ISSUER``,
``CASEWORK_CODEC_OIDC_AUDIENCE``, ``CASEWORK_CODEC_OIDC_JWKS_URL`` (default: the issuer's
discovery document), ``CASEWORK_CODEC_NAMESPACES`` (comma-separated, default ``default``),
``CASEWORK_CODEC_ALLOWED_ORIGINS`` (comma-separated; or ``--allow-origin``).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from pydantic import BaseModel, SecretStr, field_validator
from temporalio.api.common.v1 import Payload, Payloads

from casework.codec import CodecKeyError, EncryptionCodec, KeyRing, load_key_ring
from casework.config import DEFAULT_CODEC_PORT, Settings

log = logging.getLogger("casework.codec_server")

MIN_TOKEN_LENGTH = 32
# Asymmetric algorithms only: a token signed with a shared (HS*) key proves nothing here.
OIDC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
# Claims that name a person, in the order an audit log wants them.
PRINCIPAL_CLAIMS = ("email", "preferred_username", "sub")


class CodecAuthError(ValueError):
    """The codec server's credential settings are unusable; the message names the setting."""


class CodecAccess(BaseModel):
    """Who may have payloads encoded and decoded: the settings of an authenticated server."""

    token: SecretStr | None = None
    """A shared secret sent as ``Authorization: Bearer <token>`` (CLI, scripts)."""
    oidc_issuer: str | None = None
    """Access tokens from this issuer (``iss``) are accepted once verified with its keys."""
    oidc_audience: str | None = None
    """When set, a token's ``aud`` must include it."""
    oidc_jwks_url: str | None = None
    """The issuer's keys; default: ``jwks_uri`` from its ``/.well-known/openid-configuration``."""
    namespaces: list[str] = ["default"]
    """The ``X-Namespace`` values this server decodes for."""

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return token

    @field_validator("namespaces")
    @classmethod
    def _some_namespace(cls, namespaces: list[str]) -> list[str]:
        if not namespaces:
            raise ValueError("name at least one namespace")
        return namespaces

    @property
    def configured(self) -> bool:
        return self.token is not None or self.oidc_issuer is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CodecAccess:
        """The settings from ``CASEWORK_CODEC_*`` variables; errors name the variable."""
        token = env.get("CASEWORK_CODEC_AUTH_TOKEN") or None
        token_file = env.get("CASEWORK_CODEC_AUTH_TOKEN_FILE")
        if token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as error:
                raise CodecAuthError(
                    f"CASEWORK_CODEC_AUTH_TOKEN_FILE: cannot read {token_file}: {error.strerror}"
                ) from error
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            variable = "CASEWORK_CODEC_AUTH_TOKEN" + ("_FILE" if token_file else "")
            raise CodecAuthError(
                f"{variable}: the codec token must be at least {MIN_TOKEN_LENGTH} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        namespaces = [
            name.strip()
            for name in env.get("CASEWORK_CODEC_NAMESPACES", "default").split(",")
            if name.strip()
        ]
        if not namespaces:
            raise CodecAuthError("CASEWORK_CODEC_NAMESPACES: name at least one namespace")
        return cls(
            token=SecretStr(token) if token else None,
            oidc_issuer=env.get("CASEWORK_CODEC_OIDC_ISSUER") or None,
            oidc_audience=env.get("CASEWORK_CODEC_OIDC_AUDIENCE") or None,
            oidc_jwks_url=env.get("CASEWORK_CODEC_OIDC_JWKS_URL") or None,
            namespaces=namespaces,
        )


class Caller(BaseModel):
    """Who a request was accepted for: what the decode log names."""

    who: str
    via: str
    namespace: str | None = None
    origin: str | None = None


class OidcVerifier:
    """Verifies access tokens with the issuer's published keys, fetched once and cached by
    PyJWT's JWKS client (refetched when a token names a key it has not seen: key rotation)."""

    def __init__(self, issuer: str, audience: str | None, jwks_url: str | None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self._client: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()

    async def _jwks(self) -> jwt.PyJWKClient:
        async with self._lock:
            if self._client is None:
                url = self.jwks_url or await self._discover()
                self._client = jwt.PyJWKClient(url, cache_keys=True)
            return self._client

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(url)
            response.raise_for_status()
            return str(response.json()["jwks_uri"])

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``jwt.PyJWTError`` saying why it is not accepted."""
        client = await self._jwks()
        # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
        key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
        return jwt.decode(
            token,
            key.key,
            algorithms=OIDC_ALGORITHMS,
            issuer=self.issuer,
            audience=self.audience,
            options={"require": ["exp", "iss"], "verify_aud": self.audience is not None},
        )


def _refuse(status: int, reason: str, request: Request) -> HTTPException:
    log.warning(
        "codec %s refused (%s): from %s, origin %s, namespace %s",
        request.url.path,
        reason,
        request.client.host if request.client else "?",
        request.headers.get("origin", "-"),
        request.headers.get("x-namespace", "-"),
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, reason, headers=headers)


def create_codec_app(
    ring: KeyRing,
    allowed_origins: list[str],
    home: Path | None = None,
    access: CodecAccess | None = None,
    temporal_address: str | None = None,
) -> FastAPI:
    """``allowed_origins``: the Web UI's origins, whose browsers call this server directly.
    ``home``: the casework home whose stack this server serves, which its health check names
    so a client that found another home can say where the stack's is; ``temporal_address``:
    that stack's Temporal server, also named there, so a client talking to another server
    knows this one is not its stack's. ``access``: the
    credentials every call needs; None only for the embedded stack's loopback server
    (:func:`main` refuses to bind elsewhere without them)."""
    codec = EncryptionCodec(ring)
    oidc = (
        OidcVerifier(access.oidc_issuer, access.oidc_audience, access.oidc_jwks_url)
        if access is not None and access.oidc_issuer
        else None
    )
    app = FastAPI(title="casework codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed_origins,
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        allow_credentials=True,
    )

    async def caller(request: Request) -> Caller:
        origin = request.headers.get("origin")
        # CORS headers only stop a browser reading the answer; refuse the decode itself.
        if origin is not None and origin not in allowed_origins:
            raise _refuse(403, f"origin {origin} is not allowed", request)
        if access is None:
            return Caller(who="loopback", via="loopback", origin=origin)
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _refuse(401, "credentials required: Authorization: Bearer <token>", request)
        who: Caller | None = None
        if access.token is not None and hmac.compare_digest(
            credential.encode(), access.token.get_secret_value().encode()
        ):
            who = Caller(who="codec token", via="token")
        elif oidc is not None:
            try:
                claims = await oidc.verify(credential)
            except (jwt.PyJWTError, httpx.HTTPError) as error:
                raise _refuse(401, f"access token not accepted: {error}", request) from error
            name = next((str(claims[c]) for c in PRINCIPAL_CLAIMS if claims.get(c)), "?")
            who = Caller(who=name, via="oidc")
        if who is None:
            raise _refuse(401, "credentials not accepted", request)
        namespace = request.headers.get("x-namespace")
        if namespace not in access.namespaces:
            raise _refuse(
                403,
                f"namespace {namespace!r} is not served here"
                if namespace
                else "the X-Namespace header is required",
                request,
            )
        return who.model_copy(update={"namespace": namespace, "origin": origin})

    def parse(body: dict[str, Any]) -> list[Payload]:
        try:
            return list(json_format.ParseDict(body, Payloads()).payloads)
        except json_format.ParseError as error:
            raise HTTPException(400, f"body must be {{'payloads': [...]}}: {error}") from error

    def render(payloads: list[Payload]) -> dict[str, Any]:
        return json_format.MessageToDict(Payloads(payloads=payloads))

    @app.post("/encode")
    async def encode(body: dict[str, Any], request: Request) -> dict[str, Any]:
        who = await caller(request)
        payloads = parse(body)
        log.info("encode for %s (%s): %d payloads", who.who, who.via, len(payloads))
        return render(await codec.encode(payloads))

    @app.post("/decode")
    async def decode(body: dict[str, Any], request: Request) -> dict[str, Any]:
        who = await caller(request)
        payloads = parse(body)
        key_ids = sorted({p.metadata["encryption-key-id"].decode() for p in payloads if _keyed(p)})
        log.info(
            "decode for %s (%s): namespace %s, origin %s, %d payloads, keys %s",
            who.who,
            who.via,
            who.namespace or "-",
            who.origin or "-",
            len(payloads),
            ",".join(key_ids) or "-",
        )
        try:
            return render(await codec.decode(payloads))
        except CodecKeyError as error:
            raise HTTPException(422, str(error)) from error

    @app.get("/health")
    def health() -> dict[str, str]:
        return (
            {"status": "ok", "current_key": ring.current}
            | ({"home": str(home)} if home else {})
            | ({"temporal_address": temporal_address} if temporal_address else {})
        )

    return app


def _keyed(payload: Payload) -> bool:
    return "encryption-key-id" in payload.metadata


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_CODEC_PORT)
    parser.add_argument(
        "--allow-origin",
        action="append",
        help="a Web UI origin allowed to call (repeatable; default: "
        "CASEWORK_CODEC_ALLOWED_ORIGINS, else the embedded Web UI)",
    )
    parser.add_argument("--state-dir", type=Path, help="where `casework up` keeps its key ring")
    parser.add_argument(
        "--temporal-address", help="the Temporal server whose payloads this server decodes"
    )
    args = parser.parse_args()
    settings = Settings.from_env()
    try:
        access = CodecAccess.from_env(os.environ)
    except CodecAuthError as error:
        parser.error(str(error))
    home = (args.state_dir or settings.state_dir).resolve()
    ring = load_key_ring(home)
    if ring is None:
        parser.error(
            "no codec key ring: set CASEWORK_CODEC_KEYS_FILE or CASEWORK_CODEC_KEYS "
            "(see casework.codec)"
        )
    configured_origins = [
        origin.strip()
        for origin in os.environ.get("CASEWORK_CODEC_ALLOWED_ORIGINS", "").split(",")
        if origin.strip()
    ]
    origins = (
        args.allow_origin
        or configured_origins
        or [settings.ui_url, settings.ui_url.replace("localhost", "127.0.0.1")]
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if access.configured:
        methods = ["codec token"] * (access.token is not None) + (
            [f"OIDC access tokens from {access.oidc_issuer}"] if access.oidc_issuer else []
        )
        log.info(
            "codec server on %s:%d: authenticated (%s), namespaces %s, origins %s",
            args.host,
            args.port,
            " or ".join(methods),
            ",".join(access.namespaces),
            ",".join(origins),
        )
    elif is_loopback(args.host):
        log.info(
            "codec server on %s:%d: loopback only, no credentials (embedded stack); anyone on "
            "this machine can decode. Elsewhere set CASEWORK_CODEC_AUTH_TOKEN or "
            "CASEWORK_CODEC_OIDC_ISSUER",
            args.host,
            args.port,
        )
    else:
        parser.error(
            f"refusing to serve decrypted payloads on {args.host} without credentials: set "
            "CASEWORK_CODEC_AUTH_TOKEN (or _FILE) and/or CASEWORK_CODEC_OIDC_ISSUER "
            "(see docs/deployment.md), or bind to 127.0.0.1"
        )
    uvicorn.run(
        create_codec_app(
            ring,
            origins,
            home,
            access if access.configured else None,
            temporal_address=args.temporal_address,
        ),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
