"""The payload converter's type adapters: built once per type for the whole worker, except in
the workflow sandbox, where each workflow keeps its own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from casework.converter import INVALID_INPUT, SHARED_TYPE_ADAPTERS, data_converter

AMOUNTS = list[Decimal]


def decoded_by_a_new_converter(payloads: list, type_hint: object) -> object:
    """Decode as a new workflow does: the SDK gives each workflow a converter of its own."""
    (value,) = data_converter.payload_converter_class().from_payloads(payloads, [type_hint])
    return value


def test_converters_outside_the_sandbox_share_one_adapter_per_type() -> None:
    payloads = data_converter.payload_converter.to_payloads([["12.50", "3"]])
    before = SHARED_TYPE_ADAPTERS.cache_info()
    for _ in range(3):
        assert decoded_by_a_new_converter(payloads, AMOUNTS) == [Decimal("12.50"), Decimal(3)]
    after = SHARED_TYPE_ADAPTERS.cache_info()
    assert after.currsize - before.currsize <= 1
    assert after.hits - before.hits >= 2


def test_a_sandboxed_workflow_keeps_its_own_adapters() -> None:
    # The SDK's own switch, set as the sandbox sets it while it builds a workflow's converter.
    workflow.unsafe._set_in_sandbox(True)
    try:
        converter = data_converter.payload_converter_class()
    finally:
        workflow.unsafe._set_in_sandbox(False)
    payloads = data_converter.payload_converter.to_payloads([["1"]])
    before = SHARED_TYPE_ADAPTERS.cache_info()
    assert converter.from_payloads(payloads, [list[Decimal]]) == [[Decimal(1)]]
    assert SHARED_TYPE_ADAPTERS.cache_info() == before


def test_a_payload_that_fails_validation_still_names_the_field() -> None:
    payloads = data_converter.payload_converter.to_payloads([["lots"]])
    with pytest.raises(ApplicationError) as raised:
        decoded_by_a_new_converter(payloads, AMOUNTS)
    assert raised.value.type == INVALID_INPUT
    assert raised.value.non_retryable
    assert "0: Input should be a valid decimal" in str(raised.value)
