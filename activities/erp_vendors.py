"""ERP vendor-master tools: create a vendor exactly once per idempotency key; deactivate one."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import activity

from casework.systems.base import SystemActivities
from casework.systems.http import call
from casework.systems.records import Record


class ErpVendor(Record):
    vendor_id: str
    name: str
    country: str
    tax_id: str
    bank_account: str
    status: str
    application_id: str | None = None
    approved_by: list[str] = Field(default_factory=list)
    documents: list[str] = Field(default_factory=list)


class VendorCreation(BaseModel):
    name: str
    country: str
    tax_id: str
    bank_account: str
    contact_email: str
    application_id: str
    approved_by: list[str]
    documents: list[str]
    idempotency_key: str


class VendorDeactivation(BaseModel):
    vendor_id: str
    reason: str
    idempotency_key: str


class ErpVendorActivities(SystemActivities):
    system = "ERP vendor master"

    @activity.defn(name="erp.create_vendor")
    async def create_vendor(self, creation: VendorCreation) -> ErpVendor:
        return ErpVendor.model_validate(
            await call(
                self._client,
                "POST",
                "/erp/vendors",
                json=creation.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=creation.idempotency_key,
            )
        )

    @activity.defn(name="erp.deactivate_vendor")
    async def deactivate_vendor(self, deactivation: VendorDeactivation) -> ErpVendor:
        return ErpVendor.model_validate(
            await call(
                self._client,
                "POST",
                f"/erp/vendors/{deactivation.vendor_id}/deactivate",
                json={"reason": deactivation.reason},
                idempotency_key=deactivation.idempotency_key,
            )
        )
