"""Card issuing: debit card orders for accounts, placed and cancelled by idempotency key."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class CardOrder(Record):
    order_id: str
    application_id: str
    account_id: str
    cardholder_name: str
    card_type: str
    status: str
    ordered_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class CardOrderLookup(BaseModel):
    """Look up a card order by its ID."""

    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(description="The card order's ID, e.g. CRD-000001.")


class CardOrderSearch(BaseModel):
    """Look up card orders by the application they were made for."""

    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(description="The onboarding application, e.g. APP-1001.")


class CardOrderRequest(BaseModel):
    application_id: str
    account_id: str
    cardholder_name: str
    idempotency_key: str


class CardOrderCancellation(BaseModel):
    order_id: str
    reason: str
    idempotency_key: str


class CardActivities(SystemActivities):
    system = "card issuing"

    @read_only_tool(name="get_card_order")
    @activity.defn(name="cards.get_order")
    async def get_order(self, lookup: CardOrderLookup) -> CardOrder:
        """A card order: the account it is for, the cardholder and whether it stands."""
        return CardOrder.model_validate(
            await call(self._client, "GET", f"/cards/orders/{lookup.order_id}")
        )

    @read_only_tool(name="find_card_orders")
    @activity.defn(name="cards.find_orders")
    async def find_orders(self, search: CardOrderSearch) -> list[CardOrder]:
        """The card orders made for an onboarding application, oldest first."""
        found = await call(
            self._client, "GET", "/cards/orders", params={"application_id": search.application_id}
        )
        return [CardOrder.model_validate(record) for record in found]

    @activity.defn(name="cards.order_card")
    async def order_card(self, request: CardOrderRequest) -> CardOrder:
        return CardOrder.model_validate(
            await call(
                self._client,
                "POST",
                "/cards/orders",
                json=request.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=request.idempotency_key,
            )
        )

    @activity.defn(name="cards.cancel_order")
    async def cancel_order(self, cancellation: CardOrderCancellation) -> CardOrder:
        return CardOrder.model_validate(
            await call(
                self._client,
                "POST",
                f"/cards/orders/{cancellation.order_id}/cancel",
                json={"reason": cancellation.reason},
                idempotency_key=cancellation.idempotency_key,
            )
        )
