"""Replay every stored history against today's workflow code.

A running case resumes by replaying its history; a change to the workflow's command sequence
(activities, timers, search-attribute upserts in a different order) fails here before it can
strand a case in production. Histories are recorded by ``python -m tests.histories.record`` from
the scenarios each process declares in ``tests/histories/<process>.py``; see
``casework.testing.recorder`` for when re-recording is legitimate.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from casework.catalogue import discover
from casework.plugin import CaseworkPlugin
from casework.testing.recorder import Histories, discover_histories
from tests.histories.record import PACKAGE

HISTORIES = discover_histories(PACKAGE)
HISTORY_FILES = HISTORIES.files()
# Every workflow the worker runs, the triage case's agent region (a child workflow whose
# history is stored and replayed apart) among them.
CATALOGUE = discover()


def test_every_recorded_scenario_has_a_stored_history() -> None:
    assert HISTORY_FILES, f"no stored histories in {HISTORIES.directory}"
    assert HISTORIES.recordings, f"no recordings declared in {PACKAGE}"
    missing = HISTORIES.missing()
    assert not missing, f"record them with: python -m tests.histories.record ({missing})"


def test_every_process_of_the_catalogue_declares_its_recordings() -> None:
    declared = {recordings.workflow for recordings in HISTORIES.recordings}
    undeclared = [p.name for p in CATALOGUE.processes.values() if p.workflow not in declared]
    assert not undeclared, f"no tests/histories/<process>.py for {undeclared}"


def test_scenario_names_are_unique_across_processes() -> None:
    # The recorder takes scenario names from the command line: one name, one process.
    names = [scenario.name for _, scenario in HISTORIES.scenarios()]
    assert len(names) > len(HISTORIES.recordings), names
    assert sorted(set(names)) == sorted(names), sorted(n for n in names if names.count(n) > 1)


async def replay(histories: Histories, history_file: Path) -> None:
    """Raises on any nondeterminism: a command the history does not have, or one it lacks."""
    history = WorkflowHistory.from_json(
        histories.workflow_id_for(history_file), history_file.read_text()
    )
    replayer = Replayer(
        workflows=[],
        plugins=[
            CaseworkPlugin(
                passthrough=CATALOGUE.passthrough_packages, workflows=CATALOGUE.workflows
            )
        ],
    )
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("history_file", HISTORY_FILES, ids=lambda path: path.stem)
async def test_stored_history_replays_on_the_current_code(history_file: Path) -> None:
    await replay(HISTORIES, history_file)


async def test_the_recorder_stores_a_case_and_its_child_under_the_stored_names(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # A scenario of a process with a child workflow (the triage case and its agent region),
    # recorded afresh elsewhere: never over the stored histories.
    recordings = next(r for r in HISTORIES.recordings if r.children)
    scenario = recordings.scenarios[0]
    elsewhere = Histories(directory=tmp_path, recordings=(recordings,))

    paths = await elsewhere.record(time_skipping_env, recordings, scenario)

    assert [p.name for p in paths] == [p.name for p in HISTORIES.paths(recordings, scenario)]
    assert elsewhere.missing() == [s.name for s in recordings.scenarios[1:]]
    for path in paths:
        await replay(elsewhere, path)
