"""Agent-region scenarios of the framework's own: a coordinator delegating to three specialists
in parallel (``tests.specialists_support``), the service desk and the model faked by activity
name. Each saves the coordinator's history and each specialist's child region's
(``agent_region_<name>.<specialist>-<n>.json``); they cover delegation, off-rail endings and model
calls that carry only what is new (patches ``agent-region-off-rail`` and
``agent-region-compact-history``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from activities.itsm import Ticket
from casework.agents.messages import ChatMessage
from casework.agents.region import AgentRegionInput, AgentRegionWorkflow, RegionOutcome
from casework.testing.recorder import Recordings, Scenario, nothing
from tests.specialists_support import (
    SPECIALISTS,
    coordinator_input,
    coordinator_turn,
    specialist_turn,
)
from tests.triage_support import FakeItsm


def _ticket_id(key: str) -> str:
    return f"INC-{key}"


def _turns(off_rail: str | None) -> Callable[[list[ChatMessage]], ChatMessage]:
    """The stand-ins' turns, told apart by the tag their system prompt starts with; the
    ``off_rail`` specialist asks for the same lookup again and again."""

    def turn(messages: list[ChatMessage]) -> ChatMessage:
        system = messages[0].content or ""
        if system.startswith("[coordinator]"):
            return coordinator_turn(messages)
        if off_rail is not None and system.startswith(f"[{off_rail}]"):
            # Its first turn's call, every time: as if nothing had come back.
            return specialist_turn(messages[:2])
        return specialist_turn(messages)

    return turn


def _systems(off_rail: str | None) -> Callable[[str, datetime], FakeItsm]:
    def systems(key: str, now: datetime) -> FakeItsm:
        ticket_id = _ticket_id(key)
        ticket = Ticket(
            ticket_id=ticket_id,
            title="Water damage in the server room",
            description="A pipe burst over the weekend; two racks are wet.",
            requester="erin",
            status="new",
        )
        return FakeItsm(tickets={ticket_id: ticket}, turn=_turns(off_rail))

    return systems


def _start(key: str, systems: FakeItsm) -> AgentRegionInput:
    return coordinator_input(key, _ticket_id(key))


RECORDINGS = Recordings(
    workflow=AgentRegionWorkflow,
    key=lambda name: f"REPLAY-{name}",
    start=_start,
    # Delegations are numbered in the order the coordinator asked for them.
    children={
        f"{name}-{number}": AgentRegionWorkflow for number, name in enumerate(SPECIALISTS, 1)
    },
    scenarios=(
        Scenario(
            "specialists_in_parallel",
            _systems(off_rail=None),
            nothing,
            {"outcome": RegionOutcome.ANSWERED},
        ),
        Scenario(
            "specialist_off_rail",
            _systems(off_rail="fraud_check"),
            nothing,
            {"outcome": RegionOutcome.ANSWERED},
        ),
        # Behind the patch baseline (casework.case.patches): each region records the baseline
        # once, not the off-rail and compact-history patches it holds.
        Scenario(
            "patch_baseline_specialist_off_rail",
            _systems(off_rail="fraud_check"),
            nothing,
            {"outcome": RegionOutcome.ANSWERED},
        ),
    ),
)
