"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

litellm is pointed at it exactly as at a real provider (``model="openai/scripted-model"``,
``api_base=server.base_url``, ``api_key="test-key"``), so tests exercise the real HTTP path,
litellm's response parsing and its exception mapping, with no internet and no mocks.

    with scripted_llm_server() as server:
        server.enqueue(ScriptedReply(content='{"ok": true}'), ScriptedReply(status=429))
        ...
        assert server.requests[0]["model"] == "scripted-model"
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

SCRIPTED_MODEL = "openai/scripted-model"
SCRIPTED_API_KEY = "test-key"


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer: a completion (status 200) or an OpenAI-style error."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int = 200
    error_body: dict[str, Any] | None = None
    """Body of a non-200 answer; defaults to ``{"error": {"message", "type", "code"}}``."""
    prompt_tokens: int = 11
    completion_tokens: int = 7


Responder = Callable[[dict[str, Any]], ScriptedReply]


class ScriptedLlmServer:
    """Answers chat completions from a FIFO script, then from ``responder`` if one is set."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.responder: Responder | None = None
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self._script: deque[ScriptedReply] = deque()
        # The server answers on its own thread while the test thread enqueues and reads.
        self._lock = threading.Lock()

    def enqueue(self, *replies: ScriptedReply) -> None:
        with self._lock:
            self._script.extend(replies)

    def answer(
        self, body: dict[str, Any], authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        with self._lock:
            self.requests.append(body)
            self.authorizations.append(authorization)
            reply = self._script.popleft() if self._script else None
            responder = self.responder
        if reply is None and responder is not None:
            reply = responder(body)
        if reply is None:
            return _error(500, "scripted LLM server: the script ran out and no responder is set")
        if reply.status != 200:
            if reply.error_body is not None:
                return JSONResponse(reply.error_body, status_code=reply.status)
            return _error(reply.status, f"scripted HTTP {reply.status}")
        return JSONResponse(_completion(body.get("model", "scripted-model"), reply))


def _error(status: int, message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "scripted_error", "code": str(status)}}
    return JSONResponse(body, status_code=status)


def _completion(model: str, reply: ScriptedReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _app(server: ScriptedLlmServer) -> FastAPI:
    app = FastAPI()
    # ``answer`` is a sync handler, so FastAPI runs it in its thread pool: a slow responder (e.g.
    # one simulating a provider timeout) does not stall the server's event loop.
    for path in ("/v1/chat/completions", "/chat/completions"):
        app.add_api_route(path, server.answer, methods=["POST"])
    return app


@contextmanager
def scripted_llm_server(startup_timeout: float = 10.0) -> Iterator[ScriptedLlmServer]:
    """Run a scripted server on a free loopback port for the duration of the block."""
    # Binding the socket ourselves gives us the free port before uvicorn starts.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = ScriptedLlmServer(f"http://127.0.0.1:{port}/v1")
    uv = uvicorn.Server(uvicorn.Config(_app(server), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not uv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("scripted LLM server did not start")
            time.sleep(0.01)
        yield server
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()
