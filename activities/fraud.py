"""Fraud-detection tools: the signals raised against a customer, an alert raised on a loan
application. Read-only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, TypeAdapter
from temporalio import activity

from activities.lending import Message
from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class RaisedFraudAlert(Record):
    """An alert as fraud monitoring keeps it."""

    alert_id: str
    application_id: str
    reason: str
    source: str
    raised_at: datetime


class FraudAlert(Message):
    """Fraud monitoring flags the application; after approval it reverses the loan. The case
    reads the alert back from fraud monitoring by ``alert_id`` and acts only on that copy."""

    alert_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=2000)
    source: str = Field(default="fraud-monitoring", min_length=1, max_length=200)


class FraudSignal(Record):
    signal_id: str
    customer_id: str
    order_id: str | None = None
    kind: str
    severity: str
    detail: str
    raised_at: datetime | None = None


class FraudSignalLookup(BaseModel):
    customer_id: str


_signals = TypeAdapter(list[FraudSignal])


class FraudAlertLookup(BaseModel):
    alert_id: str


class FraudActivities(SystemActivities):
    system = "fraud monitoring"

    @read_only_tool(
        name="list_fraud_signals",
        description="List the fraud-monitoring signals recorded for a customer.",
    )
    @activity.defn(name="fraud.list_signals")
    async def list_signals(self, lookup: FraudSignalLookup) -> list[FraudSignal]:
        return _signals.validate_python(
            await call(
                self._client, "GET", "/fraud/signals", params={"customer_id": lookup.customer_id}
            )
        )

    @read_only_tool(
        name="get_fraud_alert", description="Read a fraud alert as fraud monitoring keeps it."
    )
    @activity.defn(name="fraud.get_alert")
    async def get_alert(self, lookup: FraudAlertLookup) -> RaisedFraudAlert:
        """An alert as fraud monitoring keeps it."""
        return RaisedFraudAlert.model_validate(
            await call(self._client, "GET", f"/fraud/alerts/{lookup.alert_id}")
        )
