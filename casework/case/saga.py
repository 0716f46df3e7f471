"""Saga compensation: each write registers how to undo it; undo runs in reverse on failure.

Deterministic (only awaits what it is given), so it is used directly inside workflows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError


class CompensationReport(BaseModel):
    compensated: list[str] = []
    failed: list[str] = []
    """Compensations that still failed after their retries: a person must finish these."""

    @property
    def complete(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _Step:
    description: str
    undo: Callable[[], Awaitable[Any]]


class Saga:
    def __init__(self) -> None:
        self._steps: list[_Step] = []

    def add(self, description: str, undo: Callable[[], Awaitable[Any]]) -> None:
        """Register ``undo`` for a write that has just succeeded."""
        self._steps.append(_Step(description, undo))

    def add_unconfirmed(self, description: str, what_to_check: str) -> None:
        """Register a write that may have been made but could not be confirmed either way (its
        system could not be read): it cannot be undone from here, so compensating reports it
        failed, saying ``what_to_check``, and a person must look."""
        self._steps.append(_Step(description, lambda: _cannot_undo(what_to_check)))

    @property
    def pending(self) -> list[str]:
        return [step.description for step in self._steps]

    async def compensate(
        self, on_step: Callable[[str, BaseException | None], None]
    ) -> CompensationReport:
        """Undo every registered write, newest first.

        One failed compensation does not stop the others: each undo is independent, and leaving
        later ones undone would only widen what a person has to repair by hand.
        """
        report = CompensationReport()
        while self._steps:
            step = self._steps.pop()
            try:
                await step.undo()
            except Exception as error:
                report.failed.append(step.description)
                on_step(step.description, error)
            else:
                report.compensated.append(step.description)
                on_step(step.description, None)
        return report


async def _cannot_undo(what_to_check: str) -> None:
    """A compensation that cannot run: reported as failed, so the case needs a person."""
    raise ApplicationError(what_to_check, type="CompensationImpossible", non_retryable=True)
