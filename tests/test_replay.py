"""Replay every stored history against today's workflow code.

A running case resumes by replaying its history; a change to the workflow's command sequence
(activities, timers, search-attribute upserts in a different order) fails here before it can
strand a case in production. Histories are recorded by ``python -m tests.histories.record``;
see that module for when re-recording is legitimate.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from casework.catalogue import discover
from casework.plugin import CaseworkPlugin
from tests.histories.record import (
    HISTORIES,
    LEAD_RECORDINGS,
    LOAN_RECORDINGS,
    RECORDINGS,
    REFUND_RECORDINGS,
    TRIAGE_RECORDINGS,
    VENDOR_RECORDINGS,
    history_path,
    lead_history_path,
    loan_history_path,
    refund_history_path,
    triage_history_path,
    vendor_history_path,
    workflow_id_for,
)

HISTORY_FILES = sorted(HISTORIES.glob("*.json"))
# Every workflow the worker runs, the triage case's agent region (a child workflow whose
# history is stored and replayed apart) among them.
CATALOGUE = discover()


def test_every_recorded_scenario_has_a_stored_history() -> None:
    assert HISTORY_FILES, f"no stored histories in {HISTORIES}"
    missing = [r.name for r in RECORDINGS if not history_path(r.name).exists()] + [
        r.name
        for r in TRIAGE_RECORDINGS
        if not all(triage_history_path(r.name, region=region).exists() for region in (False, True))
    ]
    missing += [r.name for r in LOAN_RECORDINGS if not loan_history_path(r.name).exists()]
    missing += [r.name for r in VENDOR_RECORDINGS if not vendor_history_path(r.name).exists()]
    assert not missing, f"record them with: python -m tests.histories.record ({missing})"


def test_every_refund_scenario_has_a_stored_history() -> None:
    # The recorder takes scenario names from the command line: one name, one process.
    names = {r.name for r in REFUND_RECORDINGS}
    assert not names & {r.name for r in (*RECORDINGS, *TRIAGE_RECORDINGS)}
    missing = [r.name for r in REFUND_RECORDINGS if not refund_history_path(r.name).exists()]
    assert not missing, f"record them with: python -m tests.histories.record ({missing})"


def test_every_lead_routing_scenario_has_a_stored_history() -> None:
    # The recorder takes scenario names from the command line: one name, one process.
    names = {r.name for r in LEAD_RECORDINGS}
    assert not names & {r.name for r in (*RECORDINGS, *TRIAGE_RECORDINGS)}
    missing = [r.name for r in LEAD_RECORDINGS if not lead_history_path(r.name).exists()]
    assert not missing, f"record them with: python -m tests.histories.record ({missing})"


@pytest.mark.parametrize("history_file", HISTORY_FILES, ids=lambda path: path.stem)
async def test_stored_history_replays_on_the_current_code(history_file: Path) -> None:
    history = WorkflowHistory.from_json(workflow_id_for(history_file), history_file.read_text())
    replayer = Replayer(
        workflows=[],
        plugins=[
            CaseworkPlugin(
                passthrough=CATALOGUE.passthrough_packages, workflows=CATALOGUE.workflows
            )
        ],
    )

    # Raises on any nondeterminism: a command the history does not have, or one it lacks.
    await replayer.replay_workflow(history)
