"""Rules every policy with approval tiers shares: amounts in the policy's own currency, the tier
that covers an amount, and amounts nobody in the directory may approve.

No I/O, no clock, no randomness: workflows call these functions directly (each process's own rules
sit in its policy module), and every result can be recomputed from the case's history.
"""

from __future__ import annotations

from decimal import Decimal

from casework.amounts import money
from casework.governance.models import ApprovalPolicy, ApprovalTier, Directory


def foreign_currency(policy: ApprovalPolicy, currency: str) -> str | None:
    """Why the policy's amounts (thresholds, ceilings, tiers) say nothing about an amount in
    ``currency``; None when they do.

    The rule: a policy states its amounts in one currency and converts none. A case in another
    currency is never decided by an amount rule: it goes to the policy's top tier, where only a
    role without an approval limit may approve it (see :func:`refusal_reasons`).
    """
    if policy.currency is None or currency == policy.currency:
        return None
    return (
        f"the amount is in {currency}, the policy's amounts are in {policy.currency}: "
        "a person decides"
    )


def tier_for_amount(tiers: list[ApprovalTier], amount: Decimal, *, foreign: bool = False) -> int:
    """The tier whose ceiling covers ``amount``; the top tier for an amount in another currency
    than the tiers' (``foreign``), which no ceiling describes."""
    if foreign:
        return len(tiers) - 1
    for index, tier in enumerate(tiers):
        if tier.max_amount is None or amount <= tier.max_amount:
            return index
    # A policy whose top tier has a ceiling cannot approve above it: that tier still gets the
    # task, and the approval limits in the directory decide who can actually sign.
    return len(tiers) - 1


def approval_gaps(policy: ApprovalPolicy, directory: Directory) -> list[str]:
    """The amounts ``policy`` routes to people none of whom may approve them, each naming the
    tiers and the amounts; empty when every amount it can route has someone.

    A tier's task may be decided by its role and every role above it; approving needs a limit
    that covers the amount (``refusal_reasons``). A case in another currency than the policy's
    goes to the top tier, where only a role without a limit may approve it.
    """
    gaps: list[str] = []
    same_currency = None in (policy.currency, directory.currency) or (
        policy.currency == directory.currency
    )

    def limit(role: str) -> Decimal | None:
        entry = directory.roles.get(role)
        if entry is None:
            return Decimal(0)
        if entry.approval_limit is None:
            return None
        # A limit in another currency covers nothing in the policy's.
        return entry.approval_limit if same_currency else Decimal(0)

    for ladder in policy.amount_ladders():
        tiers = ladder.tiers
        lower = Decimal(0)
        for index, tier in enumerate(tiers):
            last = index == len(tiers) - 1
            # The last tier takes every amount above the others, whatever its own ceiling.
            upper = None if last else tier.max_amount
            if ladder.ceiling is not None:
                upper = ladder.ceiling if upper is None else min(upper, ladder.ceiling)
            if upper is not None and upper <= lower:
                break
            deciders = [t.role for t in tiers[index:]]
            limits = [limit(role) for role in deciders]
            if None not in limits:
                covered = max(value for value in limits if value is not None)
                if upper is None or covered < upper:
                    span = f"above {money(max(covered, lower))}" + (
                        f" up to {money(upper)}" if upper is not None else ""
                    )
                    gaps.append(
                        f"{ladder.field}: {span} {policy.currency} goes to {tier.role}, and no "
                        f"one who may decide it ({', '.join(deciders)}) has an approval limit "
                        "that covers it"
                    )
            if upper is None or tier.max_amount is None:
                break
            lower = upper
        top = tiers[-1].role
        if policy.currency is not None and limit(top) is not None:
            gaps.append(
                f"{ladder.field}: a case in another currency than {policy.currency} goes to "
                f"{top}, whose approval limit covers no other currency: nobody may approve it"
            )
    return gaps
