"""Masking before the model: sensitive values never reach an LLM provider.

Applied at the one boundary every model call crosses (the ``llm.*`` activities). Values of the
fields the masking policy names (``policies/masking.yaml``: bank accounts, IBANs, tax IDs, card
numbers, personal names ...) are replaced by tokens such as ``[[IBAN:3f9a1c07]]``, and so is
every recognised pattern in free text (IBANs, card numbers, e-mail addresses, tax IDs), as well
as any other occurrence of a masked value. A token is stable for a value (a keyed hash), so the
model can refer to it across turns. The model's reply is unmasked on the way back, which is how
a deterministic tool called with a token as argument gets the real value, and nothing else does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationError

from casework.codec import load_key_ring
from casework.config import Settings
from casework.converter import validation_problems
from casework.governance.loader import load_policy, policy_dir
from casework.governance.models import PolicyModel

MASKING_POLICY_ID = "masking"
_TOKEN = re.compile(r"\[\[([A-Z_]+):([0-9a-f]{8})\]\]")


class MaskingPolicy(PolicyModel):
    policy_id: ClassVar[str] = MASKING_POLICY_ID

    id: str
    version: int
    description: str = ""
    fields: dict[str, list[str]]
    """Token kind to the field names whose values are masked wherever they appear in case data,
    e.g. ``BANK_ACCOUNT: [bank_account, iban]``."""
    patterns: list[str] = Field(default_factory=list)
    """Free-text patterns to scan for: ``iban``, ``card_number``, ``email``, ``tax_id``."""
    min_length: int = Field(default=3, ge=1)
    """Shorter field values are not masked in free text, to avoid masking every "Li" or "01"."""
    cleared_roles: dict[str, list[str]] = Field(default_factory=dict)
    """Token kind to the roles the review queue shows that kind's values to in clear; every
    other role (an auditor's, say) sees them masked. A kind not named here is masked for all."""

    def for_role(self, role: str) -> MaskingPolicy | None:
        """This policy narrowed to what ``role`` is not cleared to see; None if it sees all."""
        cleared = {kind for kind, roles in self.cleared_roles.items() if role in roles}
        fields = {kind: names for kind, names in self.fields.items() if kind not in cleared}
        patterns = [
            name
            for name in self.patterns
            if name not in PATTERNS or PATTERNS[name][0] not in cleared
        ]
        if not fields and not patterns:
            return None
        return self.model_copy(update={"fields": fields, "patterns": patterns})


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return int(digits) % 97 == 1


def _luhn_valid(candidate: str) -> bool:
    digits = [int(char) for char in candidate if char.isdigit()]
    checksum = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        checksum += digit
    return checksum % 10 == 0


PATTERNS: dict[str, tuple[str, re.Pattern[str], Callable[[str], bool]]] = {
    "iban": (
        "IBAN",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
        _iban_valid,
    ),
    "card_number": ("CARD", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), _luhn_valid),
    "email": (
        "EMAIL",
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
        lambda _: True,
    ),
    "tax_id": (
        "TAX_ID",
        # US SSN and EIN shapes, and EU VAT numbers (two letters, 8-12 digits).
        re.compile(r"\b\d{3}-\d{2}-\d{4}\b|\b\d{2}-\d{7}\b|\b[A-Z]{2}\d{8,12}\b"),
        lambda _: True,
    ),
}


def load_masking_policy() -> MaskingPolicy:
    document = load_policy(MASKING_POLICY_ID)
    try:
        return MaskingPolicy.model_validate(document.content)
    except ValidationError as error:
        raise ValueError(
            f"masking policy {policy_dir() / (MASKING_POLICY_ID + '.yaml')} is invalid: "
            + validation_problems(error)
        ) from error


