"""An agent, declared once: who it is, what it answers, its instructions, its offline stand-in.

A process declares its agents beside its systems (``activities/agents/<process>.py``) and a case
consults one with ``CaseWorkflow.consult``. Declaring a spec registers its output under its
stable name (``casework.agents.registry``), which is what the LLM activity validates answers
against; discovery imports every declaring module before the worker starts. Pure data: safe in
workflow code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from casework.agents.messages import AgentRequest, ChatMessage
from casework.agents.registry import AgentOutput, register
from casework.governance.models import AgentSettings


class Proposal(Protocol):
    """What every agent answer offers the case that consults it."""

    confidence: float

    def headline(self) -> str:
        """What the agent proposes, for the audit trail: ``recommends approve with ...``."""
        ...

    def recommended_action(self) -> str | None:
        """What the proposal means for a human task that may follow: ``approve`` when approving
        it does what the agent proposes, ``reject`` when the agent advises against what
        approval would do, None when neither reading fits (see ``record_proposal``)."""
        ...


AnswerT = TypeVar("AnswerT", bound=BaseModel)


@dataclass(frozen=True)
class AgentSpec(Generic[AnswerT]):
    name: str
    """Who speaks (``invoice_analyst``): the trail, the logs, the policy's ``agents`` section."""
    output: str
    """The registered output name answers are validated against; stable, as stored histories
    name it."""
    model: type[AnswerT]
    system_prompt: str
    """Trusted instructions."""
    task: str
    """Trusted instructions for one call; a case may pass its own."""
    stand_in: Callable[[dict[str, Any]], AnswerT]
    """The offline stand-in's answer from the case context: it never pretends to be a model."""
    stand_in_turn: Callable[[list[ChatMessage]], ChatMessage] | None = None
    """For an agent in a tool-calling region: the stand-in's next turn."""
    description: str = ""
    """What a coordinator is told this agent does, when it is offered as a specialist (default:
    the first sentence of its system prompt)."""

    def __post_init__(self) -> None:
        register(
            AgentOutput(
                name=self.output,
                model=self.model,
                stand_in=self.stand_in,
                stand_in_turn=self.stand_in_turn,
            )
        )

    def describe(self) -> str:
        return self.description or self.system_prompt.split(". ")[0].rstrip(".") + "."

    def settings_in(self, agents: dict[str, AgentSettings]) -> AgentSettings:
        """This agent's settings in a policy's ``agents`` section (defaults when absent)."""
        return agents.get(self.name, AgentSettings())

    def request(
        self, context: dict[str, Any], settings: AgentSettings, task: str | None = None
    ) -> AgentRequest:
        return AgentRequest(
            agent=self.name,
            output=self.output,
            system_prompt=self.system_prompt,
            task=task or self.task,
            context=context,
            model=settings.model,
            fallback_models=settings.fallback_models,
            max_tokens=settings.max_tokens,
        )
