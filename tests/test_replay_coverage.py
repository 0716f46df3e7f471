"""Every workflow the worker runs has stored histories that are replayed in CI.

``test_replay.py`` replays each file under ``tests/histories/``; this makes sure nothing the
worker registers is left out of it: a new process (or a new child workflow) fails here until its
histories are recorded (``python -m tests.histories.record``); ``test_replay.py`` replays them
with the catalogue's workflows, as the worker registers them.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from casework.catalogue import discover
from casework.testing.recorder import discover_histories
from tests.histories.record import PACKAGE

HISTORIES = discover_histories(PACKAGE)


def _workflow_name(workflow: type) -> str:
    return getattr(workflow, "__temporal_workflow_definition").name


def stored_histories() -> dict[str, list[Path]]:
    """Workflow type -> its stored history files."""
    found: dict[str, list[Path]] = defaultdict(list)
    for path in HISTORIES.files():
        history = WorkflowHistory.from_json(HISTORIES.workflow_id_for(path), path.read_text())
        first = history.events[0]
        assert first.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, path
        found[first.workflow_execution_started_event_attributes.workflow_type.name].append(path)
    return found


def test_every_workflow_the_worker_registers_has_stored_histories() -> None:
    stored = stored_histories()
    registered = discover().workflows
    missing = [_workflow_name(w) for w in registered if not stored.get(_workflow_name(w))]
    assert not missing, (
        f"no stored history for {missing}: record them with `python -m tests.histories.record` "
        "(and replay them in tests/test_replay.py)"
    )


def test_every_process_has_stored_histories() -> None:
    stored = stored_histories()
    missing = [p.name for p in discover().processes.values() if not stored.get(p.workflow_type)]
    assert not missing, f"processes without stored histories: {missing}"


def test_every_stored_history_is_of_a_registered_workflow() -> None:
    registered = {_workflow_name(w) for w in discover().workflows}
    orphans = sorted(set(stored_histories()) - registered)
    assert not orphans, f"histories of workflow types the worker no longer registers: {orphans}"
