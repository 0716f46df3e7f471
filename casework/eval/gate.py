"""The minimums each agent's policy declares (``eval`` section), found by agent name."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from casework.catalogue import discover
from casework.converter import validation_problems
from casework.discovery import CatalogueError
from casework.eval.minimums import EvalMinimums, EvalSection
from casework.governance.loader import PolicyNotFoundError, load_policy

_SECTION = TypeAdapter(EvalSection)


def declared_minimums() -> dict[str, tuple[str, EvalMinimums]]:
    """Every policy document's ``eval`` minimums: by agent, with the policy that declares them."""
    found: dict[str, tuple[str, EvalMinimums]] = {}
    for policy_id in discover().policy_models:
        try:
            content = load_policy(policy_id).content
        except PolicyNotFoundError:
            continue
        try:
            section = _SECTION.validate_python(content.get("eval") or {})
        except ValidationError as error:
            raise CatalogueError(
                f"policy {policy_id}: eval: {validation_problems(error, 3)}"
            ) from error
        for agent, minimums in section.items():
            if agent in found:
                raise CatalogueError(
                    f"agent {agent!r} has eval minimums in both {found[agent][0]} and {policy_id}"
                )
            found[agent] = (policy_id, minimums)
    return found
