"""How a process's agent is evaluated: declared once per process, beside its labelled cases.

An ``evals/<process>.py`` module declares an :class:`AgentEval` for each agent of the process:
how a labelled case's input becomes what the agent sees (built with the functions the workflow
uses), and how the policy routes the agent's answer (with the process's own rules in
``policies/``, never a copy). The framework finds the declarations at run time
(:func:`evaluations`), as it finds the rest of the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from casework.agents.spec import AgentSpec, AnswerT
from casework.catalogue import catalogue_packages
from casework.discovery import CatalogueError, import_package, import_packages
from casework.eval.cases import eval_packages
from casework.governance.models import McpServerSettings, PolicyModel, PolicyRef

PolicyT = TypeVar("PolicyT", bound=PolicyModel)


class SandboxRecord(BaseModel):
    """A record a tool-using agent may look up, created in the run's sandbox by a POST."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """The sandbox endpoint that creates it, e.g. ``/itsm/kb``."""
    body: dict[str, Any] | list[dict[str, Any]]
    """What is posted (a list for an endpoint that creates several, as ``/logs/entries``)."""


@dataclass(frozen=True)
class RouteQuestion(Generic[PolicyT, AnswerT]):
    """What the policy routes: one case, and the agent's answer to it."""

    input: dict[str, Any]
    """The case's input, defaults merged."""
    policy: PolicyT
    ref: PolicyRef
    answer: AnswerT | None
    """None when the agent gave no valid answer: the case then goes on without one, as a real
    case does."""
    records: list[SandboxRecord]
    """The records the run's sandbox holds for this case (the file's and the case's own); for a
    tool-using agent, as the sandbox answered their creation, with the IDs it gave them."""


@dataclass(frozen=True)
class AgentEval(Generic[PolicyT, AnswerT]):
    agent: AgentSpec[AnswerT]
    policy: type[PolicyT] | None = None
    """The process's policy model: its document supplies the agent's settings and the rules'
    parameters. None: default settings and no route (an agent with cases but no declaration)."""
    context: Callable[[dict[str, Any], PolicyT | None], dict[str, Any]] = field(
        default=lambda case_input, _policy: case_input
    )
    """A case's input as the agent sees it, built as the workflow builds it; by default the
    input is the context itself."""
    route: Callable[[RouteQuestion[PolicyT, AnswerT]], str] | None = None
    """The policy's route for an answer (or for none), named as the cases' labels name it."""
    task: Callable[[PolicyT], str] | None = None
    """The task the workflow passes, when it is not the agent's own."""
    tools: bool = False
    """The agent works in an agent region with read-only tools: it is run as a child workflow
    against a sandbox started for the run, with the policy's allowlist and budget."""
    seed: Callable[[dict[str, Any]], list[SandboxRecord]] = field(default=lambda _input: [])
    """Records a case adds to the sandbox before its agent runs (the ticket it triages)."""
    agents: tuple[AgentSpec[Any], ...] = ()
    """The agents the workflow declares for its region (``region_input``'s ``agents``): the
    specialists and handoffs the policy names for this agent run as child regions, as in a case."""
    mcp_servers: Callable[[dict[str, Any], PolicyT | None], dict[str, McpServerSettings]] = field(
        default=lambda _input, _policy: {}
    )
    """The MCP servers a tool-using agent gets for a case, as the workflow gives them (a git
    server confined to the case's repository); their allowed tools are the policy's."""
    facts: Callable[[RouteQuestion[PolicyT, AnswerT]], dict[str, Any]] | None = None
    """What the labels compare, for an answer that is free text around facts (a drafted review:
    which commit it blames, whether everything it cites is on record), derived from a valid
    answer; None: the answer's own fields."""

    @property
    def name(self) -> str:
        return self.agent.name


def _instances(modules: list[Any], kind: type) -> list[Any]:
    found: list[Any] = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, kind) and not any(value is seen for seen in found):
                found.append(value)
    return found


def agent_specs() -> dict[str, AgentSpec[Any]]:
    """Every agent the catalogue declares (an ``AgentSpec`` at module level), by name."""
    specs = _instances(import_packages(catalogue_packages()), AgentSpec)
    return {spec.name: spec for spec in specs}


def evaluations(packages: tuple[str, ...] | None = None) -> dict[str, AgentEval[Any, Any]]:
    """Every agent's evaluation declaration, by agent name; two for one agent stop discovery."""
    found: dict[str, AgentEval[Any, Any]] = {}
    for package in packages or eval_packages():
        for evaluation in _instances(import_package(package), AgentEval):
            if evaluation.name in found:
                raise CatalogueError(f"agent {evaluation.name!r} declares its evaluation twice")
            found[evaluation.name] = evaluation
    return found
