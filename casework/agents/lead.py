"""The lead analyst: reads what a prospect wrote and says what they want, and how sure it is.

It reads; it never routes. Which account executive gets the lead, and whether a person looks
first, is decided by the lead-routing policy from this read, the ICP score and the CRM.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from casework.agents.registry import AgentOutput, register

LEAD_ANALYST = "lead_analyst"
LEAD_READ = "lead_read"

SYSTEM_PROMPT = (
    "You are a sales development analyst. You read one inbound lead at a time: the contact's "
    "name, job title, company, and the message they wrote in a web form. Say what the person "
    "wants (their intent), the buying signals you see, and how confident you are. You only "
    "read; a routing policy and, when it is unsure, a person decide what happens to the lead."
)

TASK = (
    "Classify this lead's intent, list the buying signals (team size, budget, timeline, named "
    "product needs) found in its message, and summarise in one sentence what the person wants."
)


class LeadIntent(StrEnum):
    PURCHASE = "purchase"
    """Wants to buy: pricing, a quote, seats, a contract."""
    EVALUATION = "evaluation"
    """Comparing options: a demo, a trial, a pilot."""
    PARTNERSHIP = "partnership"
    SUPPORT = "support"
    """An existing user with a problem: belongs with support, not an account executive."""
    JOB_APPLICATION = "job_application"
    SPAM = "spam"
    UNCLEAR = "unclear"


class LeadRead(BaseModel):
    intent: LeadIntent
    confidence: float = Field(ge=0, le=1, description="How sure the read of the intent is.")
    summary: str = Field(min_length=1, description="What the person wants, in one sentence.")
    buying_signals: list[str] = Field(
        default_factory=list, description="Team size, budget, timeline, named needs."
    )


# The stand-in's rule of thumb: words that point at each intent, matched as word prefixes.
_INTENT_WORDS: dict[LeadIntent, tuple[str, ...]] = {
    LeadIntent.PURCHASE: (
        "pricing",
        "price",
        "quote",
        "buy",
        "purchas",
        "licen",
        "seats",
        "budget",
    ),
    LeadIntent.EVALUATION: ("demo", "trial", "evaluat", "compar", "pilot"),
    LeadIntent.PARTNERSHIP: ("partner", "reseller", "integration partner"),
    LeadIntent.SUPPORT: ("password", "login", "bug", "error", "broken", "support ticket"),
    LeadIntent.JOB_APPLICATION: ("job", "career", "resume", "internship", "position"),
    LeadIntent.SPAM: ("seo", "backlink", "guest post", "crypto"),
}


def stand_in_read(context: dict[str, Any]) -> LeadRead:
    """Offline stand-in: keyword counts over the lead's message, never a pretend model.

    The intent with most matching words wins (ties in the order above); two or more matches
    read as fairly sure, one as less so, none as unclear.
    """
    message = str(context.get("lead", {}).get("message", "")).casefold()
    matches = {
        intent: [word for word in words if re.search(rf"\b{re.escape(word)}", message)]
        for intent, words in _INTENT_WORDS.items()
    }
    intent, signals = max(matches.items(), key=lambda item: len(item[1]))
    if not signals:
        return LeadRead(
            intent=LeadIntent.UNCLEAR,
            confidence=0.3,
            summary="The message does not say what the person wants.",
            buying_signals=[],
        )
    return LeadRead(
        intent=intent,
        confidence=0.9 if len(signals) >= 2 else 0.7,
        summary=f"Offline stand-in rule: the message reads as {intent.value}.",
        buying_signals=signals,
    )


register(AgentOutput(name=LEAD_READ, model=LeadRead, stand_in=stand_in_read))
