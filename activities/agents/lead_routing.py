"""The lead analyst: reads what a prospect wrote and says what they want, and how sure it is.

It reads; it never routes. Which account executive gets the lead, and whether a person looks
first, is decided by the lead-routing policy from this read, the ICP score and the CRM.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from casework.agents.checks import (
    CheckBasis,
    ProposalChecks,
    ValueCheck,
    Verdict,
    occurs_in,
    opinion,
)
from casework.agents.spec import AgentSpec

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
    "product needs) found in its message, each quoted word for word from the message, and "
    "summarise in one sentence what the person wants."
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
        default_factory=list,
        description="Team size, budget, timeline, named needs: quoted word for word.",
    )

    def headline(self) -> str:
        return f"reads {self.intent.value} with confidence {self.confidence:.2f}"

    def recommended_action(self) -> str:
        # A review approves the routing the read went into, so approving follows the agent and
        # rejecting overrides it.
        return "approve"


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
    # The signals are the message's own words, as the read's check requires of any analyst.
    matches = {
        intent: [
            found.group(0)
            for word in words
            if (found := re.search(rf"\b{re.escape(word)}\w*", message))
        ]
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


def check_read(read: LeadRead, message: str, sales_intents: list[LeadIntent]) -> ProposalChecks:
    """How the analyst's read is checked before it counts toward routing a lead without a person.

    Its intent and confidence are judgement. A sales intent counts only when it is backed by
    buying signals quoted from the lead's own ``message``: each must occur there, and there must
    be at least one. Any other intent counts for nothing, so it needs no check.
    """
    checks: list[ValueCheck] = [
        opinion(
            "intent",
            read.intent.value,
            "a sales intent counts toward routing without a person only with the buying "
            "signals it cites found in the message",
        ),
        opinion("confidence", read.confidence, "weighs in only with a sales intent"),
    ]
    if read.intent in sales_intents:
        source = {"the lead's message": message}
        checks += [occurs_in("buying signal", signal, source) for signal in read.buying_signals]
        if not read.buying_signals:
            checks.append(
                ValueCheck(
                    field="buying_signals",
                    value="",
                    basis=CheckBasis.DOCUMENT,
                    verdict=Verdict.UNVERIFIED,
                    finding=f"a {read.intent.value} read cites nothing from the lead's message",
                )
            )
    return ProposalChecks(agent=LEAD_ANALYST, checks=checks)


LEAD_ANALYST_AGENT = AgentSpec(
    name=LEAD_ANALYST,
    output=LEAD_READ,
    model=LeadRead,
    system_prompt=SYSTEM_PROMPT,
    task=TASK,
    stand_in=stand_in_read,
)
