"""A model provider that misbehaves on purpose, on top of ``casework.testing.scripted_llm``.

litellm in the worker talks to it over HTTP as to any OpenAI-compatible provider. Each request
is matched to its case (the case drivers know how to read a case out of a request); the case's
driver says what a good answer is, and the fault planned for the case, if any, replaces it:

- 429, 500, a timeout (answered only after the worker's model timeout has passed), truncated
  output, malformed output: on the first attempt of the case's first model call only, so
  Temporal's retry (or, in an agent region, the next turn) recovers;
- the primary model stays down: every call to it answers 503, the fallback model named in the
  policy answers well, so the case proceeds on the fallback;
- the provider stays down: primary and fallback both answer 503 for every attempt, so the agent
  gives up and the case goes to a person with the reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import Any

from casework.testing.scripted_llm import (
    SCRIPTED_MODEL,
    ScriptedLlmServer,
    ScriptedReply,
    turn_of,
)

FALLBACK_MODEL = "openai/scripted-fallback"
PRIMARY_WIRE_NAME = SCRIPTED_MODEL.split("/", 1)[1]
FALLBACK_WIRE_NAME = FALLBACK_MODEL.split("/", 1)[1]


class ModelFault(StrEnum):
    RATE_LIMITED = "model 429"
    SERVER_ERROR = "model 500"
    TIMEOUT = "model timeout"
    TRUNCATED = "model truncated output"
    MALFORMED = "model malformed output"
    PRIMARY_DOWN = "model down, fallback takes over"
    PROVIDER_DOWN = "model and fallback down"


ONE_SHOT = frozenset(
    {
        ModelFault.RATE_LIMITED,
        ModelFault.SERVER_ERROR,
        ModelFault.TIMEOUT,
        ModelFault.TRUNCATED,
        ModelFault.MALFORMED,
    }
)

GoodReplies = Callable[[dict[str, Any]], tuple[str, ScriptedReply] | None]
"""For a chat request: the case it belongs to and what a well-behaved model would answer."""


def truncated(reply: ScriptedReply) -> ScriptedReply:
    """The answer cut off half-way, as when a provider stops at its token limit."""
    if reply.tool_calls:
        calls = []
        for call in reply.tool_calls:
            arguments = call["function"]["arguments"]
            cut = call["function"] | {"arguments": arguments[: max(1, len(arguments) // 2)]}
            calls.append(call | {"function": cut})
        return replace(reply, tool_calls=calls)
    text = reply.content or ""
    return replace(reply, content=text[: max(1, len(text) // 2)])


MALFORMED = ScriptedReply(
    content="Certainly! Based on the case data I would {recommend: approve, confidence: high"
)


class FaultyModel:
    def __init__(
        self, server: ScriptedLlmServer, good: GoodReplies, *, timeout_seconds: float
    ) -> None:
        self.server = server
        self._good = good
        self._timeout = timeout_seconds
        self.faults: dict[str, ModelFault] = {}
        """The fault planned for each case (by case ID); cases not named get good answers."""
        self.served: Counter[ModelFault] = Counter()
        """How many answers each fault actually replaced."""
        self.requests = 0
        self._attempts: Counter[tuple[str, int]] = Counter()
        self._in_flight = 0
        self._lock = threading.Lock()
        server.responder = self._answer

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def _answer(self, body: dict[str, Any]) -> ScriptedReply:
        with self._lock:
            self._in_flight += 1
            self.requests += 1
        try:
            return self._reply(body)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _reply(self, body: dict[str, Any]) -> ScriptedReply:
        found = self._good(body)
        if found is None:
            # 400 is non-retryable: a request nobody scripted fails fast and visibly.
            return ScriptedReply(
                status=400, error_body={"error": {"message": "no case in this request"}}
            )
        case_id, good = found
        turn = turn_of(body)
        with self._lock:
            attempt = self._attempts[(case_id, turn)]
            self._attempts[(case_id, turn)] += 1
        fault = self.faults.get(case_id)
        model = body.get("model")
        if fault is ModelFault.PROVIDER_DOWN or (
            fault is ModelFault.PRIMARY_DOWN and model == PRIMARY_WIRE_NAME
        ):
            self._count(fault)
            return ScriptedReply(status=503)
        if fault not in ONE_SHOT or turn != 0 or attempt != 0:
            return good
        self._count(fault)
        match fault:
            case ModelFault.RATE_LIMITED:
                return ScriptedReply(status=429)
            case ModelFault.SERVER_ERROR:
                return ScriptedReply(status=500)
            case ModelFault.TIMEOUT:
                # The server answers each request on a thread of its own: only this one waits.
                time.sleep(self._timeout + 2)
                return good
            case ModelFault.TRUNCATED:
                return truncated(good)
            case _:
                return MALFORMED

    def _count(self, fault: ModelFault) -> None:
        with self._lock:
            self.served[fault] += 1
