"""Order-management tools: one order, and a customer's order history. Read-only."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, TypeAdapter
from temporalio import activity

from activities.records_refund import Order
from casework.systems.http import call


class OrderLookup(BaseModel):
    order_id: str


class CustomerOrdersLookup(BaseModel):
    customer_id: str


_orders = TypeAdapter(list[Order])


class OrderActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @activity.defn(name="orders.get_order")
    async def get_order(self, lookup: OrderLookup) -> Order:
        return Order.model_validate(await call(self._client, "GET", f"/orders/{lookup.order_id}"))

    @activity.defn(name="orders.list_customer_orders")
    async def list_customer_orders(self, lookup: CustomerOrdersLookup) -> list[Order]:
        return _orders.validate_python(
            await call(self._client, "GET", "/orders", params={"customer_id": lookup.customer_id})
        )
