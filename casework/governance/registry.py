"""The check the worker runs on every policy document before it starts.

Cases load their policy through an activity when they start, so without this check a mistyped
policy surfaces only as failing cases. Each document is validated against the model whose
``policy_id`` names it (the catalogue collects them: ``Catalogue.policy_models``); a document no
model names still gets the loader's checks (YAML, ``id``, ``version``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from casework.converter import validation_problems
from casework.governance.loader import PolicyNotFoundError, load_policy
from casework.governance.models import DIRECTORY_ID, ApprovalPolicy, Directory, PolicyModel
from casework.governance.rules import approval_gaps

NO_CURRENCY = "currency: missing; name the currency (e.g. currency: EUR) of"


def policy_problems(directory: Path, models: Mapping[str, type[PolicyModel]]) -> list[str]:
    """Every problem with the policy documents in ``directory`` (validated against ``models``,
    by policy id), each naming file and field;
    empty when all of them are valid. Valid documents are checked together too: a policy whose
    approval tiers leave amounts that no one in the directory may approve is a problem, naming
    the tiers and the amounts (``evaluator.approval_gaps``)."""
    problems: list[str] = []
    valid: dict[str, PolicyModel] = {}
    ids = sorted({path.stem for path in directory.glob("*.yaml")} | set(models))
    for policy_id in ids:
        path = directory / f"{policy_id}.yaml"
        try:
            document = load_policy(policy_id, directory)
        except PolicyNotFoundError as error:
            problems.append(str(error))
            continue
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problems.append(f"{path}: not valid YAML: {where}{getattr(error, 'problem', error)}")
            continue
        except ValueError as error:
            problems.append(str(error))  # the loader's message names the file
            continue
        model = models.get(policy_id)
        if model is None:
            continue
        try:
            valid[policy_id] = model.model_validate(document.content)
        except ValidationError as error:
            problems.append(f"{path}: {validation_problems(error)}")
    people = valid.get(DIRECTORY_ID)
    if isinstance(people, Directory) and people.currency is None:
        problems.append(f"{directory / DIRECTORY_ID}.yaml: {NO_CURRENCY} the approval limits")
        people = None
    for policy_id, policy in valid.items():
        if isinstance(policy, ApprovalPolicy) and policy.amount_ladders():
            path = directory / f"{policy_id}.yaml"
            if policy.currency is None:
                problems.append(f"{path}: {NO_CURRENCY} its amounts")
            elif people is not None:
                problems += [f"{path}: {gap}" for gap in approval_gaps(policy, people)]
    return problems
