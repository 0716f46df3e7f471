"""A scripted OpenAI-compatible chat-completions server on loopback, for tests and harnesses.

litellm is pointed at it exactly as at a real provider (``model="openai/scripted-model"``,
``api_base=server.base_url``, ``api_key="test-key"``), so tests exercise the real HTTP path,
litellm's response parsing and its exception mapping, with no internet and no mocks.

    with scripted_llm_server() as server:
        server.enqueue(ScriptedReply(content='{"ok": true}'), ScriptedReply(status=429))
        ...
        assert server.requests[0]["model"] == "scripted-model"

``ScriptedModel`` scripts it one case at a time, by a value of the case data each request
carries (``case_data``), turn by turn.
"""

from __future__ import annotations

import json
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

from casework.agents.messages import CASE_DATA, DATA_BLOCK

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


# -- reading a request --------------------------------------------------------------------------


def case_data(chat_request: dict[str, Any]) -> dict[str, Any] | None:
    """The ``<case_data>`` block of a chat request's user message, parsed; None if it has none."""
    for message in chat_request.get("messages", []):
        if message.get("role") != "user":
            continue
        for block in DATA_BLOCK.finditer(message["content"]):
            if block.group(1) == CASE_DATA:
                data: dict[str, Any] = json.loads(block.group(2))
                return data
    return None


def case_value(chat_request: dict[str, Any], *path: str) -> str | None:
    """The value at ``path`` in a chat request's case data (``"invoice", "invoice_id"``), if
    there is one."""
    value: Any = case_data(chat_request)
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return None if value is None else str(value)


def turn_of(chat_request: dict[str, Any]) -> int:
    """Which model call of its conversation a request is (0-based): the assistant turns before
    it. A retried call is the same turn, so it is answered the same way."""
    messages = chat_request.get("messages", [])
    return sum(1 for message in messages if message.get("role") == "assistant")


# -- scripting one case at a time ---------------------------------------------------------------

Turn = ScriptedReply | Callable[[dict[str, Any]], ScriptedReply]
"""A model turn: a reply, or what answers the request (to hold a call in flight, say)."""


class ScriptedModel:
    """Scripts the model behind a server one case at a time, turn by turn.

    A request belongs to the case named by the value at ``path`` in its case data (the invoice,
    the ticket, the document ...), so one test's leftover script can never be served to another
    test's case; its turn is ``turn_of``, so a retried model call gets the reply its first
    attempt got. A request nobody scripted is answered 400, which is not retried: it fails fast
    and visibly instead.
    """

    def __init__(self, server: ScriptedLlmServer, *path: str) -> None:
        self.server = server
        self.path = path
        self._scripts: dict[str, tuple[list[Turn], Turn | None]] = {}
        # The server answers on its own threads while the test scripts and reads.
        self._lock = threading.Lock()
        server.responder = self._answer

    def key_of(self, chat_request: dict[str, Any]) -> str | None:
        return case_value(chat_request, *self.path)

    def script(self, key: str, *turns: Turn, then: Turn | None = None) -> None:
        """Turn ``n`` answers the case's ``n``-th model call; ``then`` every later one."""
        with self._lock:
            self._scripts[key] = (list(turns), then)

    def answer(self, key: str, reply: Turn) -> None:
        """``reply`` answers every model call of the case."""
        self.script(key, then=reply)

    def requests_for(self, key: str) -> list[dict[str, Any]]:
        return [body for body in list(self.server.requests) if self.key_of(body) == key]

    def _answer(self, body: dict[str, Any]) -> ScriptedReply:
        key = self.key_of(body)
        with self._lock:
            turns, then = self._scripts.get(key or "", ([], None))
        index = turn_of(body)
        turn = turns[index] if index < len(turns) else then
        if turn is None:
            message = f"no scripted turn {index} for {'.'.join(self.path)} {key!r}"
            return ScriptedReply(status=400, error_body={"error": {"message": message}})
        return turn(body) if callable(turn) else turn


def gated(reply: ScriptedReply, release: threading.Event, timeout: float = 60.0) -> Turn:
    """A turn that answers only once ``release`` is set: holds a model call in flight.

    The server answers each request on a thread of its own, so this blocks nothing else."""

    def turn(body: dict[str, Any]) -> ScriptedReply:
        if not release.wait(timeout):
            return ScriptedReply(status=503)
        return reply

    return turn
