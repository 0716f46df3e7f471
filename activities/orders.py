"""Order-management tools: one order, and a customer's order history. Read-only."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, TypeAdapter
from temporalio import activity

from activities.erp import OrderLine
from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class Order(Record):
    order_id: str
    customer_id: str
    currency: str
    lines: list[OrderLine]
    total: Decimal
    payment_status: str
    """``captured`` when the customer's money was taken; ``pending``, ``failed``,
    ``charged_back`` otherwise."""
    payment_reference: str | None = None
    fulfilment_status: str
    placed_at: datetime
    delivered_at: datetime | None = None


class OrderLookup(BaseModel):
    order_id: str


class CustomerOrdersLookup(BaseModel):
    customer_id: str


_orders = TypeAdapter(list[Order])


class OrderActivities(SystemActivities):
    system = "order management"

    @read_only_tool(description="Read an order: customer, lines, amounts, delivery status.")
    @activity.defn(name="orders.get_order")
    async def get_order(self, lookup: OrderLookup) -> Order:
        return Order.model_validate(await call(self._client, "GET", f"/orders/{lookup.order_id}"))

    @read_only_tool(description="List a customer's orders, newest first.")
    @activity.defn(name="orders.list_customer_orders")
    async def list_customer_orders(self, lookup: CustomerOrdersLookup) -> list[Order]:
        return _orders.validate_python(
            await call(self._client, "GET", "/orders", params={"customer_id": lookup.customer_id})
        )
