"""An agent's word is not a fact: how each value an agent proposes is checked before it is used.

An agent reads documents and records and proposes values: a monthly income, an IBAN, a ticket's
category. A policy or a write may use such a value only once it is checked, and each process
declares, value by value, how:

- against a system-of-record value (the ticket's own category, the article the KB holds),
- against the document text it claims to come from: the value must occur there, however it is
  formatted there (``1,000.00 EUR`` for 1000.00, an IBAN with or without spaces),
- by a deterministic validator (an IBAN's ISO 13616 length and mod-97 checksum, parts adding up),
- bounded by policy (an income never above the one the applicant declared),
- or as opinion: the agent's judgement, which may hold a case back for a person but never
  decides one on its own.

Everything here is pure, so workflows and the policies' rules use it directly. A case records
each ``ProposalChecks`` in its audit trail (``AuditKind.PROPOSAL_CHECKED``) and hands it to its
rules: a value that is not verified never auto-approves and never reaches a write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from pydantic import BaseModel


class CheckBasis(StrEnum):
    RECORD = "record"
    """Equal to what a system of record says."""
    DOCUMENT = "document"
    """Occurs in the text of the document it claims to come from."""
    VALIDATOR = "validator"
    """Passes a deterministic validator."""
    POLICY = "policy"
    """Within a bound the policy sets."""
    OPINION = "opinion"
    """Judgement: may hold a case back for a person, never decides it."""


class Verdict(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    """The check failed, or there was nothing to check against: the value must not be used."""
    OPINION = "opinion"


class ValueCheck(BaseModel):
    """One proposed value, how it was checked, and what the check found."""

    field: str
    value: str
    """As proposed, rendered for people."""
    basis: CheckBasis
    verdict: Verdict
    finding: str
    """What it was checked against and what was found, for people."""

    @property
    def verified(self) -> bool:
        return self.verdict is Verdict.VERIFIED

    def describe(self) -> str:
        return f"{self.field} {self.value!r} ({self.basis.value}): {self.finding}"


class ProposalChecks(BaseModel):
    """Every check on one agent's proposal."""

    agent: str
    checks: list[ValueCheck]

    @property
    def unverified(self) -> list[ValueCheck]:
        """The values that must not be used: every check that is neither verified nor opinion."""
        return [check for check in self.checks if check.verdict is Verdict.UNVERIFIED]

    @property
    def all_verified(self) -> bool:
        return not self.unverified

    def of(self, field: str) -> list[ValueCheck]:
        return [check for check in self.checks if check.field == field]

    def field_verified(self, field: str) -> bool:
        """Whether ``field`` was checked and every check on it passed (an opinion never is)."""
        checks = self.of(field)
        return bool(checks) and all(check.verified for check in checks)

    def reasons(self, checks: Iterable[ValueCheck] | None = None) -> list[str]:
        """Why the unverified values (or ``checks``) cannot be used, one line each."""
        chosen = self.unverified if checks is None else list(checks)
        return [f"{self.agent}'s {check.describe()}" for check in chosen]

    def summary(self) -> str:
        counts = {
            verdict: sum(1 for check in self.checks if check.verdict is verdict)
            for verdict in Verdict
        }
        tally = ", ".join(f"{count} {verdict.value}" for verdict, count in counts.items() if count)
        failed = self.unverified
        return f"checked {self.agent}'s proposal: {tally or 'nothing to check'}" + (
            "; not used: " + "; ".join(check.describe() for check in failed) if failed else ""
        )


