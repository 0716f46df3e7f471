"""Log search: what each service logged, with timestamps and levels.

Both activities are read-only tools an investigator may call; an entry's ID is what a review
cites, and what the case looks up again to check that the cited line exists and says so.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class LogEntry(Record):
    entry_id: str
    service: str
    at: datetime
    level: str
    message: str
    host: str | None = None


class LogSearch(BaseModel):
    """Search one service's log lines in a time window, oldest first, optionally only lines at or
    above a level and containing every word of a query."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(
        min_length=1, max_length=64, description="The service, e.g. the ticket's ci_id."
    )
    query: str | None = Field(
        None, max_length=200, description="Words every returned line must contain."
    )
    min_level: str = Field(
        "WARN",
        pattern="^(DEBUG|INFO|WARN|ERROR|FATAL)$",
        description="The least severe level returned: DEBUG, INFO, WARN, ERROR or FATAL.",
    )
    since: datetime | None = Field(None, description="Start of the window (ISO 8601, with zone).")
    until: datetime | None = Field(None, description="End of the window (ISO 8601, with zone).")
    limit: int = Field(50, ge=1, le=200, description="Maximum number of lines to return.")


class LogEntryLookup(BaseModel):
    """Fetch one log line by its ID (e.g. LOG-000042)."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str = Field(min_length=1, max_length=64, description="The log line's ID.")


_entries = TypeAdapter(list[LogEntry])


class LogActivities(SystemActivities):
    system = "logs"

    @read_only_tool(name="search_logs")
    @activity.defn(name="logs.search")
    async def search(self, search: LogSearch) -> list[LogEntry]:
        params = {"service": search.service, "min_level": search.min_level}
        params["limit"] = str(search.limit)
        if search.query:
            params["q"] = search.query
        if search.since:
            params["since"] = search.since.isoformat()
        if search.until:
            params["until"] = search.until.isoformat()
        return _entries.validate_python(
            await call(self._client, "GET", "/logs/search", params=params)
        )

    @read_only_tool(name="get_log_entry")
    @activity.defn(name="logs.get_entry")
    async def get_entry(self, lookup: LogEntryLookup) -> LogEntry:
        return LogEntry.model_validate(
            await call(self._client, "GET", f"/logs/entries/{quote(lookup.entry_id, safe='')}")
        )
