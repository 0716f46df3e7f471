"""PEP register: screening a person against the politically exposed persons it lists.

A screening is a check the register keeps a record of, so it carries an idempotency key: a
retried screening is answered with the first result instead of being run again.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field
from temporalio import activity

from casework.systems.base import SystemActivities
from casework.systems.http import call
from casework.systems.records import Record


class PepMatch(Record):
    entry_id: str
    name: str
    position: str
    country: str


class PepScreening(Record):
    screening_id: str
    status: Literal["clear", "match"]
    matches: list[PepMatch] = Field(default_factory=list)


class PepCheck(BaseModel):
    full_name: str
    date_of_birth: date
    reference: str
    idempotency_key: str


class PepActivities(SystemActivities):
    system = "PEP register"

    @activity.defn(name="pep.screen")
    async def screen(self, check: PepCheck) -> PepScreening:
        return PepScreening.model_validate(
            await call(
                self._client,
                "POST",
                "/pep/screenings",
                json=check.model_dump(mode="json", exclude={"idempotency_key"}),
                idempotency_key=check.idempotency_key,
            )
        )
