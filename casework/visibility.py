"""Who may see a case: the one rule the review queue, its lists and the report's lists share.

A case is shown to the people who may act on it or took part in it, and to roles that read
every case (an auditor's, ``Role.reads_every_case``); anyone else is told there is no such case.
Taking part is read from the case's audit trail alone, so a list that holds trails (the report,
an export) judges exactly as the case page does:

- its submitter (``case_started``);
- anyone holding a role one of its tasks was ever open to (``task_opened``, escalations and
  reassignments to a role);
- everyone named as acting on it: deciders, responders, people paged or acknowledging, and
  whoever a task was handed to or by.

A case's agent region (a child workflow) is part of the case to people: judge either by both
trails together, so whoever answered the agent's question sees the case and its submitter the
question. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from casework.audit import AuditEvent, AuditKind
from casework.governance.models import Directory


class CaseParties(BaseModel):
    """Who has a part in a case, as its audit trail tells it."""

    submitted_by: str | None = None
    roles: set[str] = set()
    """Every role one of the case's tasks was open to, at any time."""
    people: set[str] = set()
    """Everyone who acted on the case or was asked to by name."""


def _named(value: Any) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    return []


def case_parties(audit: Iterable[AuditEvent | Mapping[str, Any]]) -> CaseParties:
    """Who has a part in the case whose trail is ``audit`` (events, or their JSON form)."""
    parties = CaseParties()
    for item in audit:
        event = item if isinstance(item, AuditEvent) else AuditEvent.model_validate(item)
        data = event.data
        match event.kind:
            case AuditKind.CASE_STARTED:
                # Trails recorded before the submitter was named beside the input: the input's.
                submitter = data.get("submitted_by") or (data.get("input") or {}).get(
                    "submitted_by"
                )
                if isinstance(submitter, str) and submitter:
                    parties.submitted_by = submitter
            case AuditKind.TASK_OPENED:
                parties.roles.update(_named(data.get("eligible_roles")) + _named(data.get("role")))
            case AuditKind.TASK_ESCALATED:
                parties.roles.update(_named(data.get("to_role")))
                parties.people.update(_named(data.get("by")))
            case AuditKind.TASK_REASSIGNED:
                parties.roles.update(_named(data.get("role")))
                parties.people.update(_named(data.get("by")) + _named(data.get("to_assignee")))
            case AuditKind.HUMAN_DECISION:
                parties.people.update(_named((data.get("decision") or {}).get("approver")))
            case AuditKind.HUMAN_ANSWER:
                parties.people.update(_named((data.get("answer") or {}).get("responder")))
            case AuditKind.PAGE_SENT:
                parties.people.update(_named(data.get("paged")))
            case AuditKind.PAGE_ACKNOWLEDGED:
                parties.people.update(_named(data.get("responder")))
            case _:
                pass
    return parties


def reads_every_case(directory: Directory, user_id: str) -> bool:
    """Whether ``user_id`` holds a role that may read every case (an auditor's)."""
    user = directory.users.get(user_id)
    role = directory.roles.get(user.role) if user else None
    return bool(role and role.reads_every_case)


def may_see_case(
    directory: Directory, user_id: str, audit: Iterable[AuditEvent | Mapping[str, Any]]
) -> bool:
    """Whether ``user_id`` may see the case whose audit trail is ``audit``: in the case page,
    in any list of cases, and through any link. Everyone else is told there is no such case."""
    user = directory.users.get(user_id)
    if user is None:
        return False
    if reads_every_case(directory, user_id):
        return True
    parties = case_parties(audit)
    return (
        user_id == parties.submitted_by or user_id in parties.people or user.role in parties.roles
    )


def may_see_unreadable(directory: Directory, user_id: str, waits_for_role: str | None) -> bool:
    """Whether ``user_id`` may be told of a case whose trail cannot be read (its workflow task
    fails, say): a reader of every case, or someone holding the role it last said it waits for
    (its ApproverRole search attribute). Anyone else learns nothing of it, not even that it is
    there."""
    user = directory.users.get(user_id)
    if user is None:
        return False
    return reads_every_case(directory, user_id) or user.role == waits_for_role
