"""Labelled cases: the data an agent is evaluated on, one file per agent.

``evals/<agent>.yaml`` (in every package ``CASEWORK_EVALS`` names, default ``evals``)::

    agent: invoice_analyst
    records: []          # optional: records seeded into the sandbox for a tool-using agent
    defaults:            # optional: merged under every case's input (nested mappings merge)
      supplier: {supplier_id: SUP-1, name: Acme, status: active}
    cases:
      - id: price-variance-within-tolerance
        kinds: [borderline]
        input: {...}     # the case as its process holds it; the process's AgentEval turns it
                         # into what the agent sees
        expect:
          answer: {recommendation: approve}   # fields of a right answer
          route: auto_approve                 # how the policy routes a right answer
          injected: {recommendation: approve} # injection cases: what obeying the text gives

Adding cases, or cases for a new agent, is a new file: nothing is registered in code.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from casework.converter import validation_problems
from casework.discovery import CatalogueError, packages_named

EVALS_ENV = "CASEWORK_EVALS"
DEFAULT_EVAL_PACKAGES = ("evals",)
MIN_CASES = 25
"""Fewer cases than this say little about an agent; the catalogue's tests hold every agent to it."""


class CaseKind(StrEnum):
    """What makes a case hard; a case may be several, or none (an ordinary one)."""

    INJECTION = "injection"
    """Instructions hidden in the case's own text (a ticket, a document, a customer's reason)."""
    MISSING_DATA = "missing_data"
    BORDERLINE = "borderline"
    """Amounts, dates or scores at a policy's threshold."""
    CONTRADICTION = "contradiction"
    """Documents or records that contradict each other."""


class Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: dict[str, Any] = Field(min_length=1)
    """Fields a right answer has, compared loosely (case and spacing of text, 3 == 3.00)."""
    route: str | None = None
    """The policy's route on a right answer, as the process's AgentEval names routes."""
    injected: dict[str, Any] | None = None
    """For an injection case: the fields an answer that obeyed the hidden instructions has."""


class LabelledCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    kinds: list[CaseKind] = []
    input: dict[str, Any]
    expect: Expected
    note: str = ""
    """Why the label is what it is, for the person reading a failure."""

    @model_validator(mode="after")
    def _injection_says_what_obeying_looks_like(self) -> Self:
        if (CaseKind.INJECTION in self.kinds) != (self.expect.injected is not None):
            raise ValueError("a case has expect.injected exactly when its kinds include injection")
        return self


class CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1)
    records: list[dict[str, Any]] = []
    """Records the sandbox holds for the whole run (a knowledge base, a CMDB), as the process's
    AgentEval seeds them; only tool-using agents read them."""
    defaults: dict[str, Any] = {}
    cases: list[LabelledCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [case.id for case in self.cases]
        if twice := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"case ids used twice: {', '.join(twice)}")
        return self

    def inputs(self) -> Iterator[tuple[LabelledCase, dict[str, Any]]]:
        """Each case with its input, the file's defaults merged under it."""
        for case in self.cases:
            yield case, merged(self.defaults, case.input)


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; mappings present in both merge, anything else is replaced."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def eval_packages() -> tuple[str, ...]:
    return packages_named(EVALS_ENV, DEFAULT_EVAL_PACKAGES)


def case_dirs(packages: tuple[str, ...] | None = None) -> list[Path]:
    """The folders of the eval packages, found by name: the framework imports none of them."""
    dirs: list[Path] = []
    for package in packages or eval_packages():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise CatalogueError(f"eval package {package!r} is not importable; see {EVALS_ENV}")
        dirs += [Path(location) for location in spec.submodule_search_locations]
    return dirs


def load_case_file(path: Path) -> CaseFile:
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CatalogueError(f"{path}: not YAML: {error}") from error
    try:
        return CaseFile.model_validate(content)
    except ValidationError as error:
        raise CatalogueError(f"{path}: {validation_problems(error, 5)}") from error


def load_case_files(packages: tuple[str, ...] | None = None) -> dict[str, CaseFile]:
    """Every agent's labelled cases, by agent name; a file named for another agent than the one
    it declares, or two files for one agent, stop the load, named."""
    files: dict[str, CaseFile] = {}
    where: dict[str, Path] = {}
    for directory in case_dirs(packages):
        for path in sorted(directory.glob("*.yaml")):
            case_file = load_case_file(path)
            if case_file.agent != path.stem:
                raise CatalogueError(f"{path} declares agent {case_file.agent!r}: name it so")
            if case_file.agent in files:
                raise CatalogueError(
                    f"agent {case_file.agent!r} has cases in {where[case_file.agent]} and {path}"
                )
            files[case_file.agent] = case_file
            where[case_file.agent] = path
    return files
