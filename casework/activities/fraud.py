"""Fraud-detection tools: the signals raised against a customer. Read-only."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, TypeAdapter
from temporalio import activity

from casework.activities.http import call
from casework.records_refund import FraudSignal


class FraudSignalLookup(BaseModel):
    customer_id: str


_signals = TypeAdapter(list[FraudSignal])


class FraudActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @activity.defn(name="fraud.list_signals")
    async def list_signals(self, lookup: FraudSignalLookup) -> list[FraudSignal]:
        return _signals.validate_python(
            await call(
                self._client, "GET", "/fraud/signals", params={"customer_id": lookup.customer_id}
            )
        )
