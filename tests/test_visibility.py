"""Who may see a case (``casework.visibility``) and what the masking policy clears per role,
judged on hand-built audit trails and the shipped policies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from casework.audit import AuditEvent, AuditKind
from casework.governance.loader import load_policy
from casework.governance.models import Directory
from casework.masking import Masker, MaskingPolicy, load_masking_policy
from casework.visibility import case_parties, may_see_case, may_see_unreadable, reads_every_case

DIRECTORY = Directory.model_validate(load_policy("directory").content)


def event(kind: AuditKind, **data: Any) -> AuditEvent:
    return AuditEvent(seq=1, at=datetime(2026, 1, 1, tzinfo=UTC), kind=kind, summary="", data=data)


TRAIL = [
    event(AuditKind.CASE_STARTED, input={"invoice_id": "INV-1"}, submitted_by="alice"),
    event(AuditKind.TASK_OPENED, role="finance_manager", eligible_roles=["finance_manager", "cfo"]),
    event(AuditKind.TASK_REASSIGNED, by="carol", to_assignee="dave", role="cfo"),
    event(AuditKind.HUMAN_DECISION, decision={"approver": "dave", "action": "approve"}),
    event(AuditKind.PAGE_SENT, paged=["ivy"]),
]


@pytest.mark.parametrize(
    ("user", "sees"),
    [
        ("alice", True),  # submitted it
        ("carol", True),  # holds a role a task was open to
        ("dave", True),
        ("ivy", True),  # was paged
        ("bob", False),  # ap_supervisor: no part in it
        ("henry", False),
        ("una", True),  # the auditor reads every case
        ("nobody", False),
    ],
)
def test_a_case_is_seen_by_its_people_and_the_auditor_only(user: str, sees: bool) -> None:
    assert may_see_case(DIRECTORY, user, TRAIL) is sees
    # The trail's JSON form (an export, the report's reading) is judged the same.
    assert may_see_case(DIRECTORY, user, [e.model_dump(mode="json") for e in TRAIL]) is sees


def test_a_trail_recorded_before_the_submitter_was_named_falls_back_to_the_input() -> None:
    old = [event(AuditKind.CASE_STARTED, input={"submitted_by": "erin"})]
    assert case_parties(old).submitted_by == "erin"
    assert may_see_case(DIRECTORY, "erin", old) and not may_see_case(DIRECTORY, "frank", old)
    assert reads_every_case(DIRECTORY, "una") and not reads_every_case(DIRECTORY, "dave")


def test_the_masking_policy_clears_roles_per_kind_and_masks_for_the_rest() -> None:
    policy = load_masking_policy()
    assert policy.for_role("sales_ops") is None  # cleared for every kind
    auditor = policy.for_role("auditor")
    assert auditor is not None and set(auditor.fields) == set(policy.fields)
    data = {"lead": {"contact_name": "Colette Martin", "company": "Atelier Colette"}}
    masked = Masker(auditor, b"k" * 32).mask_data({"title": "Lead 7: Colette Martin", **data})
    assert "Colette Martin" not in str(masked) and "Atelier Colette" in str(masked)
    assert masked["title"].startswith("Lead 7: [[PERSON:")
    # The knob: clearing a kind for a role leaves exactly that kind in clear for it.
    narrow = MaskingPolicy.model_validate(
        policy.model_dump() | {"cleared_roles": {"PERSON": ["auditor"]}}
    ).for_role("auditor")
    assert narrow is not None and "PERSON" not in narrow.fields and "EMAIL" in narrow.fields
    shown = Masker(narrow, b"k" * 32).mask_data(
        {"contact_name": "Colette Martin", "email": "c@x.fr"}
    )
    assert shown["contact_name"] == "Colette Martin" and shown["email"].startswith("[[EMAIL:")


def test_an_unreadable_case_is_named_only_to_the_role_it_waits_for_and_the_auditor() -> None:
    assert may_see_unreadable(DIRECTORY, "carol", "finance_manager")
    assert may_see_unreadable(DIRECTORY, "una", "finance_manager")
    assert not may_see_unreadable(DIRECTORY, "bob", "finance_manager")
    assert not may_see_unreadable(DIRECTORY, "carol", None)
