"""The event logs ``casework eventlog`` writes, read back with pm4py as a process-mining tool would.

The cases are built by hand so that every trace, object and relationship can be checked by eye;
``tests/test_operator.py`` exports the demo's real cases through the CLI and reads those back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pm4py
import pytest

from casework.audit import AuditEvent, AuditKind
from casework.eventlog import (
    EventLogError,
    EventLogFormat,
    cases_query,
    ocel,
    parse_since,
    resource,
    write,
)
from casework.report import CaseRecord

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def trail(*entries: tuple[AuditKind, int, dict[str, Any]]) -> list[AuditEvent]:
    return [
        AuditEvent(seq=seq, at=T0 + timedelta(minutes=minute), kind=kind, summary=kind, data=data)
        for seq, (kind, minute, data) in enumerate(entries, start=1)
    ]


def invoice_case(key: str, approver: str | None) -> CaseRecord:
    case_id = f"invoice-exception-{key}"
    task = f"{case_id}/approval-1"
    entries = [
        (AuditKind.CASE_STARTED, 0, {"invoice_id": key, "submitted_by": "alice"}),
        (AuditKind.AGENT_PROPOSAL, 1, {"agent": "analyst", "tax_id": "DE123456789"}),
    ]
    if approver:
        entries += [
            (AuditKind.TASK_OPENED, 2, {"task_id": task, "role": "ap_supervisor"}),
            (
                AuditKind.HUMAN_DECISION,
                30,
                {"task_id": task, "decision": {"approver": approver, "action": "approve"}},
            ),
        ]
    entries += [
        (AuditKind.TOOL_CALL, 31, {"payment_id": f"PAY-{key}", "invoice_id": key}),
        (AuditKind.CASE_COMPLETED, 32, {}),
    ]
    return CaseRecord(
        case_id=case_id,
        case_type="invoice-exception",
        case_status="paid",
        execution_status="completed",
        started_at=T0,
        closed_at=T0 + timedelta(minutes=32),
        audit=trail(*entries),
    )


CASES = [
    invoice_case("INV-1", approver="bob"),
    invoice_case("INV-2", approver=None),
    invoice_case("INV-3", approver="carol"),
    CaseRecord(
        case_id="refund-ORD-9",
        case_type="refund",
        case_status="waiting",
        execution_status="running",
        started_at=T0,
        audit=None,
    ),
]
KINDS = {
    "case_started",
    "agent_proposal",
    "task_opened",
    "human_decision",
    "tool_call",
    "case_completed",
}


def test_xes_reads_back_with_one_trace_per_case_and_a_model_of_the_audit_kinds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cases.xes"
    assert write(CASES, EventLogFormat.XES, path) == (3, 16)

    log = pm4py.read_xes(str(path))
    # One trace per case whose trail could be read, each in the order of its trail.
    traces = log.groupby("case:concept:name")["concept:name"].apply(list).to_dict()
    assert traces["invoice-exception-INV-2"] == [
        "case_started",
        "agent_proposal",
        "tool_call",
        "case_completed",
    ]
    assert set(traces) == {f"invoice-exception-INV-{n}" for n in (1, 2, 3)}
    decision = log[log["concept:name"] == "human_decision"]
    assert sorted(decision["org:resource"]) == ["bob", "carol"]
    assert set(log[log["concept:name"] == "agent_proposal"]["org:resource"]) == {"agent:analyst"}
    assert set(log[log["concept:name"] == "case_started"]["org:resource"]) == {"alice"}
    assert set(log["lifecycle:transition"]) == {"complete"}
    first = log[log["case:concept:name"] == "invoice-exception-INV-1"].iloc[0]
    assert first["time:timestamp"] == T0

    tree = pm4py.discover_process_tree_inductive(log)
    net, initial, final = pm4py.convert_to_petri_net(tree)
    labels = {t.label for t in net.transitions if t.label is not None}
    assert labels == KINDS
    # The model replays every trace it was discovered from.
    fitness = pm4py.fitness_token_based_replay(log, net, initial, final)
    assert fitness["perc_fit_traces"] == 100.0
    dfg, starts, ends = pm4py.discover_dfg(log)
    assert starts == {"case_started": 3} and ends == {"case_completed": 3}
    assert dfg[("task_opened", "human_decision")] == 2


def test_ocel_objects_are_derived_from_the_entries_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonocel"
    assert write(CASES, EventLogFormat.OCEL, path) == (3, 16)
    document = json.loads(path.read_text())
    ids = {obj["id"]: obj["type"] for obj in document["objects"]}
    assert ids == {
        "invoice-exception-INV-1": "case",
        "invoice-exception-INV-2": "case",
        "invoice-exception-INV-3": "case",
        "invoice:INV-1": "invoice",
        "invoice:INV-2": "invoice",
        "invoice:INV-3": "invoice",
        "task:invoice-exception-INV-1/approval-1": "task",
        "task:invoice-exception-INV-3/approval-1": "task",
        "payment:PAY-INV-1": "payment",
        "payment:PAY-INV-2": "payment",
        "payment:PAY-INV-3": "payment",
    }
    # A field the masking policy names is personal data, never an object.
    assert "DE123456789" not in json.dumps(document["objects"])

    log = pm4py.read_ocel2_json(str(path))
    assert set(pm4py.ocel_get_object_types(log)) == {"case", "invoice", "task", "payment"}
    activities = pm4py.ocel_object_type_activities(log)
    assert activities["task"] == {"task_opened", "human_decision"}
    assert activities["payment"] == {"tool_call"}
    assert activities["case"] == KINDS
    by_case = pm4py.ocel_flattening(log, "case")
    dfg, starts, _ = pm4py.discover_dfg(by_case)
    assert {a for edge in dfg for a in edge} == KINDS and starts == {"case_started": 3}
    ocdfg = pm4py.discover_ocdfg(log)
    assert set(ocdfg["activities"]) == KINDS


def test_an_object_named_by_several_cases_is_one_object_related_to_each() -> None:
    shared = [
        CaseRecord(
            case_id=f"refund-ORD-{n}",
            case_type="refund",
            case_status="refunded",
            execution_status="completed",
            started_at=T0,
            audit=trail((AuditKind.CASE_STARTED, 0, {"order_id": "ORD-7", "customer_id": 4})),
        )
        for n in (1, 2)
    ]
    document = ocel(shared, private=frozenset())
    (order,) = [obj for obj in document["objects"] if obj["type"] == "order"]
    assert order["id"] == "order:ORD-7"
    assert order["relationships"] == [
        {"objectId": "refund-ORD-1", "qualifier": "in case"},
        {"objectId": "refund-ORD-2", "qualifier": "in case"},
    ]
    (customer,) = [obj for obj in document["objects"] if obj["type"] == "customer"]
    assert customer["id"] == "customer:4"


def test_resource_and_filters() -> None:
    (event,) = trail((AuditKind.HUMAN_ANSWER, 0, {"answer": {"responder": "dan", "text": "ok"}}))
    assert resource(event) == "dan"
    (event,) = trail((AuditKind.TOOL_CALL, 0, {"step": "pay"}))
    assert resource(event) == "casework"
    assert cases_query("refund", parse_since("2026-03-01")) == (
        "CaseType IS NOT NULL AND CaseType = 'refund' AND StartTime >= '2026-03-01T00:00:00+00:00'"
    )
    with pytest.raises(EventLogError, match="--process"):
        cases_query("x' OR '1'='1")
    with pytest.raises(EventLogError, match="--since: 'last week'"):
        parse_since("last week")


def test_the_cli_refuses_bad_options_before_connecting(tmp_path: Path) -> None:
    casework = Path(sys.prefix) / "bin" / "casework"
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1", "CASEWORK_HOME": str(tmp_path)}
    output = str(tmp_path / "x.xes")
    for options, message in [
        (["--since", "last week"], "--since: 'last week' is not an ISO date"),
        (["--process", "a'b"], '--process: "a\'b" is not a process name'),
    ]:
        result = subprocess.run(
            [casework, "eventlog", "--format", "xes", "--output", output, *options],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "x.xes").exists()
