"""The document checker: reads one vendor document and extracts what it states.

It only extracts. It is not told what the application says (name, tax ID, IBAN), so it cannot be
talked into "confirming" them; the vendor-onboarding policy compares its extraction with the
application and decides whether the document is in order.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from casework.agents.checks import (
    Form,
    ProposalChecks,
    ValueCheck,
    occurs_in,
    opinion,
    valid_iban,
)
from casework.agents.spec import AgentSpec

DOCUMENT_CHECKER = "document_checker"
DOCUMENT_EXTRACTION = "vendor_document_extraction"
OTHER_KIND = "other"

SYSTEM_PROMPT = (
    "You are a vendor-onboarding clerk. You read one document a vendor submitted (the text of a "
    "scan) and extract exactly what it states: what kind of document it is, the company name, "
    "the tax ID, the IBAN and the date it is valid until. List anything that makes it unusable "
    "(unsigned, a draft, illegible, altered). Never guess: a value the document does not state "
    "is null. You only extract; a policy compares your extraction with the application and "
    "decides."
)


def task_for(kinds: list[str]) -> str:
    """The instruction for one document; ``kinds`` are the kinds the policy knows."""
    return (
        "Extract the fields of this vendor document. document_kind is one of: "
        + ", ".join([*kinds, OTHER_KIND])
        + "."
    )


class DocumentExtraction(BaseModel):
    document_kind: str = Field(description="What the document is, from the kinds in the task.")
    company_name: str | None = Field(default=None, description="The company the document names.")
    tax_id: str | None = None
    iban: str | None = None
    valid_until: date | None = Field(
        default=None, description="The last day the document is valid, if it states one."
    )
    issues: list[str] = Field(
        default_factory=list, description="What makes the document unusable, if anything."
    )
    confidence: float = Field(ge=0, le=1, description="How sure the reading is.")

    def headline(self) -> str:
        return f"read it as {self.document_kind} with confidence {self.confidence:.2f}"

    def recommended_action(self) -> None:
        # It reads a document; the reviews that follow decide on the vendor, which is not its
        # proposal, so no decision either follows or overrides it.
        return None


# -- offline stand-in ---------------------------------------------------------------------------

# Title words that say what a document is, tried in this order ("tax registration" is a tax
# certificate, not a company registration).
_KIND_WORDS = (
    ("tax", "tax_certificate"),
    ("bank", "bank_confirmation"),
    ("register", "company_registration"),
    ("registration", "company_registration"),
    ("incorporation", "company_registration"),
)
_FIELDS = {
    "company": "company_name",
    "company name": "company_name",
    "account holder": "company_name",
    "tax id": "tax_id",
    "vat id": "tax_id",
    "iban": "iban",
    "valid until": "valid_until",
}
_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.+?)\s*$")


def stand_in_extraction(context: dict[str, Any]) -> DocumentExtraction:
    """Offline stand-in: reads ``Label: value`` lines and the title line of the document text.

    Reported as the stand-in by the activity; good enough to run the process without a model.
    """
    content = str(context.get("document", {}).get("content", ""))
    lines = [line for line in content.splitlines() if line.strip()]
    title = re.findall(r"[a-z]+", lines[0].casefold()) if lines else []
    kind = next((kind for word, kind in _KIND_WORDS if word in title), OTHER_KIND)
    fields: dict[str, Any] = {}
    issues: list[str] = []
    for line in lines[1:]:
        match = _LINE.match(line)
        if match and (name := _FIELDS.get(match.group(1).casefold())):
            fields[name] = match.group(2)
    if raw_date := fields.pop("valid_until", None):
        try:
            fields["valid_until"] = date.fromisoformat(raw_date)
        except ValueError:
            issues.append(f"validity date {raw_date!r} is not a date")
    if "draft" in title:
        issues.append("it is marked as a draft")
    if "unsigned" in content.casefold():
        issues.append("it is unsigned")
    readable = kind != OTHER_KIND and bool(fields)
    return DocumentExtraction(
        document_kind=kind, issues=issues, confidence=0.9 if readable else 0.3, **fields
    )


def check_extraction(
    extraction: DocumentExtraction, document_id: str, content: str
) -> ProposalChecks:
    """How the checker's reading of one document is checked before the policy compares it.

    Every value it says the document states must occur in the document's text (an IBAN with or
    without spaces, a date in any common form), and an IBAN must be a valid one. A value it says
    the document does not state cannot be checked: the policy looks for the application's
    value in the text itself. What kind of document it is, the issues it sees and its
    confidence are its judgement, and can only make a document unacceptable.
    """
    source = {document_id: content}
    checks: list[ValueCheck] = [
        occurs_in(field, value, source)
        for field, value in (
            ("company_name", extraction.company_name),
            ("tax_id", extraction.tax_id),
            ("iban", extraction.iban),
        )
        if value
    ]
    if extraction.iban:
        checks.append(valid_iban("iban", extraction.iban))
    if extraction.valid_until is not None:
        checks.append(occurs_in("valid_until", extraction.valid_until, source, Form.DATE))
    checks += [
        opinion(
            "document_kind",
            extraction.document_kind,
            "another kind than the one it was filed as makes the document invalid",
        ),
        opinion(
            "issues",
            "; ".join(extraction.issues) or "none",
            "any issue makes the document invalid; none proves nothing",
        ),
        opinion(
            "confidence",
            extraction.confidence,
            "below the policy's minimum the vendor is asked for a legible copy",
        ),
    ]
    return ProposalChecks(agent=DOCUMENT_CHECKER, checks=checks)


DOCUMENT_CHECKER_AGENT = AgentSpec(
    name=DOCUMENT_CHECKER,
    output=DOCUMENT_EXTRACTION,
    model=DocumentExtraction,
    system_prompt=SYSTEM_PROMPT,
    # The kinds come from the case's policy: each call passes task_for(kinds).
    task=task_for([]),
    stand_in=stand_in_extraction,
)
