"""Amounts: what a currency can hold, and how a person writes one.

Pure computation, safe in workflow code: the case's decision rules
(``casework.governance.rules``), the decision model (``casework.case.tasks``), the CLI and the
review queue all use this one module, so an amount means the same wherever it is typed or checked.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """``value`` rounded to cents, thousands grouped. Never raises, whatever it is given: a
    decision can carry any amount, and a message about it must not fail the case. What cannot
    be rounded (``1E+400``, Infinity) is shown as it is."""
    try:
        return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    except InvalidOperation:
        return str(value)


MINOR_UNITS: dict[str, int] = {
    # ISO 4217 currencies whose minor unit is not the cent; every other currency has 2 decimals.
    **dict.fromkeys(
        [
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
            "VND", "VUV", "XAF", "XOF", "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}  # fmt: skip
DEFAULT_MINOR_UNIT = 2

MAX_INTEGER_DIGITS = 15
"""Up to 999 trillion: more than any case pays, and few enough digits that every amount is
computed exactly (decimal's default precision is 28 digits)."""
MAX_DECIMAL_PLACES = 12
"""Far more than any currency's minor unit: an amount with more is garbage, not a price."""

_PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?")
EXAMPLE = "12600.00"


class AmountError(ValueError):
    """An amount as a person typed it cannot be read unambiguously; the message says why."""


def minor_unit(currency: str) -> int:
    """How many decimals ``currency`` has (EUR 2, JPY 0, KWD 3)."""
    return MINOR_UNITS.get(currency.upper(), DEFAULT_MINOR_UNIT)


def decimal_places(value: Decimal) -> int:
    """The decimals ``value`` is written with, trailing zeros included: ``12.600`` has 3. In a
    currency with 2 decimals that is refused rather than read as 12.60, since much of Europe
    writes twelve thousand six hundred that way."""
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def size_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be an amount at all (not a number, absurdly large or long); None
    when it can. Checked without expanding the number, whatever its exponent."""
    if not value.is_finite():
        return f"{value} is not a number"
    if value and value.adjusted() >= MAX_INTEGER_DIGITS:
        return f"{value} has more than {MAX_INTEGER_DIGITS} digits before the decimal point"
    if decimal_places(value) > MAX_DECIMAL_PLACES:
        return f"{value} has more than {MAX_DECIMAL_PLACES} decimal places"
    return None


def exact(value: Decimal) -> str:
    """``value`` as written, thousands grouped and never rounded (12,600.001): a refusal must
    quote what was sent, or it reads "12,600.00 is above 12,600.00"."""
    if size_problem(value):
        return str(value)
    return f"{value:,f}"


def parse_amount(text: str) -> Decimal:
    """An amount a person typed (``casework approve --amount``, the review queue's form).

    One unambiguous form only: digits, optionally a point and decimals (``12600.00``). A comma
    is refused rather than guessed at: ``12.600,00`` and ``12,600.00`` mean the same to different
    readers, and stripping it once paid 12.60 for 12,600.00. Exponents (``1e3``), signs, spaces,
    NaN and Infinity are refused too.
    """
    typed = text.strip()
    shown = repr(text)
    if not typed:
        raise AmountError("no amount given")
    if "," in typed:
        raise AmountError(
            f"amount {shown} has a comma: write digits with a point for decimals and no "
            f"thousands separator, e.g. {EXAMPLE}"
        )
    if typed.startswith("-"):
        raise AmountError(f"amount {shown} must be above 0")
    if not _PLAIN.fullmatch(typed):
        raise AmountError(
            f"amount {shown} is not a plain amount: write digits with a point for decimals, "
            f"e.g. {EXAMPLE} (no exponent, sign, spaces or separators)"
        )
    amount = Decimal(typed)
    if problem := size_problem(amount):
        raise AmountError(f"amount {problem}")
    if amount <= 0:
        raise AmountError(f"amount {shown} must be above 0")
    return amount
