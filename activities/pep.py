"""PEP register: screening a person against the politically exposed persons it lists.

A screening is a check the register keeps a record of, so it carries an idempotency key: a
retried screening is answered with the first result instead of being run again. Reading the
register's entries by name changes nothing, so agents may do it.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
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


class PepEntry(Record):
    entry_id: str
    name: str
    date_of_birth: date
    position: str
    country: str


class PepRegisterLookup(BaseModel):
    """Politically exposed persons the register lists whose name contains the given text."""

    name: str = Field(min_length=2, description="All or part of a person's name.")


class PepCheck(BaseModel):
    full_name: str
    date_of_birth: date
    reference: str
    idempotency_key: str


class PepActivities(SystemActivities):
    system = "PEP register"

    @read_only_tool(name="find_pep_entries")
    @activity.defn(name="pep.find_entries")
    async def find_entries(self, lookup: PepRegisterLookup) -> list[PepEntry]:
        """The register's entries whose name contains ``lookup.name`` (case-insensitive)."""
        wanted = lookup.name.casefold()
        entries = await call(self._client, "GET", "/pep/persons")
        return [
            PepEntry.model_validate(entry)
            for entry in entries
            if wanted in str(entry["name"]).casefold()
        ]

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
