"""What a policy decides for a case: one routed-decision type, each process naming its routes."""

from __future__ import annotations

from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel

from casework.governance.models import Duration, PolicyRef

RouteT = TypeVar("RouteT", bound=StrEnum)


class RoutedDecision(BaseModel, Generic[RouteT]):
    """What a policy decided for a case: the route, why, under which policy text, and, when a
    person must decide, the approval tier (and its role and SLA) that covers it. Each process
    names its routes; the decision is recorded the same way for all (``record_decision``)."""

    route: RouteT
    reasons: list[str]
    policy: PolicyRef
    tier: int | None = None
    role: str | None = None
    sla: Duration | None = None

    def describe(self) -> str:
        return (
            f"policy {self.policy}: {self.route.value}"
            + (f" by {self.role}" if self.role else "")
            + " because "
            + "; ".join(self.reasons)
        )
