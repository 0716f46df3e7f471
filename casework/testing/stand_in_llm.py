"""A responder for the scripted model server that answers as casework's offline stand-ins would.

The stand-ins (``casework.agents.*``) normally answer inside the LLM activity from the unmasked
case data. Here they answer over HTTP from the request the server actually received, which is
masked: a value they repeat comes back as its masking token (``[[IBAN:...]]``), which the activity
unmasks as it would a real model's. So a whole demo can run on the real model path and every
process still reaches the outcome it reaches offline.

    responder = StandInResponder([INVOICE_PROPOSAL, TRIAGE_PROPOSAL, ...])
    server.responder = responder
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from casework.agents import registry
from casework.agents.messages import ChatMessage, ToolCall
from casework.agents.registry import AgentOutput, schema_text
from casework.agents.tools import FINAL_ANSWER
from casework.testing.scripted_llm import ScriptedReply, case_data


@dataclass(frozen=True)
class Answer:
    """One request the responder answered, and how."""

    output: str
    """The registered agent output the request asked for."""
    body: dict[str, Any]
    reply: ScriptedReply


class StandInResponder:
    """Answers requests for ``outputs`` (registered agent output names) as their stand-ins would.

    A propose request is recognised by the output's JSON schema in its system prompt, a chat
    request by its ``final_answer`` tool's parameters. A request for no known output is refused
    with a 400 (which the activity does not retry) and kept in ``unmatched``.
    """

    def __init__(self, outputs: Iterable[str]) -> None:
        self._outputs = [registry.get(name) for name in outputs]
        self.answers: list[Answer] = []
        self.unmatched: list[dict[str, Any]] = []
        # The server calls the responder from its thread pool, one thread per request.
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        output = self._output_of(body)
        if output is None:
            with self._lock:
                self.unmatched.append(body)
            return _refusal("no stand-in output matches this request")
        if body.get("tools"):
            if output.stand_in_turn is None:
                return _refusal(f"{output.name} has no stand-in for tool calling")
            messages = [_chat_message(message) for message in body["messages"]]
            turn = output.stand_in_turn(messages)
            reply = ScriptedReply(
                content=turn.content,
                tool_calls=[call.wire() for call in turn.tool_calls] or None,
            )
        else:
            context = case_data(body)
            if context is None:
                return _refusal("the request has no <case_data> block")
            reply = ScriptedReply(content=output.stand_in(context).model_dump_json())
        with self._lock:
            self.answers.append(Answer(output=output.name, body=body, reply=reply))
        return reply

    def _output_of(self, body: dict[str, Any]) -> AgentOutput | None:
        if tools := body.get("tools"):
            schemas = [
                tool["function"]["parameters"]
                for tool in tools
                if tool["function"]["name"] == FINAL_ANSWER
            ]
            matches = [o for o in self._outputs if [json.loads(schema_text(o.model))] == schemas]
        else:
            system = "".join(
                _text(message.get("content"))
                for message in body.get("messages", [])
                if message.get("role") == "system"
            )
            matches = [o for o in self._outputs if schema_text(o.model) in system]
        return matches[0] if len(matches) == 1 else None


def _text(content: Any) -> str:
    """A message's content as text: OpenAI allows a string or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _chat_message(wire: dict[str, Any]) -> ChatMessage:
    """An OpenAI chat message as casework's ChatMessage, the shape stand-ins read."""
    content = wire.get("content")
    return ChatMessage(
        role=wire["role"],
        content=None if content is None else _text(content),
        tool_calls=[
            ToolCall(
                id=call["id"],
                name=call["function"]["name"],
                arguments=call["function"]["arguments"],
            )
            for call in wire.get("tool_calls") or []
        ],
        tool_call_id=wire.get("tool_call_id"),
    )


def _refusal(message: str) -> ScriptedReply:
    return ScriptedReply(
        status=400,
        error_body={"error": {"message": message, "type": "invalid_request_error", "code": "400"}},
    )
