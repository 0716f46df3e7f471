"""The catalogue: the processes, systems, agents and policies an installation serves.

A process *declares* and the framework *wires*. A workflow class says what it is (case type,
business key, input model, statuses of its own; ``casework.case.base.CaseBase``), a policy model
names its document (``policy_id``), a system's activity class marks the lookups it offers agents
(``casework.systems.base``), an agent registers its output (``casework.agents.registry``).
:func:`discover` imports every module of the catalogue's packages, failing loudly naming one that
does not import or declares something inconsistent, and collects what they declare. The worker,
the CLI, the review queue and the replayer read the :class:`Catalogue` it returns; nothing in
``casework`` imports a catalogue module by name.

The packages are ``workflows``, ``activities`` and ``policies`` unless ``CASEWORK_CATALOGUE``
names others (comma-separated), so an organisation can keep its processes in packages of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

from pydantic import BaseModel
from temporalio import workflow

from casework.agents.region import AgentRegionWorkflow
from casework.agents.tools import Tool, register_tool
from casework.case import CaseStatus, CaseWorkflow
from casework.discovery import CatalogueError, import_package, packages_named
from casework.governance.models import Directory, PolicyModel
from casework.masking import MaskingPolicy
from casework.systems.base import SystemActivities

CATALOGUE_ENV = "CASEWORK_CATALOGUE"
DEFAULT_PACKAGES = ("workflows", "activities", "policies")
FRAMEWORK_WORKFLOWS: tuple[type, ...] = (AgentRegionWorkflow,)
"""Workflows of the framework's own that processes start as children."""
FRAMEWORK_POLICIES: tuple[type[PolicyModel], ...] = (Directory, MaskingPolicy)


@dataclass(frozen=True)
class Process:
    """One process of the catalogue, as its workflow class declares it."""

    workflow: type[CaseWorkflow]

    @property
    def name(self) -> str:
        return self.workflow.case_type

    @property
    def workflow_type(self) -> str:
        return workflow_type_of(self.workflow)

    @property
    def input_model(self) -> type[BaseModel]:
        return self.workflow.input_model

    @property
    def description(self) -> str:
        return self.workflow.description

    @property
    def statuses(self) -> list[str]:
        """Every status a case of the process can show: the framework's and its own."""
        own = [status.value for status in self.workflow.statuses] if self.workflow.statuses else []
        return [status.value for status in CaseStatus] + own

    def case_id(self, request: BaseModel) -> str:
        """The business key: one open case per business object."""
        return self.workflow.case_id_for(request)


@dataclass(frozen=True)
class Catalogue:
    processes: dict[str, Process]
    systems: tuple[type[SystemActivities], ...]
    policy_models: dict[str, type[PolicyModel]]
    """Every policy document's model, by policy id: the worker validates each at start."""
    packages: tuple[str, ...] = field(default=())

    @property
    def passthrough_packages(self) -> tuple[str, ...]:
        """The catalogue packages workflow code may share across runs (records, policies, agent
        specs): all but those holding workflows, which the sandbox keeps to itself."""
        holding_workflows = {p.workflow.__module__.split(".")[0] for p in self.processes.values()}
        return tuple(package for package in self.packages if package not in holding_workflows)

    @property
    def workflows(self) -> list[type]:
        """What a worker runs: every process's workflow and the framework's own."""
        return [*(p.workflow for p in self.processes.values()), *FRAMEWORK_WORKFLOWS]

    def process(self, name: str) -> Process:
        try:
            return self.processes[name]
        except KeyError:
            raise CatalogueError(
                f"unknown process {name!r}; the catalogue has: {', '.join(sorted(self.processes))}"
            ) from None

    @property
    def case_workflow_types(self) -> frozenset[str]:
        """The workflow types whose runs are cases: the processes', wherever they run (a
        post-incident review a triage case starts is a case of its own; an agent region is not)."""
        return frozenset(p.workflow_type for p in self.processes.values())

    def process_of_workflow_type(self, workflow_type: str) -> Process | None:
        return next((p for p in self.processes.values() if p.workflow_type == workflow_type), None)


def workflow_type_of(cls: type) -> str:
    definition = workflow._Definition.from_class(cls)
    if definition is None or definition.name is None:
        raise CatalogueError(f"{cls.__module__}.{cls.__name__} is not a @workflow.defn class")
    return definition.name


def catalogue_packages() -> tuple[str, ...]:
    return packages_named(CATALOGUE_ENV, DEFAULT_PACKAGES)


def _defined_in(module: ModuleType) -> Iterator[type]:
    for _, member in inspect.getmembers(module, inspect.isclass):
        if member.__module__ == module.__name__:
            yield member


def _check_process(cls: type[CaseWorkflow]) -> None:
    where = f"{cls.__module__}.{cls.__name__}"
    missing = [
        name for name in ("case_type", "input_model", "business_key") if not hasattr(cls, name)
    ]
    if missing:
        raise CatalogueError(f"{where} must declare {', '.join(missing)}")
    if not (isinstance(cls.input_model, type) and issubclass(cls.input_model, BaseModel)):
        raise CatalogueError(f"{where}.input_model must be a pydantic model")
    if cls.business_key not in cls.input_model.model_fields:
        raise CatalogueError(
            f"{where}.business_key {cls.business_key!r} is not a field of "
            f"{cls.input_model.__name__}"
        )
    workflow_type_of(cls)


def collect(modules: Sequence[ModuleType], packages: Sequence[str] = ()) -> Catalogue:
    """The catalogue the ``modules`` declare; registers their systems' tools for agents."""
    processes: dict[str, Process] = {}
    systems: list[type[SystemActivities]] = []
    policy_models: dict[str, type[PolicyModel]] = {p.policy_id: p for p in FRAMEWORK_POLICIES}
    for module in modules:
        for cls in _defined_in(module):
            if issubclass(cls, CaseWorkflow) and cls.counts_as_case and hasattr(cls, "case_type"):
                _check_process(cls)
                if (other := processes.get(cls.case_type)) is not None:
                    raise CatalogueError(
                        f"case type {cls.case_type!r} is declared by both "
                        f"{other.workflow.__module__} and {cls.__module__}"
                    )
                processes[cls.case_type] = Process(cls)
            elif issubclass(cls, SystemActivities) and cls is not SystemActivities:
                systems.append(cls)
            elif issubclass(cls, PolicyModel) and "policy_id" in vars(cls):
                policy_models[cls.policy_id] = cls
    types = [p.workflow_type for p in processes.values()]
    if duplicates := sorted({t for t in types if types.count(t) > 1}):
        raise CatalogueError(f"workflow types declared twice: {', '.join(duplicates)}")
    for system in systems:
        for name, activity, arguments in system.read_only_tools():
            summary = system.tool_description(activity)
            try:
                register_tool(
                    Tool(name=name, activity=activity, arguments=arguments, summary=summary)
                )
            except ValueError as error:
                raise CatalogueError(f"{system.__module__}: {error}") from error
    return Catalogue(
        processes=dict(sorted(processes.items())),
        systems=tuple(systems),
        policy_models=policy_models,
        packages=tuple(packages),
    )


@cache
def discover(packages: tuple[str, ...] | None = None) -> Catalogue:
    """Import the catalogue's packages and collect what they declare (once per process)."""
    packages = packages or catalogue_packages()
    modules: list[ModuleType] = []
    for package in packages:
        modules += import_package(package)
    return collect(modules, packages)
