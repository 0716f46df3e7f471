"""Registry of agent output types, looked up by name inside the LLM activity."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from casework.agents.messages import ChatMessage


@dataclass(frozen=True)
class AgentOutput:
    name: str
    model: type[BaseModel]
    stand_in: Callable[[dict[str, Any]], BaseModel]
    """Deterministic answer computed from the case context, used when no provider is configured."""
    stand_in_turn: Callable[[list[ChatMessage]], ChatMessage] | None = None
    """For tool-calling agents: the stand-in's next turn given the conversation so far."""


@functools.cache
def schema_text(model: type[BaseModel]) -> str:
    """The JSON schema an agent's answer must match, as the text it is shown: pydantic builds a
    schema anew on every call (about 2 ms), and a model's never changes."""
    return json.dumps(model.model_json_schema())


_OUTPUTS: dict[str, AgentOutput] = {}


def register(output: AgentOutput) -> AgentOutput:
    """Make ``output`` known to the LLM activity; one name, one model."""
    existing = _OUTPUTS.get(output.name)
    if existing is not None and existing.model is not output.model:
        raise ValueError(
            f"agent output {output.name!r} is registered twice, as {existing.model.__name__} "
            f"and as {output.model.__name__}"
        )
    _OUTPUTS[output.name] = output
    return output


def get(name: str) -> AgentOutput:
    try:
        return _OUTPUTS[name]
    except KeyError:
        raise KeyError(f"unknown agent output {name!r}; known: {sorted(_OUTPUTS)}") from None
