"""The framework's patch baseline (``casework.case.patches``): a new case records the baseline
once in place of the patches it holds. Cases started before it replay each patch as they
recorded it: ``test_replay.py`` replays their stored histories beside the baseline's."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from casework.case.patches import (
    BASELINES,
    COMPACT_HISTORY,
    EDITED_AMOUNT_RULES,
    GOVERNANCE_LOADED_TOGETHER,
    OFF_RAIL_CHECKED,
    PROPOSALS_CHECKED,
    SIGNED_ANSWERS,
    SIGNED_DECISIONS,
    TASK_ACTS,
)
from casework.testing.signing import decide
from tests.fake_systems import FakeSystems, scenario
from tests.test_invoice_workflow import case_worker, open_task, start_case
from workflows.invoice_exception import ERP_READS_TOGETHER, Outcome


def recorded_patches(history: WorkflowHistory) -> list[str]:
    """The IDs of the patch markers in ``history``, in the order they were recorded."""
    payloads: list[Payload] = [
        event.marker_recorded_event_attributes.details["patch-data"].payloads[0]
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    return [json.loads(payload.data)["id"] for payload in payloads]


async def test_a_new_case_records_the_baseline_once_and_none_of_the_patches_it_holds(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # Through governance (signed decisions, edited amounts, loaded together), the analyst's
    # checked proposal and an approval task (task acts): five framework patches on the way.
    systems = FakeSystems(scenario("INV-PB1", invoice_price="31.50"))
    async with case_worker(time_skipping_env, systems) as queue:
        handle = await start_case(time_skipping_env, queue, "INV-PB1")
        await open_task(handle)
        await decide(handle, approver="bob", action="approve")
        result = await handle.result()
        history = await handle.fetch_history()

    assert result.outcome is Outcome.APPROVED
    assert recorded_patches(history) == [BASELINES[0].id, ERP_READS_TOGETHER]


def test_a_baselines_patches_never_change() -> None:
    """Cases started under a baseline replay by its set: a patch added to it would make them
    take a path they never took. A newer baseline goes first in ``BASELINES``, with a new ID."""
    assert [(baseline.id, baseline.patches) for baseline in BASELINES] == [
        (
            "casework-patches-2026-12",
            {
                SIGNED_DECISIONS,
                EDITED_AMOUNT_RULES,
                GOVERNANCE_LOADED_TOGETHER,
                SIGNED_ANSWERS,
                TASK_ACTS,
                PROPOSALS_CHECKED,
                COMPACT_HISTORY,
                OFF_RAIL_CHECKED,
            },
        )
    ]
