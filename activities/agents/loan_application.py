"""The income reader: reads the income documents no payroll feed covers and says what they show.

A freelancer's statement, a foreign pension letter or a rental contract has no structured monthly
amount; the agent reads it and proposes the monthly income it supports, with a confidence, or
says what is missing. It only proposes: the loan policy decides what follows.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from casework.agents.checks import (
    Form,
    ProposalChecks,
    ValueCheck,
    adds_up,
    occurs_in,
    on_record,
    opinion,
    within,
)
from casework.agents.spec import AgentSpec

INCOME_READER = "income_reader"
INCOME_READING = "income_reading"

SYSTEM_PROMPT = (
    "You are a loan underwriting assistant. You read income documents that do not come from a "
    "payroll system (freelance statements, pension letters, rental contracts, foreign pay "
    "slips) and state the regular monthly income in the loan's currency that they support. "
    "Count only income the documents evidence; say what is missing when they do not support a "
    "figure. You only propose; a policy and a human decide."
)

TASK = (
    "Read the applicant's non-standard income documents and any reply they sent. State the "
    "monthly income they support (null if they do not support one), the monthly amount each "
    "document states exactly as it is written there, how confident you are, what you found per "
    "document, and what the applicant should still provide."
)


class IncomeAssessment(StrEnum):
    SUPPORTED = "supported"
    """The documents evidence a regular monthly income."""
    INSUFFICIENT = "insufficient"
    """They do not: the applicant has to provide more."""


class DocumentIncome(BaseModel):
    document_id: str = Field(description="The document, by its document_id.")
    monthly_amount: Decimal = Field(ge=0, description="The monthly amount it states.")


class IncomeReading(BaseModel):
    assessment: IncomeAssessment
    verified_monthly_income: Decimal | None = Field(
        default=None, ge=0, description="Monthly income the documents support; null if none."
    )
    per_document: list[DocumentIncome] = Field(
        default_factory=list,
        description="The monthly amount each document states, as stated there; they add up to "
        "verified_monthly_income.",
    )
    confidence: float = Field(ge=0, le=1)
    findings: list[str] = Field(default_factory=list, description="What each document shows.")
    missing: list[str] = Field(
        default_factory=list, description="What the applicant should still provide."
    )
    explanation: str = Field(min_length=1)

    def headline(self) -> str:
        income = self.verified_monthly_income
        return (
            f"reads income {self.assessment.value}"
            + (f", {income} a month" if income is not None else "")
            + f", confidence {self.confidence:.2f}"
        )

    def recommended_action(self) -> None:
        # It reads the income; the underwriting decision a person may approve is not its
        # proposal, so a decision either way neither follows nor overrides it.
        return None


# A money amount next to its currency: "3,950.00 EUR", "EUR 1 450.50", "€800".
_NUMBER = r"([0-9][0-9,. ]*[0-9]|[0-9])"
_MONEY = re.compile(
    rf"(?:{_NUMBER}\s*(?:EUR|€|USD|\$))|(?:(?:EUR|€|USD|\$)\s*{_NUMBER})", re.IGNORECASE
)
_MONTHLY = re.compile(r"monthly|per month|a month|/\s*month", re.IGNORECASE)


def _amount(text: str) -> Decimal | None:
    """The first money amount of a text that speaks of monthly income; None otherwise."""
    if not _MONTHLY.search(text):
        return None
    for match in _MONEY.finditer(text):
        digits = (match.group(1) or match.group(2)).replace(",", "").replace(" ", "")
        try:
            return Decimal(digits)
        except InvalidOperation:
            continue
    return None


def stand_in_reading(context: dict[str, Any]) -> IncomeReading:
    """Offline stand-in: takes the first amount each document states per month, and nothing
    more. It never pretends to be a model: its explanation says what it is."""
    documents = context.get("documents", [])
    found: list[str] = []
    unread: list[str] = []
    parts: list[DocumentIncome] = []
    for document in documents:
        amount = _amount(f"{document.get('description', '')}\n{document.get('text', '')}")
        name = document.get("document_id", "document")
        if amount is None:
            unread.append(name)
        else:
            parts.append(DocumentIncome(document_id=name, monthly_amount=amount))
            found.append(f"{name}: states {amount} per month")
    if not found:
        return IncomeReading(
            assessment=IncomeAssessment.INSUFFICIENT,
            confidence=0.3,
            findings=[f"{name}: no monthly amount stated" for name in unread],
            missing=["a document that states the monthly income, e.g. a year's bank statements"],
            explanation="Offline stand-in rule: no document states a monthly amount.",
        )
    return IncomeReading(
        assessment=IncomeAssessment.SUPPORTED,
        verified_monthly_income=sum((part.monthly_amount for part in parts), Decimal(0)),
        per_document=parts,
        # Amounts read from every document are as good as a rule of thumb gets; some unread
        # documents mean a person should look.
        confidence=0.85 if not unread else 0.6,
        findings=found + [f"{name}: no monthly amount stated" for name in unread],
        explanation="Offline stand-in rule: summed the monthly amounts the documents state.",
    )


def check_reading(
    reading: IncomeReading,
    documents: dict[str, str],
    declared_income: Decimal,
    other_income: Decimal,
) -> ProposalChecks:
    """How the reader's figure is checked before the loan policy may count it.

    ``documents`` are the texts it read, by document ID. Each amount it attributes to a document
    must be stated in that document (a single figure, in one of them), the amounts must add up
    to its total, and the total may not exceed what the applicant declared less the ``other``
    income payroll feeds already evidence: a reader finding more income than the applicant
    claims is a reason for a person to look, not to lend more. Its assessment and confidence
    are its judgement.
    """
    checks: list[ValueCheck] = [
        opinion(
            "assessment",
            reading.assessment.value,
            "insufficient may ask the applicant for more; supported lets the figure count only "
            "once it is verified",
        ),
        opinion(
            "confidence",
            reading.confidence,
            "below the policy's minimum it sends the case to an underwriter",
        ),
    ]
    income = reading.verified_monthly_income
    if reading.assessment is not IncomeAssessment.SUPPORTED:
        return ProposalChecks(agent=INCOME_READER, checks=checks)
    if income is None:
        checks.append(occurs_in("verified_monthly_income", income, documents, Form.AMOUNT))
        return ProposalChecks(agent=INCOME_READER, checks=checks)
    if reading.per_document:
        for part in reading.per_document:
            field = f"monthly amount of {part.document_id}"
            if part.document_id in documents:
                checks.append(
                    occurs_in(
                        field,
                        part.monthly_amount,
                        {part.document_id: documents[part.document_id]},
                        Form.AMOUNT,
                    )
                )
            else:
                checks.append(
                    on_record(field, part.document_id, False, "the documents it was given")
                )
        checks.append(
            adds_up(
                "verified_monthly_income",
                income,
                [(part.document_id, part.monthly_amount) for part in reading.per_document],
            )
        )
    else:
        checks.append(occurs_in("verified_monthly_income", income, documents, Form.AMOUNT))
    checks.append(
        within(
            "verified_monthly_income",
            income,
            at_most=max(declared_income - other_income, Decimal(0)),
            bound=f"the declared monthly income {declared_income:,}"
            + (f" less {other_income:,} from payroll feeds" if other_income else ""),
        )
    )
    return ProposalChecks(agent=INCOME_READER, checks=checks)


INCOME_READER_AGENT = AgentSpec(
    name=INCOME_READER,
    output=INCOME_READING,
    model=IncomeReading,
    system_prompt=SYSTEM_PROMPT,
    task=TASK,
    stand_in=stand_in_reading,
)
