"""ERP vendor-master tools: create a vendor exactly once per idempotency key; deactivate one;
read one, or find them by tax ID (read-only tools an agent may be given)."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, Field, TypeAdapter
from temporalio import activity
from temporalio.exceptions import ApplicationError

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import RECORD_NOT_FOUND, call
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


_vendors = TypeAdapter(list[ErpVendor])


class VendorLookup(BaseModel):
    vendor_id: str


class VendorCreationLookup(BaseModel):
    idempotency_key: str = Field(min_length=1)


class VendorSearch(BaseModel):
    tax_id: str = Field(min_length=1, description="The vendor's tax ID, in any spelling.")


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

    @read_only_tool(description="Read a vendor in the ERP vendor master: tax ID, bank, status.")
    @activity.defn(name="erp.get_vendor")
    async def get_vendor(self, lookup: VendorLookup) -> ErpVendor:
        return ErpVendor.model_validate(
            await call(self._client, "GET", f"/erp/vendors/{quote(lookup.vendor_id, safe='')}")
        )

    @read_only_tool(description="Find the vendors the ERP vendor master holds under a tax ID.")
    @activity.defn(name="erp.find_vendors")
    async def find_vendors(self, search: VendorSearch) -> list[ErpVendor]:
        return _vendors.validate_python(
            await call(self._client, "GET", "/erp/vendors", params={"tax_id": search.tax_id})
        )

    @activity.defn(name="erp.find_created_vendor")
    async def find_created_vendor(self, lookup: VendorCreationLookup) -> ErpVendor | None:
        """The vendor a creation under ``idempotency_key`` made, if any.

        After a creation whose answers were all lost, only the ERP can say whether it went
        through; the key is the case's own, so nothing else can have made it.
        """
        path = f"/erp/vendors/created-under/{quote(lookup.idempotency_key, safe='')}"
        try:
            return ErpVendor.model_validate(await call(self._client, "GET", path))
        except ApplicationError as error:
            if error.type == RECORD_NOT_FOUND:
                return None
            raise
