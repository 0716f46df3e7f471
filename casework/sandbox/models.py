"""Field types and the base model shared by the sandbox's request and response bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Record ids appear in URL paths, so they are kept to characters that need no escaping.
RecordId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", min_length=1, max_length=64)
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=4)]


class StrictModel(BaseModel):
    """Unknown fields are rejected, so a misspelt field is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Closing(StrictModel):
    """A request to put a record in its final status (reverse a payment, deactivate a vendor)."""

    reason: Text
