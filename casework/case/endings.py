"""How cases end: failed with compensation, on hold, rejected, in the words every process uses.

A case never ends half-done without saying what was compensated: ``fail_compensated`` undoes the
saga's writes, newest first, and its ending names what was undone and what was not (then a person
must finish it: ``failed_needs_attention``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from casework.case.base import CaseBase, CaseStatus, failure_message
from casework.case.saga import CompensationReport, Saga


def compensation_summary(report: CompensationReport) -> str:
    """``compensated: a, b; NOT compensated: c`` (``nothing`` when nothing was undone)."""
    return (
        "compensated: "
        + (", ".join(report.compensated) or "nothing")
        + (f"; NOT compensated: {', '.join(report.failed)}" if report.failed else "")
    )


class Ending(BaseModel):
    """How a case ended, in the terms every process's result shares."""

    status: str
    message: str
    compensated: list[str] = []
    compensation_failed: list[str] = []

    @classmethod
    def after_compensation(cls, report: CompensationReport, message: str) -> Ending:
        status = (
            CaseStatus.FAILED_COMPENSATED if report.complete else CaseStatus.FAILED_NEEDS_ATTENTION
        )
        return cls(
            status=status,
            message=message,
            compensated=report.compensated,
            compensation_failed=report.failed,
        )

    def result_fields(self) -> dict[str, Any]:
        """The fields a process's result takes from its ending."""
        return self.model_dump()


class CaseEndings(CaseBase):
    """The endings processes share; each keeps the order of its own writes and letters."""

    async def fail_compensated(
        self, saga: Saga, error: BaseException, *, failed: str, reason: str
    ) -> Ending:
        """``failed`` (what could not be done, for people) failed for good with ``error``: undo
        ``saga``'s writes, each compensation recorded with ``reason`` and the cause."""
        cause = failure_message(error)
        report = await self.compensate(saga, f"{reason}: {cause}")
        ending = Ending.after_compensation(
            report, f"{failed} failed ({cause}); {compensation_summary(report)}"
        )
        self.set_status(ending.status)
        return ending

    async def put_on_hold(
        self,
        message: str,
        *,
        notify_roles: list[str],
        subject: str,
        tell_submitter: str | None = None,
        step: str = "timeout",
    ) -> Ending:
        """Nobody decided in time at any tier: the case is on hold and ``notify_roles`` (and,
        with a subject, its submitter) are told."""
        self.set_status(CaseStatus.ON_HOLD)
        for role in notify_roles:
            await self.notify_role(role, subject, message, step)
        if tell_submitter is not None:
            await self.notify(self._requested_by, tell_submitter, message, step)
        return Ending(status=CaseStatus.ON_HOLD, message=message)

    async def close_rejected(
        self,
        message: str,
        *,
        letter: Callable[[], Awaitable[Any]] | None = None,
        tell_submitter: str | None = None,
    ) -> Ending:
        """The case ends rejected: the outside party gets its ``letter`` (a customer, a vendor,
        an applicant), then the submitter is told (with a subject)."""
        self.set_status(CaseStatus.REJECTED)
        if letter is not None:
            await letter()
        if tell_submitter is not None:
            await self.notify(self._requested_by, tell_submitter, message, "rejected")
        return Ending(status=CaseStatus.REJECTED, message=message)