def _shown(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{value:,}"
    return "" if value is None else str(value)


def _check(field: str, value: object, basis: CheckBasis, ok: bool, finding: str) -> ValueCheck:
    return ValueCheck(
        field=field,
        value=_shown(value),
        basis=basis,
        verdict=Verdict.VERIFIED if ok else Verdict.UNVERIFIED,
        finding=finding,
    )


# -- the five ways a value is checked ------------------------------------------------------------


def opinion(field: str, value: object, use: str) -> ValueCheck:
    """A judgement no record or text can confirm; ``use`` says what it may do (hold back)."""
    return ValueCheck(
        field=field,
        value=_shown(value),
        basis=CheckBasis.OPINION,
        verdict=Verdict.OPINION,
        finding=use,
    )


def matches_record(
    field: str, value: object, recorded: object | None, source: str, *, normalise: bool = True
) -> ValueCheck:
    """``value`` equals what ``source`` records (compared ignoring case, spaces and punctuation
    unless ``normalise`` is False); a source that records nothing verifies nothing."""
    if recorded is None or recorded == "":
        return _check(field, value, CheckBasis.RECORD, False, f"{source} records none to match")
    same = (
        _normal_text(str(value)) == _normal_text(str(recorded)) if normalise else value == recorded
    )
    return _check(
        field,
        value,
        CheckBasis.RECORD,
        same,
        f"{source} records {_shown(recorded)!r}" + ("" if same else ": it contradicts the record"),
    )


def on_record(field: str, value: object, found: bool, source: str) -> ValueCheck:
    """``value`` names something ``source`` holds (an article, a document)."""
    return _check(
        field,
        value,
        CheckBasis.RECORD,
        found,
        f"{source} holds it" if found else f"{source} holds nothing by that name",
    )


class Form(StrEnum):
    """How a value is written, so it is found in a text however the text formats it."""

    TEXT = "text"
    """Words and codes: compared ignoring case, spaces and punctuation, at word boundaries."""
    AMOUNT = "amount"
    """A number: ``1,000.00``, ``1.000,00``, ``1 000`` and ``1000`` are all 1000."""
    DATE = "date"
    """A day: ISO, ``31.12.2026``, ``31/12/2026``, ``12/31/2026``, ``31 December 2026`` ..."""


def occurs_in(
    field: str, value: object, sources: Mapping[str, str], form: Form = Form.TEXT
) -> ValueCheck:
    """``value`` occurs in the text of at least one of ``sources`` (name -> text)."""
    names = ", ".join(sources) or "no document"
    if value is None or value == "":
        return _check(field, value, CheckBasis.DOCUMENT, False, "no value to look for")
    found = [name for name, text in sources.items() if _occurs(value, text, form)]
    if found:
        return _check(field, value, CheckBasis.DOCUMENT, True, f"stated in {', '.join(found)}")
    return _check(field, value, CheckBasis.DOCUMENT, False, f"not stated in {names}")


def valid_iban(field: str, value: str) -> ValueCheck:
    """ISO 13616: the country's length and the mod-97 checksum."""
    problem = iban_problem(value)
    return _check(
        field,
        value,
        CheckBasis.VALIDATOR,
        problem is None,
        problem or "a valid IBAN (ISO 13616 length and mod-97 checksum)",
    )


def adds_up(field: str, value: Decimal, parts: Iterable[tuple[str, Decimal]]) -> ValueCheck:
    """A total the agent proposes is the sum of the parts (name, amount) it proposes."""
    cited = list(parts)
    total = sum((amount for _, amount in cited), Decimal(0))
    return _check(
        field,
        value,
        CheckBasis.VALIDATOR,
        total == value,
        f"the parts it cites ({', '.join(name for name, _ in cited) or 'none'}) add up to "
        f"{total:,}",
    )


def within(
    field: str,
    value: Decimal,
    *,
    at_most: Decimal | None = None,
    at_least: Decimal | None = None,
    bound: str,
    basis: CheckBasis = CheckBasis.POLICY,
) -> ValueCheck:
    """``value`` lies within ``[at_least, at_most]``; ``bound`` names where the limits come from
    (``the declared income``, ``the invoice total``)."""
    ok = (at_most is None or value <= at_most) and (at_least is None or value >= at_least)
    limits = " and ".join(
        part
        for part in (
            f"at least {at_least:,}" if at_least is not None else "",
            f"at most {at_most:,}" if at_most is not None else "",
        )
        if part
    )
    return _check(
        field,
        value,
        basis,
        ok,
        f"{'within' if ok else 'outside'} {bound} ({limits})",
    )


def one_of(field: str, value: str, known: Iterable[str], source: str) -> ValueCheck:
    """``value`` is one the policy knows (a category, a team)."""
    names = list(known)
    ok = value in names
    return _check(
        field,
        value,
        CheckBasis.POLICY,
        ok,
        f"{'one' if ok else 'not one'} of {source} ({', '.join(names)})",
    )


def allowed(field: str, value: object, refusal: str | None) -> ValueCheck:
    """A value the policy forbids in the case's circumstances (``refusal`` says why), or None."""
    return _check(
        field,
        value,
        CheckBasis.POLICY,
        refusal is None,
        refusal or "allowed by the policy here",
    )


# -- IBAN (ISO 13616) ----------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry, by country code.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def normal_iban(value: str) -> str:
    """An IBAN as compared and stored: upper case, without spaces (as people write it in
    groups of four)."""
    return "".join(value.split()).upper()


def iban_problem(value: str) -> str | None:
    """Why ``value`` is not a valid IBAN (ISO 13616), or None when it is."""
    iban = normal_iban(value)
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+", iban):
        return "not an IBAN: two letters, two check digits, then letters and digits"
    country = iban[:2]
    length = IBAN_LENGTHS.get(country)
    if length is None:
        return f"{country} is not a country of the IBAN registry"
    if len(iban) != length:
        return f"{country} IBANs have {length} characters, this one has {len(iban)}"
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        return "its check digits do not match (mod-97 checksum fails)"
    return None


# -- finding a value in a text -------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"\d(?:[\d.,'\u00a0\u202f ]*\d)?")
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


def _normal_text(value: str) -> str:
    return "".join(_WORD.findall(value.casefold()))


def _occurs(value: object, text: str, form: Form) -> bool:
    if form is Form.AMOUNT:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return False
        return amount in amounts_in(text)
    if form is Form.DATE:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        return day in dates_in(text)
    return _in_words(str(value), text)


def _in_words(value: str, text: str) -> bool:
    """``value`` is a run of whole words of ``text``, ignoring case, spaces and punctuation."""
    wanted = _normal_text(value)
    if not wanted:
        return False
    words = _WORD.findall(text.casefold())
    for start in range(len(words)):
        run = ""
        for word in words[start:]:
            run += word
            if run == wanted:
                return True
            if not wanted.startswith(run):
                break
    return False


def _readings(number: str) -> set[Decimal]:
    """Every amount ``number`` can be read as: with the last separator as the decimal point,
    and with every separator grouping thousands."""
    compact = re.sub(r"[\s'\u00a0\u202f]", "", number)
    candidates = {compact.replace(",", "").replace(".", "")}
    last = max(compact.rfind(","), compact.rfind("."))
    if last != -1:
        whole = compact[:last].replace(",", "").replace(".", "")
        candidates.add(f"{whole}.{compact[last + 1 :]}")
    readings = set()
    for candidate in candidates:
        try:
            readings.add(Decimal(candidate))
        except InvalidOperation:
            continue
    return readings


def amounts_in(text: str) -> set[Decimal]:
    """The amounts a text states, however it writes them; spaces may group thousands, so each
    space-separated part is read on its own too."""
    found: set[Decimal] = set()
    for match in _NUMBER.finditer(text):
        number = match.group(0)
        found |= _readings(number)
        for part in number.split():
            found |= _readings(part)
    return found


_DATE_PATTERNS = (
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b"), ("d", "m", "y")),
    (re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b"), ("m", "d", "y")),
)
_NAMED_DATE = re.compile(
    r"\b(?:(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})|([a-z]+)\.?\s+(\d{1,2})"
    r"(?:st|nd|rd|th)?,?\s+(\d{4}))\b"
)


def _month(name: str) -> int | None:
    for number, month in enumerate(_MONTHS, start=1):
        if len(name) >= 3 and month.startswith(name):
            return number
    return None


def dates_in(text: str) -> set[date]:
    """The days a text states, in the common numeric and written forms."""
    found: set[date] = set()
    lowered = text.casefold()

    def add(year: int, month: int | None, day: int) -> None:
        if month is None:
            return
        try:
            found.add(date(year, month, day))
        except ValueError:
            return

    for pattern, order in _DATE_PATTERNS:
        for match in pattern.finditer(lowered):
            parts = dict(zip(order, (int(group) for group in match.groups()), strict=True))
            add(parts["y"], parts["m"], parts["d"])
    for match in _NAMED_DATE.finditer(lowered):
        day, month, year, month_first, day_second, year_second = match.groups()
        if day is not None:
            add(int(year), _month(month), int(day))
        else:
            add(int(year_second), _month(month_first), int(day_second))
    return found
