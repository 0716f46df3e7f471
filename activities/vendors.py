"""Vendor portal tools: read an application with its documents (or one document), set its
status."""

from __future__ import annotations

import httpx
from pydantic import BaseModel
from temporalio import activity

from activities.vendor_records import VendorApplication, VendorDocument
from casework.systems.http import call


class ApplicationLookup(BaseModel):
    application_id: str


class ApplicationStatusChange(BaseModel):
    application_id: str
    status: str
    note: str | None = None
    erp_vendor_id: str | None = None
    idempotency_key: str


class DocumentLookup(BaseModel):
    application_id: str
    document_id: str


class VendorPortalActivities:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @activity.defn(name="vendors.get_application")
    async def get_application(self, lookup: ApplicationLookup) -> VendorApplication:
        return VendorApplication.model_validate(
            await call(self._client, "GET", f"/vendors/applications/{lookup.application_id}")
        )

    @activity.defn(name="vendors.set_application_status")
    async def set_application_status(self, change: ApplicationStatusChange) -> VendorApplication:
        return VendorApplication.model_validate(
            await call(
                self._client,
                "POST",
                f"/vendors/applications/{change.application_id}/status",
                json=change.model_dump(
                    mode="json", exclude={"application_id", "idempotency_key"}, exclude_none=True
                ),
                idempotency_key=change.idempotency_key,
            )
        )

    @activity.defn(name="vendors.get_document")
    async def get_document(self, lookup: DocumentLookup) -> VendorDocument:
        """A document as the vendor uploaded it to the portal."""
        return VendorDocument.model_validate(
            await call(
                self._client,
                "GET",
                f"/vendors/applications/{lookup.application_id}/documents/{lookup.document_id}",
            )
        )
