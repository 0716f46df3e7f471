"""The base of a system of record's activities, and the mark that offers one to agents.

A system module in the catalogue's ``activities`` package defines one class on this base. The
worker builds it once, with the HTTP client every system shares, and registers each of its
``@activity.defn`` methods; a method also marked ``@read_only_tool`` may be offered to an agent
(``casework.agents.tools``). Writes are never marked: a workflow writes after its policy decides.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, get_type_hints

import httpx
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_NAME = "__casework_tool_name__"
_TOOL_DESCRIPTION = "__casework_tool_description__"


def read_only_tool(
    fn: F | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Offer an activity method to agents as a read-only tool.

    Put it above ``@activity.defn``. The model calls the tool ``name`` (default: the activity
    name's part after its system, ``itsm.get_ticket`` -> ``get_ticket``); the method's argument
    model is the tool's schema, and ``description`` (default: the argument model's docstring)
    tells the model what it is for.
    """

    def mark(method: F) -> F:
        setattr(method, _TOOL_NAME, name or "")
        setattr(method, _TOOL_DESCRIPTION, description or "")
        return method

    return mark(fn) if fn is not None else mark


def activity_definition(fn: Callable[..., Any]) -> Any:
    return getattr(fn, "__temporal_activity_definition", None)


class SystemActivities:
    """A system of record's activities: one instance per worker, holding its HTTP client."""

    system: ClassVar[str] = ""
    """What the system is, for logs and listings (``ERP``, ``payments`` ...)."""
    of_record: ClassVar[bool] = True
    """False for activities about the worker's own surroundings (where a repository lives):
    they hold no business records, so they offer agents no lookups."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    def activity_methods(cls) -> list[Callable[..., Any]]:
        """The class's activity methods (unbound), by name."""
        return [
            member
            for _, member in inspect.getmembers(cls, inspect.isfunction)
            if activity_definition(member) is not None
        ]

    def activities(self) -> list[Callable[..., Any]]:
        """This instance's activities, bound, as a worker registers them."""
        return [getattr(self, method.__name__) for method in self.activity_methods()]

    @classmethod
    def read_only_tools(cls) -> list[tuple[str, str, type[BaseModel]]]:
        """``(tool name, activity name, argument model)`` for each method marked a tool."""
        tools = []
        for method in cls.activity_methods():
            if not hasattr(method, _TOOL_NAME):
                continue
            activity_name = activity_definition(method).name
            hints = get_type_hints(method)
            parameters = [p for p in inspect.signature(method).parameters if p != "self"]
            arguments = hints[parameters[0]]
            tool_name = getattr(method, _TOOL_NAME) or activity_name.split(".", 1)[-1]
            tools.append((tool_name, activity_name, arguments))
        return tools

    @classmethod
    def tool_description(cls, activity_name: str) -> str:
        """What ``@read_only_tool(description=...)`` says the tool is for; empty: the argument
        model's docstring says it."""
        for method in cls.activity_methods():
            if activity_definition(method).name == activity_name:
                return str(getattr(method, _TOOL_DESCRIPTION, ""))
        return ""
