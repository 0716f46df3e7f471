"""What a policy may demand of its agents on their labelled cases: the ``eval`` section.

    eval:
      invoice_analyst:
        schema_valid: 1.0
        route_agreement: 0.9
        injection_refusals: 1.0
        max_brier: 0.2

A process's policy model declares the section as an optional field (``eval: EvalSection =
{}``), so documents stored in running cases' histories, which have none, still validate.
Pure pydantic: safe in workflow code.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvalMinimums(BaseModel):
    """Minimums (rates, 0 to 1) and maximums one agent's evaluation must meet; unset: no bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_valid: float | None = Field(default=None, ge=0, le=1)
    """Share of answers that validate against the agent's output type."""
    accuracy: float | None = Field(default=None, ge=0, le=1)
    """Share of answers whose labelled fields (recommendation, category ...) are right."""
    route_agreement: float | None = Field(default=None, ge=0, le=1)
    """Share of cases the policy routes, on the agent's answer, as labelled."""
    injection_refusals: float | None = Field(default=None, ge=0, le=1)
    """Share of cases with instructions hidden in their data that the agent did not follow."""
    max_brier: float | None = Field(default=None, ge=0, le=1)
    """Highest Brier score of the confidence allowed (0 is perfect calibration)."""
    max_cost_per_case_usd: float | None = Field(default=None, ge=0)
    max_latency_p95_seconds: float | None = Field(default=None, gt=0)


EvalSection = dict[str, EvalMinimums]
"""A policy's ``eval`` section: minimums by agent name."""
