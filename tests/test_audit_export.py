"""The hash-chained audit export: any edited, removed or reordered line is found and named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from casework.audit import AuditChainError, AuditEvent, AuditKind, export_lines, verify_lines

CASE = "refund-ORD-1"
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def trail(count: int = 4) -> list[str]:
    events = [
        AuditEvent(
            seq=seq,
            at=START + timedelta(minutes=seq),
            kind=AuditKind.TOOL_CALL,
            summary=f"step {seq}",
            data={"amount": "120.00"},
        )
        for seq in range(1, count + 1)
    ]
    return export_lines(CASE, events)


def test_an_untouched_export_verifies_and_reports_its_chain_head() -> None:
    lines = trail()
    end = verify_lines(lines)
    assert end.count == 4 and end.case_id == CASE
    assert end.hash == json.loads(lines[-2])["hash"]


def test_one_edited_byte_is_found_on_its_line() -> None:
    lines = trail()
    lines[1] = lines[1].replace("step 2", "step 9")
    with pytest.raises(AuditChainError, match="line 2: its content does not match its hash"):
        verify_lines(lines)


def test_a_removed_line_is_found_where_the_chain_breaks() -> None:
    lines = trail()
    del lines[2]
    with pytest.raises(AuditChainError, match="line 3: does not follow the line before it"):
        verify_lines(lines)


def test_removing_the_first_line_is_found_too() -> None:
    with pytest.raises(AuditChainError, match="line 1: does not follow"):
        verify_lines(trail()[1:])


def test_reordered_lines_are_found() -> None:
    lines = trail()
    lines[1], lines[2] = lines[2], lines[1]
    with pytest.raises(AuditChainError, match="line 2: does not follow"):
        verify_lines(lines)


def test_a_cut_off_file_and_a_forged_end_record_are_found() -> None:
    with pytest.raises(AuditChainError, match="line 4: no end record"):
        verify_lines(trail()[:-1])
    lines = trail()
    end = json.loads(lines[-1])
    shortened = [*lines[:-2], json.dumps({**end, "count": 3})]
    with pytest.raises(AuditChainError, match="line 4: the end record does not match the chain"):
        verify_lines(shortened)


def test_a_line_from_another_case_and_garbage_are_named() -> None:
    lines = trail()
    lines[2] = export_lines(
        "refund-ORD-2", [AuditEvent.model_validate_json(json.dumps(json.loads(lines[2])["event"]))]
    )[0]
    with pytest.raises(AuditChainError, match="line 3: belongs to case refund-ORD-2"):
        verify_lines(lines)
    with pytest.raises(AuditChainError, match="line 1: not JSON"):
        verify_lines(["{oops", *trail()])
