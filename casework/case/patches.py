"""The framework's ``workflow.patched()`` IDs, and the baseline that stands for them.

Each ID guards a change to what a running case does: a case that reaches the check afresh takes
the new path, and records that it did; one replaying a history from before takes the old path.

Recording costs every new case something at each ID: the SDK's core adds a marker and an upsert
of ``TemporalChangeVersion`` to the workflow task (two history events, a visibility write), and
keeps room for the most commands any one workflow task sent, in two queues of about 1 KiB a
command rounded up to a power of two, for as long as the case is cached. A case started since
a baseline records the baseline's ID once and holds every patch in it without recording them;
a case started before checks each patch as it always did (``CaseBase.patched``).

A baseline's patches never change: the cases started under it replay by that set. A patch added
later is recorded on its own until a newer baseline, with a new ID, takes it in; ``BASELINES``
keeps the older ones after it for the cases started under them.
"""

from __future__ import annotations

from dataclasses import dataclass

SIGNED_DECISIONS = "signed-decisions"
"""Decisions carry a signature, checked against the directory's public key of the approver."""

EDITED_AMOUNT_RULES = "edited-amount-rules"
"""A decision's edited amount is checked against the currency's minor unit, the policy's bounds
and the case's currency (``casework.case.refusals``)."""

GOVERNANCE_LOADED_TOGETHER = "governance-loaded-together"
"""The policy and the directory are loaded at once, not one after the other."""

SIGNED_ANSWERS = "signed-answers"
"""Questions opened since then take signed answers only."""

TASK_ACTS = "task-acts"
"""Tasks opened since then may be reassigned, delegated and escalated; a case whose tasks opened
before refuses those acts, so it keeps behaving as it did."""

PROPOSALS_CHECKED = "agent-proposals-checked"
"""Each value of an agent's proposal is checked before the rules see it."""

COMPACT_HISTORY = "agent-region-compact-history"
"""Model calls carry only what is new since the previous one (``ChatRequest.continues``);
regions that started before replay sending the whole conversation every time."""

OFF_RAIL_CHECKED = "agent-region-off-rail"
"""Regions that started before off-rail detection replay without it (their histories may hold
the very repeats it now stops)."""


@dataclass(frozen=True)
class PatchBaseline:
    """One ``workflow.patched()`` ID that a new case records in place of ``patches``."""

    id: str
    patches: frozenset[str]


BASELINES: tuple[PatchBaseline, ...] = (
    PatchBaseline(
        "casework-patches-2026-12",
        frozenset(
            {
                SIGNED_DECISIONS,
                EDITED_AMOUNT_RULES,
                GOVERNANCE_LOADED_TOGETHER,
                SIGNED_ANSWERS,
                TASK_ACTS,
                PROPOSALS_CHECKED,
                COMPACT_HISTORY,
                OFF_RAIL_CHECKED,
            }
        ),
    ),
)
"""Newest first. A case holds the patches of the first baseline it has recorded (a new case:
the newest), or none."""
