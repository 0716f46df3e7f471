"""The repair-cost benchmark stand-in: what a repair item usually costs, by vehicle class, as
the insurer's benchmark data says (low, typical, high)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import model_validator

from casework.sandbox.models import Currency, Money, RecordId, StrictModel, Text
from casework.sandbox.store import Db, columns, insert

SCHEMA = """
CREATE TABLE IF NOT EXISTS repair_benchmarks (
    seq INTEGER PRIMARY KEY,
    item_code TEXT NOT NULL,
    vehicle_class TEXT NOT NULL,
    description TEXT NOT NULL,
    currency TEXT NOT NULL,
    low TEXT NOT NULL,
    typical TEXT NOT NULL,
    high TEXT NOT NULL,
    UNIQUE (item_code, vehicle_class)
);
"""

router = APIRouter(prefix="/repair-costs", tags=["Repair-cost benchmarks"])


class Benchmark(StrictModel):
    item_code: RecordId
    vehicle_class: RecordId
    description: Text
    currency: Currency = "EUR"
    low: Money
    typical: Money
    high: Money

    @model_validator(mode="after")
    def _ordered(self) -> Benchmark:
        if not self.low <= self.typical <= self.high:
            raise ValueError("low <= typical <= high must hold")
        return self


_SELECT = f"SELECT {columns(Benchmark)} FROM repair_benchmarks"


@router.post("/benchmarks", status_code=201)
def create_benchmark(benchmark: Benchmark, db: Db) -> Benchmark:
    """Record (or replace) the benchmark of one repair item for one vehicle class."""
    with db.transaction() as conn:
        conn.execute(
            "DELETE FROM repair_benchmarks WHERE item_code = ? AND vehicle_class = ?",
            (benchmark.item_code, benchmark.vehicle_class),
        )
        insert(conn, "repair_benchmarks", benchmark.model_dump(mode="json"))
    return benchmark


@router.get("/benchmarks")
def list_benchmarks(
    db: Db,
    vehicle_class: Annotated[str, Query(min_length=1)],
    items: Annotated[str, Query(min_length=1, max_length=2000)],
) -> list[Benchmark]:
    """The benchmarks of the items asked for (comma-separated item codes), for one vehicle
    class; items without one are left out."""
    item_code = [code.strip() for code in items.split(",") if code.strip()][:50]
    marks = ", ".join("?" for _ in item_code)
    with db.transaction() as conn:
        rows = conn.execute(
            f"{_SELECT} WHERE vehicle_class = ? AND item_code IN ({marks}) ORDER BY item_code",
            (vehicle_class, *item_code),
        ).fetchall()
    return [
        Benchmark.model_validate(
            dict(row) | {key: Decimal(row[key]) for key in ("low", "typical", "high")}
        )
        for row in rows
    ]


@router.get("/benchmarks/{item_code}/{vehicle_class}")
def get_benchmark(item_code: str, vehicle_class: str, db: Db) -> Benchmark:
    with db.transaction() as conn:
        row = conn.execute(
            f"{_SELECT} WHERE item_code = ? AND vehicle_class = ?", (item_code, vehicle_class)
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"no benchmark for {item_code} ({vehicle_class})")
    return Benchmark.model_validate(dict(row))
