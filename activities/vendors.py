"""Vendor portal tools: read an application with its documents (or one document), set its
status."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record

DOCUMENT_KIND_PATTERN = r"^[a-z][a-z0-9_]*$"


RECORD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


MAX_DOCUMENT_CHARS = 20000


class VendorDocument(Record):
    document_id: str
    kind: str
    """What the vendor says the document is, e.g. ``tax_certificate``."""
    filename: str = ""
    content: str
    uploaded_at: str | None = None
    superseded_by: str | None = None
    """A later upload of the same kind that replaced this one, if any."""


class VendorApplication(Record):
    application_id: str
    vendor_name: str
    country: str
    tax_id: str
    bank_account: str
    """The IBAN the vendor wants to be paid to."""
    contact_email: str
    risk_flags: list[str] = Field(default_factory=list)
    """Findings of the vendor portal's screening (adverse media, sanctions hits ...)."""
    status: str
    erp_vendor_id: str | None = None
    documents: list[VendorDocument] = Field(default_factory=list)
    """The current document of each kind."""


class DocumentResubmission(BaseModel):
    """A document the vendor sends again (or for the first time) while the case waits for it:
    the ``resubmit`` signal's input. The case reads the document back from the vendor portal,
    where the vendor uploaded it, and checks the portal's copy like the documents it started
    with."""

    model_config = ConfigDict(extra="forbid")

    application_id: str = Field(min_length=1, max_length=64, pattern=RECORD_ID_PATTERN)
    document_id: str = Field(min_length=1, max_length=64, pattern=RECORD_ID_PATTERN)
    kind: str = Field(max_length=64, pattern=DOCUMENT_KIND_PATTERN)
    filename: str = Field(min_length=1, max_length=255)
    content: str = Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)
    submitted_by: str | None = Field(
        default=None, max_length=254, description="Who at the vendor sent it (for the audit)."
    )

    def as_document(self) -> VendorDocument:
        return VendorDocument(
            document_id=self.document_id,
            kind=self.kind,
            filename=self.filename,
            content=self.content,
        )


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


class VendorPortalActivities(SystemActivities):
    system = "vendor portal"

    @read_only_tool(
        name="get_vendor_application",
        description="Read a vendor onboarding application in the vendor portal.",
    )
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

    @read_only_tool(
        name="get_vendor_document",
        description="Read a document a vendor uploaded to the portal, as text.",
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
