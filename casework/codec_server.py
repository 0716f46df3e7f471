"""The codec server: lets the Temporal Web UI (and ``temporal`` CLI) show decrypted payloads.

It speaks Temporal's remote codec protocol (``POST /encode`` and ``POST /decode`` with
``{"payloads": [...]}`` in protobuf JSON) using the same key ring as clients and workers. Whoever
can reach it can read payloads, so run it where only people who may hold the key can: the
embedded stack binds it to loopback; on a real cluster put it behind your single sign-on.

Run it with ``python -m casework.codec_server --port 8789``; ``casework up`` starts it and points
the dev server's Web UI at it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from casework.codec import CodecKeyError, EncryptionCodec, KeyRing, load_key_ring
from casework.config import DEFAULT_CODEC_PORT, Settings


def create_codec_app(
    ring: KeyRing, allowed_origins: list[str], home: Path | None = None
) -> FastAPI:
    """``allowed_origins``: the Web UI's origins, whose browsers call this server directly.
    ``home``: the casework home whose stack this server serves, which its health check names
    so a client that found another home can say where the stack's is."""
    codec = EncryptionCodec(ring)
    app = FastAPI(title="casework codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed_origins,
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        allow_credentials=True,
    )

    def parse(body: dict[str, Any]) -> list[Payload]:
        try:
            return list(json_format.ParseDict(body, Payloads()).payloads)
        except json_format.ParseError as error:
            raise HTTPException(400, f"body must be {{'payloads': [...]}}: {error}") from error

    def render(payloads: list[Payload]) -> dict[str, Any]:
        return json_format.MessageToDict(Payloads(payloads=payloads))

    @app.post("/encode")
    async def encode(body: dict[str, Any]) -> dict[str, Any]:
        return render(await codec.encode(parse(body)))

    @app.post("/decode")
    async def decode(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return render(await codec.decode(parse(body)))
        except CodecKeyError as error:
            raise HTTPException(422, str(error)) from error

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "current_key": ring.current} | ({"home": str(home)} if home else {})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_CODEC_PORT)
    parser.add_argument(
        "--allow-origin",
        action="append",
        help="a Web UI origin allowed to call (repeatable; default: the embedded Web UI)",
    )
    parser.add_argument("--state-dir", type=Path, help="where `casework up` keeps its key ring")
    args = parser.parse_args()
    settings = Settings.from_env()
    home = (args.state_dir or settings.state_dir).resolve()
    ring = load_key_ring(home)
    if ring is None:
        parser.error(
            "no codec key ring: set CASEWORK_CODEC_KEYS_FILE or CASEWORK_CODEC_KEYS "
            "(see casework.codec)"
        )
    origins = args.allow_origin or [
        settings.ui_url,
        settings.ui_url.replace("localhost", "127.0.0.1"),
    ]
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        create_codec_app(ring, origins, home), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
