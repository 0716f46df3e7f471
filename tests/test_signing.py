"""Signing decisions and the key files behind it, without a server."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casework.case.tasks import TaskDecision
from casework.signing import decision_message, public_key_text, sign_decision, signature_refusal
from casework.signing_keys import (
    SigningKeyError,
    ensure_demo_keys,
    ensure_signing_keys,
    load_public_keys,
    load_signing_key,
)
from casework.testing.temporal import BIN

CASE = "invoice-exception-INV-1"
BOB = Ed25519PrivateKey.generate()
KEYS = {"bob": public_key_text(BOB), "carol": public_key_text(Ed25519PrivateKey.generate())}


def bobs(**fields: object) -> TaskDecision:
    return sign_decision(TaskDecision(approver="bob", action="approve", **fields), CASE, BOB)


def test_a_signed_decision_verifies_and_each_signing_is_unique() -> None:
    first, second = bobs(), bobs()
    assert signature_refusal(CASE, first, KEYS) is None
    assert first.nonce != second.nonce and first.signature != second.signature


@pytest.mark.parametrize(
    "change",
    [
        {"action": "reject"},
        {"amount": Decimal("10")},
        {"comment": "changed"},
        {"task_id": f"{CASE}/approval-1"},
        {"nonce": "0" * 32},
    ],
)
def test_changing_any_signed_field_breaks_the_signature(change: dict[str, object]) -> None:
    altered = bobs(comment="ok").model_copy(update=change)
    reason = signature_refusal(CASE, altered, KEYS)
    assert reason is not None and "the signature is not bob's" in reason


def test_a_signature_binds_the_case() -> None:
    reason = signature_refusal("invoice-exception-INV-2", bobs(), KEYS)
    assert reason is not None and "case invoice-exception-INV-2" in reason


def test_unsigned_unknown_and_malformed_are_refused_with_the_reason() -> None:
    unsigned = TaskDecision(approver="bob", action="approve")
    assert "not signed" in (signature_refusal(CASE, unsigned, KEYS) or "")
    stranger = sign_decision(
        TaskDecision(approver="zed", action="approve"), CASE, Ed25519PrivateKey.generate()
    )
    assert signature_refusal(CASE, stranger, KEYS) == "'zed' has no decision key in the directory"
    for signature in ("not base64!", base64.b64encode(b"short").decode()):
        garbled = bobs().model_copy(update={"signature": signature})
        assert "the signature is not bob's" in (signature_refusal(CASE, garbled, KEYS) or "")


def test_amounts_sign_the_same_however_they_are_written() -> None:
    # The CLI sends Decimal("1200.50") as a string; `temporal workflow signal` may send 1200.5.
    decision = bobs(amount=Decimal("1200.50"))
    as_json_number = TaskDecision.model_validate(
        json.loads(decision.model_dump_json()) | {"amount": 1200.5}
    )
    assert decision_message(CASE, decision) == decision_message(CASE, as_json_number)
    assert signature_refusal(CASE, as_json_number, KEYS) is None


def test_generated_keys_are_private_to_their_owner_and_kept_on_rerun(tmp_path: Path) -> None:
    public_file = ensure_signing_keys(tmp_path, ["bob", "carol"])
    mode = stat.S_IMODE((tmp_path / "bob.json").stat().st_mode)
    first = load_public_keys(tmp_path, {"CASEWORK_DECISION_KEYS_FILE": str(public_file)})
    ensure_signing_keys(tmp_path, ["bob", "carol", "dave"])
    again = load_public_keys(tmp_path, {"CASEWORK_DECISION_KEYS_FILE": str(public_file)})

    assert mode == 0o600
    assert again == first | {"dave": again["dave"]}
    assert public_key_text(load_signing_key("bob", tmp_path)) == first["bob"]


def test_key_file_problems_name_the_file(tmp_path: Path) -> None:
    ensure_signing_keys(tmp_path, ["bob"])
    with pytest.raises(SigningKeyError, match="no signing key for 'carol' at"):
        load_signing_key("carol", tmp_path)
    (tmp_path / "carol.json").write_text((tmp_path / "bob.json").read_text())
    with pytest.raises(SigningKeyError, match="holds the key of 'bob', not of 'carol'"):
        load_signing_key("carol", tmp_path)
    (tmp_path / "bad.json").write_text('{"user": "bad", "private_key": "c2hvcnQ="}')
    with pytest.raises(SigningKeyError, match=r"bad.json is invalid: private_key: .*32 bytes"):
        load_signing_key("bad", tmp_path)
    with pytest.raises(SigningKeyError, match="CASEWORK_DECISION_KEYS_FILE"):
        load_public_keys(tmp_path / "elsewhere", {})


def test_demo_keys_cover_the_directory_unless_keys_are_managed_elsewhere(tmp_path: Path) -> None:
    assert ensure_demo_keys(tmp_path, {"CASEWORK_DECISION_KEYS_FILE": "/etc/keys.json"}) is None
    assert not (tmp_path / "signing").exists()
    written = ensure_demo_keys(tmp_path, {})
    assert written == tmp_path / "signing" / "public-keys.json"
    assert {"alice", "bob", "carol"} <= set(load_public_keys(tmp_path, {}))


def test_casework_sign_prints_a_payload_the_case_accepts() -> None:
    sign = [str(BIN / "casework"), "sign", CASE, "--as", "bob", "--action", "approve"]
    completed = subprocess.run(
        [*sign, "--amount", "12.50", "--comment", "partial delivery"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    payload = TaskDecision.model_validate_json(completed.stdout)
    public = load_public_keys(Path("unused"))

    assert (payload.approver, payload.amount, payload.comment) == (
        "bob",
        Decimal("12.50"),
        "partial delivery",
    )
    assert signature_refusal(CASE, payload, public) is None


def test_casework_sign_without_a_key_says_where_it_looked(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(BIN / "casework"), "sign", CASE, "--as", "bob", "--action", "approve"],
        capture_output=True,
        text=True,
        env=os.environ | {"CASEWORK_SIGNING_KEYS_DIR": str(tmp_path)},
    )
    assert completed.returncode != 0
    assert f"no signing key for 'bob' at {tmp_path / 'bob.json'}" in completed.stderr


def test_casework_sign_refuses_an_amount_on_a_rejection() -> None:
    sign = [str(BIN / "casework"), "sign", CASE, "--as", "bob", "--action", "reject"]
    completed = subprocess.run(
        [*sign, "--comment", "no", "--amount", "5"], capture_output=True, text=True
    )
    assert completed.returncode == 1
    assert "--amount edits what is approved: it needs --action approve" in completed.stderr
