"""The identity-document reader: reads an applicant's identity document and extracts what it says.

It only extracts. It is not told what the application says, so it cannot be talked into
"confirming" it; every value it reads is then checked against the document's own text, the
application and the KYC registry before the onboarding policy uses it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from casework.agents.checks import (
    Form,
    ProposalChecks,
    ValueCheck,
    matches_record,
    occurs_in,
    opinion,
)
from casework.agents.spec import AgentSpec

IDENTITY_READER = "identity_reader"
IDENTITY_READING = "identity_document_reading"
IDENTITY_FIELDS = ("full_name", "date_of_birth", "document_number")
"""The values the policy uses, each checked three ways: the document, the application, KYC."""

SYSTEM_PROMPT = (
    "You are a bank's onboarding clerk. You read one identity document (the text of a scan of a "
    "passport or national identity card) and extract exactly what it states: the kind of "
    "document, the holder's full name, date of birth, the document number, the nationality "
    "and the expiry date. List anything that makes it unusable (expired, altered, illegible, a "
    "specimen). Never guess: a value the document does not state is null. You only extract; "
    "the bank checks your reading against its records and decides."
)


class IdentityReading(BaseModel):
    document_kind: Literal["passport", "identity_card", "other"]
    full_name: str | None = Field(default=None, description="Given names then surname.")
    date_of_birth: date | None = None
    document_number: str | None = None
    nationality: str | None = Field(default=None, description="ISO 3166 alpha-2, if stated.")
    expiry_date: date | None = None
    issues: list[str] = Field(
        default_factory=list, description="What makes the document unusable, if anything."
    )
    confidence: float = Field(ge=0, le=1, description="How sure the reading is.")

    def headline(self) -> str:
        return (
            f"read a {self.document_kind} of {self.full_name or 'an unnamed holder'} "
            f"with confidence {self.confidence:.2f}"
        )

    def recommended_action(self) -> None:
        # It reads a document; whether to onboard the applicant is not its proposal.
        return None


# -- offline stand-in ---------------------------------------------------------------------------

_FIELDS = {
    "surname": "surname",
    "given names": "given_names",
    "name": "full_name",
    "date of birth": "date_of_birth",
    "document number": "document_number",
    "passport no": "document_number",
    "nationality": "nationality",
    "date of expiry": "expiry_date",
}
_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z .]*?)\s*:\s*(.+?)\s*$")


def _a_date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def stand_in_reading(context: dict[str, Any]) -> IdentityReading:
    """Offline stand-in: reads ``Label: value`` lines and the title line of the document text.

    Reported as the stand-in by the activity; good enough to run the process without a model."""
    text = str(context.get("document", {}).get("text", ""))
    lines = [line for line in text.splitlines() if line.strip()]
    title = lines[0].casefold() if lines else ""
    kind: Literal["passport", "identity_card", "other"] = (
        "passport" if "passport" in title else "identity_card" if "identity" in title else "other"
    )
    fields: dict[str, str] = {}
    for line in lines[1:]:
        match = _LINE.match(line)
        if match and (name := _FIELDS.get(match.group(1).casefold().rstrip("."))):
            fields[name] = match.group(2)
    full_name = fields.get("full_name") or " ".join(
        part for part in (fields.get("given_names"), fields.get("surname")) if part
    )
    issues = ["it is marked as a specimen"] if "specimen" in text.casefold() else []
    readable = kind != "other" and bool(full_name)
    return IdentityReading(
        document_kind=kind,
        full_name=full_name or None,
        date_of_birth=_a_date(fields.get("date_of_birth")),
        document_number=fields.get("document_number"),
        nationality=fields.get("nationality"),
        expiry_date=_a_date(fields.get("expiry_date")),
        issues=issues,
        confidence=0.9 if readable else 0.3,
    )


def check_reading(
    reading: IdentityReading,
    document_text: str,
    application: dict[str, Any],
    registered: dict[str, Any] | None,
) -> ProposalChecks:
    """How the reader's values are checked before the policy uses them.

    Name, date of birth and document number must each occur in the document's text (so the
    reader cannot invent one), equal what the applicant stated (so the document is theirs), and
    equal what the KYC registry holds for that document number (so the document is genuine and
    current): ``registered`` is None when the registry holds no such document, and then nothing
    is verified by it. The kind of document, its issues and the reader's confidence are
    judgement: they can send an applicant to enhanced due diligence, never onboard one.
    """
    source = {"the identity document": document_text}
    values: dict[str, object] = {
        "full_name": reading.full_name,
        "date_of_birth": reading.date_of_birth,
        "document_number": reading.document_number,
    }
    checks: list[ValueCheck] = []
    for field, value in values.items():
        form = Form.DATE if field == "date_of_birth" else Form.TEXT
        checks.append(occurs_in(field, value, source, form))
        checks.append(matches_record(field, value, application.get(field), "the application"))
        checks.append(
            matches_record(field, value, (registered or {}).get(field), "the KYC registry")
        )
    checks += [
        opinion(
            "document_kind", reading.document_kind, "other than a passport or ID card: a person"
        ),
        opinion(
            "issues",
            "; ".join(reading.issues) or "none",
            "any issue sends the applicant to enhanced due diligence; none proves nothing",
        ),
        opinion("confidence", reading.confidence, "below the policy's minimum: a person"),
    ]
    return ProposalChecks(agent=IDENTITY_READER, checks=checks)


IDENTITY_READER_AGENT = AgentSpec(
    name=IDENTITY_READER,
    output=IDENTITY_READING,
    model=IdentityReading,
    system_prompt=SYSTEM_PROMPT,
    task="Extract the fields of this identity document.",
    stand_in=stand_in_reading,
)
