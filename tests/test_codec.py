"""Encrypted payloads: the codec itself, the codec server, and a real case's stored history."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from casework.audit import AuditEvent
from casework.codec import (
    CodecKeyError,
    EncryptionCodec,
    KeyRing,
    ensure_key_ring,
    load_key_ring,
)
from casework.codec_server import create_codec_app
from casework.converter import data_converter, encrypting_converter
from tests.fake_systems import FakeSystems, scenario
from tests.test_invoice_workflow import decide, open_task
from workflows.invoice_exception import InvoiceExceptionInput, InvoiceExceptionWorkflow

COMMENT = "surcharge agreed with Acme on the phone"


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_payloads_round_trip_and_carry_no_plaintext() -> None:
    codec = EncryptionCodec(KeyRing.generate())
    (sealed,) = await codec.encode([payload("IBAN DE89 3704 0044 0532 0130 00")])
    assert b"DE89" not in sealed.SerializeToString()
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert await codec.decode([sealed]) == [payload("IBAN DE89 3704 0044 0532 0130 00")]


async def test_a_rotated_ring_still_reads_old_payloads_and_writes_with_the_new_key() -> None:
    old = KeyRing.generate()
    (sealed_before,) = await EncryptionCodec(old).encode([payload("before")])
    new = KeyRing.generate()
    rotated = KeyRing(current=new.current, keys={**old.keys, **new.keys})
    codec = EncryptionCodec(rotated)
    (sealed_after,) = await codec.encode([payload("after")])
    assert sealed_after.metadata["encryption-key-id"] == new.current.encode()
    assert await codec.decode([sealed_before, sealed_after]) == [
        payload("before"),
        payload("after"),
    ]


async def test_unknown_key_and_tampering_are_refused_with_the_reason() -> None:
    ring = KeyRing.generate()
    (sealed,) = await EncryptionCodec(ring).encode([payload("x")])
    with pytest.raises(CodecKeyError, match=f"key {ring.current!r}, which is not in this key"):
        await EncryptionCodec(KeyRing.generate()).decode([sealed])
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(CodecKeyError, match="failed authentication"):
        await EncryptionCodec(ring).decode([tampered])


async def test_plain_payloads_written_before_encryption_still_decode() -> None:
    assert await EncryptionCodec(KeyRing.generate()).decode([payload("old")]) == [payload("old")]


def test_a_bad_key_ring_names_the_field(tmp_path: Path) -> None:
    short = base64.b64encode(b"too short").decode()
    with pytest.raises(CodecKeyError, match=r"keys: .*'k1' must be 32 bytes, got 9"):
        KeyRing.parse(json.dumps({"current": "k1", "keys": {"k1": short}}), "test")
    with pytest.raises(CodecKeyError, match="current key 'k2' is not among the keys"):
        KeyRing.parse(json.dumps({"current": "k2", "keys": {}}), "test")
    with pytest.raises(CodecKeyError, match="does not exist"):
        load_key_ring(tmp_path, {"CASEWORK_CODEC_KEYS_FILE": str(tmp_path / "missing.json")})


def test_the_generated_ring_is_private_and_found_in_the_state_dir(tmp_path: Path) -> None:
    assert load_key_ring(tmp_path, {}) is None
    path = ensure_key_ring(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    ring = load_key_ring(tmp_path, {})
    assert ring is not None and ensure_key_ring(tmp_path).read_text() == path.read_text()
    inline = KeyRing.generate()
    assert load_key_ring(tmp_path, {"CASEWORK_CODEC_KEYS": inline.model_dump_json()}) == inline


async def test_codec_server_decodes_for_the_web_ui_origin_only() -> None:
    ring = KeyRing.generate()
    (sealed,) = await EncryptionCodec(ring).encode([payload("Acme Widgets")])
    app = create_codec_app(ring, ["http://localhost:8233"])
    body = json_format.MessageToDict(Payloads(payloads=[sealed]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://codec"
    ) as http:
        response = await http.post(
            "/decode", json=body, headers={"Origin": "http://localhost:8233"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == "http://localhost:8233"
        decoded = json_format.ParseDict(response.json(), Payloads()).payloads
        assert list(decoded) == [payload("Acme Widgets")]
        other = await http.post("/decode", json=body, headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers
        garbage = await http.post("/decode", json={"payloads": [{"data": "not base64!"}]})
        assert garbage.status_code == 400


def searchable_free(events: list) -> bytes:
    """Every event's bytes, less the search attributes: the index operators filter on
    (case type, status, role, risk, amount) is deliberately kept in the clear."""
    chunks = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        copy = type(event)()
        copy.CopyFrom(event)
        copy.workflow_execution_started_event_attributes.ClearField("search_attributes")
        chunks.append(copy.SerializeToString())
    return b"".join(chunks)


async def test_a_case_history_holds_no_plaintext_and_reads_back_through_the_codec(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    ring = KeyRing.generate()
    encrypted = Client(
        time_skipping_env.client.service_client,
        namespace=time_skipping_env.client.namespace,
        data_converter=encrypting_converter(ring),
    )
    systems = FakeSystems(scenario("INV-SEC1", invoice_price="31.50"))
    task_queue = f"test-{uuid.uuid4()}"
    async with Worker(
        encrypted,
        task_queue=task_queue,
        workflows=[InvoiceExceptionWorkflow],
        activities=systems.activities(),
    ):
        handle = await encrypted.start_workflow(
            InvoiceExceptionWorkflow.run,
            InvoiceExceptionInput(invoice_id="INV-SEC1", submitted_by="alice", note=COMMENT),
            id=f"invoice-exception-INV-SEC1-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
        await open_task(handle)
        await decide(handle, approver="bob", action="approve", comment=COMMENT)
        result = await handle.result()
        audit = await handle.query("audit", result_type=list[AuditEvent])

    raw = await time_skipping_env.client.get_workflow_handle(handle.id).fetch_history()
    stored = searchable_free(list(raw.events))
    for plaintext in ("3150.00", "3,150.00", "Acme Widgets", "Bob Keller", "bob@", COMMENT):
        assert plaintext.encode() not in stored, f"{plaintext!r} is stored in the clear"
    completed = raw.events[-1].workflow_execution_completed_event_attributes
    assert completed.result.payloads[0].metadata["encoding"] == b"binary/encrypted"

    # Through the key ring the same case reads normally.
    assert str(result.amount_paid) == "3150.00"
    assert any(COMMENT in event.summary for event in audit)


async def test_failure_messages_are_encrypted_too() -> None:
    failure = Failure()
    error = ApplicationError("approval limit 5,000.00 does not cover 7,300.00", type="Refused")
    await encrypting_converter(KeyRing.generate()).encode_failure(error, failure)
    assert b"7,300.00" not in failure.SerializeToString()
    assert data_converter.payload_codec is None
