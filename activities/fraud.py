"""Fraud-detection tools: the signals raised against a customer, an alert raised on a loan
application. Read-only."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, TypeAdapter
from temporalio import activity

from activities.loan_records import RaisedFraudAlert
from activities.records_refund import FraudSignal
from casework.systems.http import call


class FraudSignalLookup(BaseModel):
    customer_id: str


_signals = TypeAdapter(list[FraudSignal])


class FraudAlertLookup(BaseModel):
    alert_id: str


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

    @activity.defn(name="fraud.get_alert")
    async def get_alert(self, lookup: FraudAlertLookup) -> RaisedFraudAlert:
        """An alert as fraud monitoring keeps it."""
        return RaisedFraudAlert.model_validate(
            await call(self._client, "GET", f"/fraud/alerts/{lookup.alert_id}")
        )
