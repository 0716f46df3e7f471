"""The audit trails as process-mining event logs: IEEE XES and OCEL 2.0 JSON.

``casework eventlog --format xes|ocel [--process P] [--since T] --output FILE`` finds the cases
by visibility query, reads each one's audit trail through the client (so payloads are decoded
with the key ring, as ``casework report`` reads them) and writes:

- **XES** (IEEE 1849-2016): one trace per case (``concept:name`` = the case ID), one event per
  audit entry: ``concept:name`` = the audit kind (the activity), ``time:timestamp``,
  ``org:resource`` (:func:`resource`) and ``lifecycle:transition`` = ``complete`` (an audit
  entry records something that has happened).
- **OCEL 2.0 JSON**: the same events, each related to its case object and to every business
  object its data names. Object types are derived from the entries, the same for every process:
  a key ``<type>_id`` (or ``<type>_ids``, a list) anywhere in an entry's data names an object of
  that type (``task_id`` a task, ``payment_id`` a payment, ``ticket_id`` a ticket), except
  fields the masking policy names (``tax_id`` is personal data, not an object).

Generic over processes, like the report: nothing here knows a process.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

from temporalio.client import Client

from casework import search_attributes as sa
from casework.audit import AuditEvent
from casework.report import CASES_QUERY, CaseRecord, collect

CASE_OBJECT = "case"
SYSTEM_RESOURCE = "casework"
# Keys that name the person behind an entry, in the order they are looked for: the approver of
# a decision, the responder of an answer or acknowledgement, the submitter of a case.
PERSON_KEYS = ("approver", "responder", "acknowledged_by", "submitted_by", "requested_by")
XES_EXTENSIONS = {
    "Concept": ("concept", "http://www.xes-standard.org/concept.xesext"),
    "Time": ("time", "http://www.xes-standard.org/time.xesext"),
    "Organizational": ("org", "http://www.xes-standard.org/org.xesext"),
    "Lifecycle": ("lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
}


class EventLogFormat(StrEnum):
    XES = "xes"
    OCEL = "ocel"


class EventLogError(ValueError):
    """Bad export arguments; the message names the option."""


def cases_query(process: str | None = None, since: datetime | None = None) -> str:
    """The visibility query for the cases to export."""
    query = CASES_QUERY
    if process is not None:
        if not process or "'" in process or "\\" in process:
            raise EventLogError(f"--process: {process!r} is not a process name")
        query += f" AND {sa.CASE_TYPE.name} = '{process}'"
    if since is not None:
        query += f" AND StartTime >= '{since.astimezone(UTC).isoformat()}'"
    return query


def parse_since(text: str) -> datetime:
    """``--since``: an ISO date or date-time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise EventLogError(
            f"--since: {text!r} is not an ISO date or date-time (e.g. 2026-03-01 or "
            "2026-03-01T08:00:00+01:00)"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- what an entry says ----------------------------------------------------------------------


def _walk(data: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of an entry's data, nested dicts included, outermost first."""
    if depth > 4 or not isinstance(data, dict):
        return
    for key, value in data.items():
        yield str(key), value
    for value in data.values():
        if isinstance(value, dict):
            yield from _walk(value, depth + 1)


def resource(event: AuditEvent) -> str:
    """Who an entry is by: the person its data names, else the agent, else casework itself."""
    pairs = list(_walk(event.data))
    for key in PERSON_KEYS:
        for found, value in pairs:
            if found == key and isinstance(value, str) and value:
                return value
    agent = event.data.get("agent")
    if isinstance(agent, str) and agent:
        return f"agent:{agent}"
    return SYSTEM_RESOURCE


def objects_named(event: AuditEvent, case_id: str, private: frozenset[str]) -> list[ObjectRef]:
    """The business objects an entry's data names (see the module docstring), each once."""
    found: dict[tuple[str, str], ObjectRef] = {}
    for key, value in _walk(event.data):
        lowered = key.lower()
        if lowered in private:
            continue
        if lowered.endswith("_ids") and isinstance(value, list):
            kind, values = lowered[: -len("_ids")], value
        elif lowered.endswith("_id") and isinstance(value, str | int) and value != "":
            kind, values = lowered[: -len("_id")], [value]
        else:
            continue
        if not kind:
            continue
        for item in values:
            if not isinstance(item, str | int) or isinstance(item, bool) or item == "":
                continue
            if kind == CASE_OBJECT and str(item) == case_id:
                continue
            ref = ObjectRef(kind=kind, key=str(item), qualifier=key)
            found.setdefault((ref.kind, ref.key), ref)
    return list(found.values())


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    key: str
    qualifier: str
    """The data key that named it: the relationship's qualifier."""

    @property
    def object_id(self) -> str:
        # Cases keep their own ID (the workflow ID); other objects are named by type, since
        # business keys of different types may coincide.
        return self.key if self.kind == CASE_OBJECT else f"{self.kind}:{self.key}"


def private_fields() -> frozenset[str]:
    """Field names the masking policy declares sensitive: never turned into objects."""
    from casework.masking import load_masking_policy

    policy = load_masking_policy()
    return frozenset(name.lower() for names in policy.fields.values() for name in names)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# -- XES -------------------------------------------------------------------------------------


def _attribute(parent: ElementTree.Element, tag: str, key: str, value: str) -> None:
    ElementTree.SubElement(parent, tag, {"key": key, "value": value})


def _xes_trace(case: CaseRecord) -> ElementTree.Element:
    trace = ElementTree.Element("trace")
    _attribute(trace, "string", "concept:name", case.case_id)
    _attribute(trace, "string", "casework:process", case.case_type)
    _attribute(trace, "string", "casework:status", case.status)
    for event in case.audit or []:
        element = ElementTree.SubElement(trace, "event")
        _attribute(element, "string", "concept:name", event.kind.value)
        _attribute(element, "date", "time:timestamp", _time(event.at))
        _attribute(element, "string", "org:resource", resource(event))
        _attribute(element, "string", "lifecycle:transition", "complete")
        _attribute(element, "string", "casework:summary", event.summary)
        _attribute(element, "int", "casework:seq", str(event.seq))
    return trace


def write_xes(cases: Iterable[CaseRecord], out: TextIO) -> tuple[int, int]:
    """Write an XES log, trace by trace (a long export never holds the whole document).
    Returns (traces, events)."""
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(
        '<log xes.version="1849-2016" xes.features="nested-attributes" '
        'xmlns="http://www.xes-standard.org/">\n'
    )
    head = ElementTree.Element("head")
    for name, (prefix, uri) in XES_EXTENSIONS.items():
        ElementTree.SubElement(head, "extension", {"name": name, "prefix": prefix, "uri": uri})
    trace_globals = ElementTree.SubElement(head, "global", {"scope": "trace"})
    _attribute(trace_globals, "string", "concept:name", "__INVALID__")
    event_globals = ElementTree.SubElement(head, "global", {"scope": "event"})
    _attribute(event_globals, "string", "concept:name", "__INVALID__")
    _attribute(event_globals, "date", "time:timestamp", "1970-01-01T00:00:00.000+00:00")
    _attribute(event_globals, "string", "org:resource", SYSTEM_RESOURCE)
    _attribute(event_globals, "string", "lifecycle:transition", "complete")
    ElementTree.SubElement(
        head,
        "classifier",
        {"name": "Activity", "keys": "concept:name"},
    )
    _attribute(head, "string", "concept:name", "casework audit trails")
    for child in head:
        out.write("  " + ElementTree.tostring(child, encoding="unicode") + "\n")
    traces = events = 0
    for case in cases:
        trace = _xes_trace(case)
        out.write("  " + ElementTree.tostring(trace, encoding="unicode") + "\n")
        traces += 1
        events += len(case.audit or [])
    out.write("</log>\n")
    return traces, events


# -- OCEL 2.0 --------------------------------------------------------------------------------


def ocel(cases: Iterable[CaseRecord], private: frozenset[str] | None = None) -> dict[str, Any]:
    """The cases as an OCEL 2.0 JSON document."""
    private = private_fields() if private is None else private
    objects: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    event_types: set[str] = set()
    object_types: set[str] = {CASE_OBJECT}

    for case in cases:
        started = _time(case.started_at)
        objects[case.case_id] = {
            "id": case.case_id,
            "type": CASE_OBJECT,
            "attributes": [
                {"name": "process", "time": started, "value": case.case_type},
                {"name": "status", "time": started, "value": case.status},
            ],
            "relationships": [],
        }
        for event in case.audit or []:
            event_types.add(event.kind.value)
            relationships = [{"objectId": case.case_id, "qualifier": CASE_OBJECT}]
            for ref in objects_named(event, case.case_id, private):
                object_types.add(ref.kind)
                known = objects.setdefault(
                    ref.object_id,
                    {"id": ref.object_id, "type": ref.kind, "attributes": [], "relationships": []},
                )
                if ref.kind != CASE_OBJECT:
                    in_case = {"objectId": case.case_id, "qualifier": "in case"}
                    if in_case not in known["relationships"]:
                        known["relationships"].append(in_case)
                relationships.append({"objectId": ref.object_id, "qualifier": ref.qualifier})
            events.append(
                {
                    "id": f"{case.case_id}#{event.seq}",
                    "type": event.kind.value,
                    "time": _time(event.at),
                    "attributes": [
                        {"name": "resource", "value": resource(event)},
                        {"name": "summary", "value": event.summary},
                    ],
                    "relationships": relationships,
                }
            )
    # An object named in an entry (an invoice, or a case of another process) is listed once,
    # however many entries and cases name it, so every relationship points at an object.
    return {
        "objectTypes": [
            {
                "name": kind,
                "attributes": [
                    {"name": "process", "type": "string"},
                    {"name": "status", "type": "string"},
                ]
                if kind == CASE_OBJECT
                else [],
            }
            for kind in sorted(object_types)
        ],
        "eventTypes": [
            {
                "name": kind,
                "attributes": [
                    {"name": "resource", "type": "string"},
                    {"name": "summary", "type": "string"},
                ],
            }
            for kind in sorted(event_types)
        ],
        "objects": list(objects.values()),
        "events": events,
    }


def write(cases: list[CaseRecord], fmt: EventLogFormat, path: Path) -> tuple[int, int]:
    """Write the log; returns (cases, events). Cases whose trail could not be read are left
    out (the caller names them)."""
    readable = [case for case in cases if case.audit is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        if fmt is EventLogFormat.XES:
            return write_xes(readable, out)
        document = ocel(readable)
        json.dump(document, out, ensure_ascii=False)
        return len(readable), len(document["events"])


class ProgressLine:
    """``on_read`` for long exports: a line to stderr at most once a second, and at the end."""

    def __init__(self, out: TextIO, every_seconds: float = 1.0) -> None:
        self.out = out
        self.every = every_seconds
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self.last >= self.every:
            self.last = now
            print(f"eventlog: read {done} of {total} cases", file=self.out, flush=True)


async def export(
    client: Client,
    fmt: EventLogFormat,
    output: Path,
    process: str | None = None,
    since: datetime | None = None,
    progress: TextIO = sys.stderr,
) -> int:
    """``casework eventlog``: read the matching cases and write the log. Exit code 0."""
    query = cases_query(process, since)
    print(f"eventlog: finding cases ({query})", file=progress, flush=True)
    cases = await collect(client, query=query, on_read=ProgressLine(progress))
    cases.sort(key=lambda case: case.started_at)
    traces, events = write(cases, fmt, output)
    unreadable = [case.case_id for case in cases if case.audit is None]
    print(
        f"wrote {output}: {traces} cases, {events} events ({fmt.value})"
        + ("" if cases else f"; no case matched {query}"),
        flush=True,
    )
    if unreadable:
        print(
            "left out, their audit trail could not be read (is a worker running?): "
            + ", ".join(unreadable),
            file=progress,
        )
    return 0
