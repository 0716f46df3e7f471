"""Registry of agent output types, looked up by name inside the LLM activity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class AgentOutput:
    name: str
    model: type[BaseModel]
    stand_in: Callable[[dict[str, Any]], BaseModel]
    """Deterministic answer computed from the case context, used when no provider is configured."""


_OUTPUTS: dict[str, AgentOutput] = {}


def register(output: AgentOutput) -> AgentOutput:
    _OUTPUTS[output.name] = output
    return output


def get(name: str) -> AgentOutput:
    try:
        return _OUTPUTS[name]
    except KeyError:
        raise KeyError(f"unknown agent output {name!r}; known: {sorted(_OUTPUTS)}") from None
