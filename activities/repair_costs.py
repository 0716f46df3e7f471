"""Repair-cost benchmarks: what a repair item usually costs for a vehicle class."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Benchmark(Record):
    item_code: str
    vehicle_class: str
    description: str
    currency: str
    low: Decimal
    typical: Decimal
    high: Decimal


class BenchmarkLookup(BaseModel):
    """Repair-cost benchmarks (low, typical, high) of repair items for one vehicle class; items
    without a benchmark are left out of the answer."""

    model_config = ConfigDict(extra="forbid")

    vehicle_class: str = Field(min_length=1, max_length=64, description="e.g. compact, suv")
    item_codes: list[str] = Field(
        min_length=1, max_length=50, description="Item codes, as on the repair estimate."
    )


_benchmarks = TypeAdapter(list[Benchmark])


class RepairCostActivities(SystemActivities):
    system = "repair-cost benchmarks"

    @read_only_tool(name="get_repair_benchmarks")
    @activity.defn(name="repair_costs.get_benchmarks")
    async def get_benchmarks(self, lookup: BenchmarkLookup) -> list[Benchmark]:
        return _benchmarks.validate_python(
            await call(
                self._client,
                "GET",
                "/repair-costs/benchmarks",
                params={
                    "vehicle_class": lookup.vehicle_class,
                    "items": ",".join(lookup.item_codes),
                },
            )
        )