def masking_key_for(settings: Settings) -> bytes:
    """The key tokens are hashed with, shared by all workers so a value keeps its token.

    ``CASEWORK_MASKING_KEY`` (base64) if set, else derived from the payload key ring; with
    neither, tokens are plain hashes, which hide a value but do not resist guessing it."""
    if explicit := os.environ.get("CASEWORK_MASKING_KEY"):
        return base64.b64decode(explicit)
    ring = load_key_ring(settings.state_dir)
    if ring is None:
        return b"casework-masking-unkeyed"
    return hmac.new(ring.key(ring.current), b"casework masking tokens", hashlib.sha256).digest()


class MaskingReport(BaseModel):
    """What masking did on one model call: counts by kind, never the values."""

    masked: dict[str, int] = {}


class Masker:
    """Masks one model call's request and unmasks its reply; one instance per call."""

    def __init__(self, policy: MaskingPolicy, key: bytes) -> None:
        unknown = set(policy.patterns) - set(PATTERNS)
        if unknown:
            raise ValueError(f"masking policy names unknown patterns: {sorted(unknown)}")
        self._policy = policy
        self._key = key
        self._kind_of_field = {
            field.lower(): kind for kind, fields in policy.fields.items() for field in fields
        }
        self._token_for: dict[str, str] = {}
        self._value_for: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def _token(self, kind: str, value: str) -> str:
        token = self._token_for.get(value)
        if token is None:
            digest = hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
            token = f"[[{kind}:{digest[:8]}]]"
            self._token_for[value] = token
            self._value_for[token] = value
        return token

    def learn(self, data: Any) -> None:
        """Note the values of sensitive fields in ``data``, so they are masked wherever they
        appear: in the data itself and in any free text masked after."""
        if isinstance(data, dict):
            for key, value in data.items():
                kind = self._kind_of_field.get(str(key).lower())
                text = str(value).strip() if isinstance(value, str | int) else ""
                if kind and len(text) >= self._policy.min_length:
                    self._token(kind, text)
                else:
                    self.learn(value)
        elif isinstance(data, list):
            for item in data:
                self.learn(item)

    def mask_data(self, data: Any) -> Any:
        """Mask case data: named fields first (so their values are known), then free text."""
        self.learn(data)
        return self._mask_strings(data)

    def mask_text(self, text: str) -> str:
        for value in sorted(self._token_for, key=len, reverse=True):
            if value in text:
                token = self._token_for[value]
                self._counts[token[2:].split(":", 1)[0]] += text.count(value)
                text = text.replace(value, token)
        for name in self._policy.patterns:
            kind, pattern, valid = PATTERNS[name]
            text = pattern.sub(
                lambda match, kind=kind, valid=valid: self._found(kind, match, valid), text
            )
        return text

    def _found(self, kind: str, match: re.Match[str], valid: Callable[[str], bool]) -> str:
        value = match.group(0)
        if not valid(value):
            return value
        self._counts[kind] += 1
        return self._token(kind, value)

    def unmask_text(self, text: str) -> str:
        return _TOKEN.sub(lambda match: self._value_for.get(match.group(0), match.group(0)), text)

    def unmask_json_text(self, text: str) -> str:
        """Unmask JSON the model wrote (tool arguments): values go in escaped, so a value with a
        quote in it keeps the JSON valid."""
        return _TOKEN.sub(
            lambda match: (
                json.dumps(self._value_for[match.group(0)])[1:-1]
                if match.group(0) in self._value_for
                else match.group(0)
            ),
            text,
        )

    def unmask_data(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: self.unmask_data(value) for key, value in data.items()}
        if isinstance(data, list):
            return [self.unmask_data(item) for item in data]
        if isinstance(data, str):
            return self.unmask_text(data)
        return data

    def report(self) -> MaskingReport:
        return MaskingReport(masked=dict(sorted(self._counts.items())))

    def _mask_strings(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: self._mask_strings(value) for key, value in data.items()}
        if isinstance(data, list):
            return [self._mask_strings(item) for item in data]
        if isinstance(data, str):
            return self.mask_text(data)
        if isinstance(data, int) and not isinstance(data, bool) and str(data) in self._token_for:
            token = self._token_for[str(data)]
            self._counts[token[2:].split(":", 1)[0]] += 1
            return token
        return data
