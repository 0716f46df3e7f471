"""Signed decisions: proof of who sent a decision, checked by the case itself.

A decision is signed with its approver's Ed25519 key over a canonical message that names the case
(so it cannot be replayed on another one) and carries a one-time nonce (so it cannot be replayed on
the same one). The case verifies it with the public key its directory holds for the approver.
Everything here is pure computation over bytes, so workflow code may call it: the same payload
gets the same verdict on every replay. Key files are handled in ``casework.signing_keys``.

The message, for anyone signing in another language::

    b"casework-decision/v1\\n" + JSON of {action, amount, approver, case_id, comment, nonce,
    task_id} with sorted keys, no spaces, ASCII escapes; ``amount`` is a plain decimal string
    without trailing zeros ("1200.5") or null

and the signature is the base64 of the 64-byte Ed25519 signature of those bytes.

Everything else a person sends a case (an answer to an agent's question, a page's
acknowledgement, a reassignment, delegation or escalation) is signed the same way over::

    b"casework-act/v1\n" + JSON of the act's fields except ``signature``, plus ``act`` (the
    update it is sent as: answer, acknowledge, reassign ...) and ``case_id``; same encoding

so an act signed for one step or one case is refused by any other.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

if TYPE_CHECKING:
    # Only named in annotations: importing the case package here would close a cycle (the
    # case base loads policies, whose activity reads decision keys, which sign decisions).
    from casework.case.tasks import TaskDecision

MESSAGE_PREFIX = b"casework-decision/v1\n"
ACT_PREFIX = b"casework-act/v1\n"
NONCE_BYTES = 16


def canonical_amount(amount: Decimal) -> str:
    """``amount`` as the message carries it: plain digits, no exponent, no trailing zeros.

    Exact, unlike ``normalize()``, which rounds to 28 digits first. ``TaskDecision`` keeps an
    amount's size bounded, so spelling it out digit by digit stays short.
    """
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def decision_message(case_id: str, decision: TaskDecision) -> bytes:
    """The exact bytes a decision's signature covers."""
    amount = None if decision.amount is None else canonical_amount(decision.amount)
    fields = {
        "action": decision.action,
        "amount": amount,
        "approver": decision.approver,
        "case_id": case_id,
        "comment": decision.comment,
        "nonce": decision.nonce,
        "task_id": decision.task_id,
    }
    return MESSAGE_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_decision(decision: TaskDecision, case_id: str, key: Ed25519PrivateKey) -> TaskDecision:
    """``decision`` with a fresh nonce and its approver's signature for ``case_id``."""
    unsigned = decision.model_copy(
        update={"nonce": secrets.token_hex(NONCE_BYTES), "signature": None}
    )
    signature = key.sign(decision_message(case_id, unsigned))
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The base64 of the raw 32-byte public key, as the directory's key file holds it."""
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def signature_refusal(
    case_id: str, decision: TaskDecision, public_keys: Mapping[str, str]
) -> str | None:
    """Why ``decision`` is not provably its approver's for ``case_id``; None when it is."""
    if not decision.signature or not decision.nonce:
        return (
            "the decision is not signed: send it with `casework approve`/`reject`, or sign the "
            "payload with `casework sign` (README: Signed decisions)"
        )
    encoded = public_keys.get(decision.approver)
    if encoded is None:
        return f"{decision.approver!r} has no decision key in the directory"
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded, validate=True))
        key.verify(
            base64.b64decode(decision.signature, validate=True),
            decision_message(case_id, decision),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        return (
            f"the signature is not {decision.approver}'s on this decision for case {case_id} "
            "(forged, altered after signing, or signed for another case)"
        )
    return None


A = TypeVar("A", bound=BaseModel)


def act_message(act_name: str, case_id: str, act: BaseModel) -> bytes:
    """The exact bytes an act's signature covers: every field but the signature itself."""
    fields = act.model_dump(mode="json", exclude={"signature"})
    fields.update(act=act_name, case_id=case_id)
    return ACT_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_act(act_name: str, act: A, case_id: str, key: Ed25519PrivateKey) -> A:
    """``act`` (a model with ``nonce`` and ``signature`` fields) with a fresh nonce and its
    sender's signature, for the ``act_name`` step of ``case_id``."""
    unsigned = act.model_copy(update={"nonce": secrets.token_hex(NONCE_BYTES), "signature": None})
    signature = key.sign(act_message(act_name, case_id, unsigned))
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})


def act_signature_refusal(
    act_name: str, case_id: str, act: BaseModel, signer: str, public_keys: Mapping[str, str]
) -> str | None:
    """Why ``act`` is not provably ``signer``'s ``act_name`` for ``case_id``; None when it is."""
    signature = getattr(act, "signature", None)
    if not signature or not getattr(act, "nonce", None):
        return (
            f"the {act_name} is not signed: send it with `casework {act_name}` or the review "
            "queue, which sign it with your key (README: Signed decisions)"
        )
    encoded = public_keys.get(signer)
    if encoded is None:
        return f"{signer!r} has no signing key in the directory"
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded, validate=True))
        key.verify(base64.b64decode(signature, validate=True), act_message(act_name, case_id, act))
    except (binascii.Error, ValueError, InvalidSignature):
        return (
            f"the signature is not {signer}'s on this {act_name} for case {case_id} "
            "(forged, altered after signing, or signed for another case or step)"
        )
    return None
