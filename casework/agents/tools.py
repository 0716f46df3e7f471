"""Tools an agent may be given: read-only activities, plus two the agent region handles itself.

Only read-only tools are registered here: each system of record marks its lookups
(``casework.systems.base.read_only_tool``) and discovery registers them at start. Writes are made
by workflows after a policy decision, so no policy can hand an agent a write, whatever its
allowlist says.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from casework.agents.messages import ToolSchema

ASK_HUMAN = "ask_human"
FINAL_ANSWER = "final_answer"


@dataclass(frozen=True)
class Tool:
    name: str
    """What the model calls it: letters, digits and underscores, as providers require."""
    activity: str
    """The activity that runs it; each call is its own activity in the history."""
    arguments: type[BaseModel]
    summary: str = ""
    """What the model is told the tool is for; empty: the argument model's docstring."""

    @property
    def description(self) -> str:
        return " ".join((self.summary or self.arguments.__doc__ or self.name).split())

    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=self.name,
            description=self.description,
            parameters=self.arguments.model_json_schema(),
        )


READ_ONLY: dict[str, Tool] = {}
"""Every read-only tool the catalogue's systems offer, by the name the model calls it: filled when
the catalogue is discovered (``casework.catalogue``), before any workflow runs."""


def register_tool(tool: Tool) -> None:
    """Offer ``tool`` to agents whose policy allows it; two systems may not claim one name."""
    existing = READ_ONLY.get(tool.name)
    if existing is not None and existing.activity != tool.activity:
        raise ValueError(
            f"tool {tool.name!r} is offered by both {existing.activity} and {tool.activity}; "
            "give one a name of its own: @read_only_tool(name=...)"
        )
    READ_ONLY[tool.name] = tool


class AskHumanArguments(BaseModel):
    """Ask a person a question when the case cannot be decided from the data available. The
    answer comes back as this tool's result; it may take hours."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=5, max_length=1000, description="The question, self-contained."
    )


ASK_HUMAN_SCHEMA = ToolSchema(
    name=ASK_HUMAN,
    description=" ".join((AskHumanArguments.__doc__ or "").split()),
    parameters=AskHumanArguments.model_json_schema(),
)


def final_answer_schema(output: type[BaseModel]) -> ToolSchema:
    return ToolSchema(
        name=FINAL_ANSWER,
        description=(
            "Submit your final answer. Call this exactly once, when you are done; its arguments "
            "are checked against the schema and refused with the reasons if they do not match."
        ),
        parameters=output.model_json_schema(),
    )


HANDOFF_PREFIX = "handoff_to_"
"""A coordinator hands its whole task to agent ``x`` by calling the tool ``handoff_to_x``."""


class DelegationArguments(BaseModel):
    """What a coordinator writes when it asks a specialist, or hands its task over."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(
        min_length=5,
        max_length=4000,
        description="What you want from this agent, self-contained: it sees the same case data.",
    )


def delegation_schema(name: str, description: str) -> ToolSchema:
    return ToolSchema(
        name=name, description=description, parameters=DelegationArguments.model_json_schema()
    )
