"""The data converter used by every casework client and worker.

Temporal's pydantic converter, with one change: a payload that fails validation (a case started
from the Temporal CLI without ``invoice_id``, say) raises a non-retryable ``ApplicationError``
of type ``InvalidInput`` that names the fields. Left as a plain ``ValidationError`` it would fail
the workflow *task*, which Temporal retries forever, leaving the case stuck instead of failed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import temporalio.api.common.v1
from pydantic import TypeAdapter, ValidationError
from temporalio import workflow
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from casework.codec import EncryptionCodec, KeyRing

INVALID_INPUT = "InvalidInput"


def validation_problems(error: ValidationError, limit: int | None = None) -> str:
    """Each problem naming its field, e.g. ``invoice_id: Field required; amount: ...``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(whole value)'}: {item['msg']}"
        for item in error.errors()[:limit]
    )


def describe_validation_error(error: ValidationError) -> str:
    return f"invalid {error.title}: {validation_problems(error)}"


SHARED_TYPE_ADAPTERS = functools.lru_cache(maxsize=1024)(TypeAdapter)
"""One adapter per type for the whole process. The SDK makes a payload converter per workflow,
and each kept adapters of its own: a validator per result type (``list[GoodsReceipt]`` ...)
built again for every case and held while it waits."""


class _ValidatingJSONConverter(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        # In the workflow sandbox a type may be a class of one run's own import of its module:
        # a shared cache would keep that run alive, so sandboxed workflows keep their own.
        if not workflow.unsafe.in_sandbox():
            self._type_adapter = SHARED_TYPE_ADAPTERS

    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as error:
            raise ApplicationError(
                describe_validation_error(error), type=INVALID_INPUT, non_retryable=True
            ) from error


class CaseworkPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                _ValidatingJSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


data_converter = DataConverter(payload_converter_class=CaseworkPayloadConverter)
"""Plain payloads: what tests and tools without a key ring use."""


def encrypting_converter(ring: KeyRing) -> DataConverter:
    """``data_converter`` with every payload encrypted, failure messages and stack traces too
    (they quote amounts and names, and are otherwise stored in the clear)."""
    return dataclasses.replace(
        data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
