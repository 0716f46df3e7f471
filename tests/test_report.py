"""The KPI definitions, on cases built by hand: every number can be checked by eye."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from casework.audit import AuditEvent, AuditKind, ModelUsage
from casework.case.tasks import HumanTask, TaskKind
from casework.report import CaseRecord, compute

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=1)


def event(kind: AuditKind, summary: str = "", **data: Any) -> AuditEvent:
    return AuditEvent(seq=0, at=T0, kind=kind, summary=summary or kind.value, data=data)


def usage(agent: str, calls: int, prompt: int, completion: int, cost: float) -> dict[str, Any]:
    return ModelUsage(
        agent=agent,
        model_calls=calls,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost,
    ).model_dump()


def proposal(action: str | None, confidence: float, **data: Any) -> AuditEvent:
    return event(AuditKind.AGENT_PROPOSAL, recommended_action=action, confidence=confidence, **data)


def task(task_id: str, role: str, opened: datetime, due: datetime, **fields: Any) -> HumanTask:
    return HumanTask(
        task_id=task_id,
        case_id=task_id.split("/")[0],
        title=task_id,
        role=role,
        eligible_roles=[role],
        requested_by="alice",
        opened_at=opened,
        due_at=due,
        tier=0,
        summary="",
        **fields,
    )


def case(case_id: str, case_type: str, status: str, audit: list[AuditEvent] | None, **kw: Any):
    return CaseRecord(
        case_id=case_id,
        case_type=case_type,
        case_status=status,
        execution_status=kw.pop("execution", "completed"),
        started_at=kw.pop("started", T0),
        audit=audit,
        **kw,
    )


APPROVAL_OPENED = event(AuditKind.TASK_OPENED, task_kind="approval")

CASES = [
    # Auto-approved and paid in 10 s.
    case(
        "inv-a",
        "invoice",
        "paid",
        [
            event(AuditKind.CASE_STARTED),
            proposal("approve", 0.95, model_usage=usage("analyst", 1, 100, 20, 0.002)),
            event(AuditKind.CASE_COMPLETED),
        ],
        closed_at=T0 + timedelta(seconds=10),
    ),
    # The agent advised against; carol approved: an override. 30 s.
    case(
        "inv-b",
        "invoice",
        "paid",
        [
            event(AuditKind.CASE_STARTED),
            proposal("reject", 0.62, model_usage=usage("analyst", 1, 200, 30, 0.003)),
            APPROVAL_OPENED,
            event(
                AuditKind.HUMAN_DECISION,
                task_id="inv-b/approval-1",
                decision={"approver": "carol", "action": "approve"},
            ),
            event(AuditKind.CASE_COMPLETED),
        ],
        closed_at=T0 + timedelta(seconds=30),
    ),
    # Auto-approved, then the ERP failed and the payment was reversed. 20 s.
    case(
        "inv-c",
        "invoice",
        "failed_compensated",
        [
            event(AuditKind.CASE_STARTED),
            proposal("approve", 0.9, model_usage=usage("analyst", 1, 100, 20, 0.002)),
            event(AuditKind.TOOL_FAILED, "erp.set_invoice_status failed: 503"),
            event(AuditKind.COMPENSATION, step="payment P-1 reversed", ok=True),
            event(AuditKind.CASE_COMPLETED, "marking paid failed; compensated: payment"),
        ],
        closed_at=T0 + timedelta(seconds=20),
    ),
    # Waiting for review with 90% of its 10 h SLA gone: at risk. The region cost 3 calls.
    case(
        "tri-d",
        "triage",
        "awaiting_approval",
        [
            event(AuditKind.CASE_STARTED),
            event(
                AuditKind.AGENT_REGION_ENDED,
                outcome="answered",
                model_usage=usage("triage", 3, 500, 80, 0.01),
            ),
            proposal("approve", 0.5),
            APPROVAL_OPENED,
        ],
        execution="running",
        open_tasks=[
            task("tri-d/approval-1", "lead", NOW - timedelta(hours=9), NOW + timedelta(hours=1))
        ],
    ),
    # Waiting past its deadline: breached. Plus a question an agent asked.
    case(
        "tri-e",
        "triage",
        "awaiting_approval",
        [event(AuditKind.CASE_STARTED), APPROVAL_OPENED],
        execution="running",
        open_tasks=[
            task("tri-e/approval-1", "lead", NOW - timedelta(hours=5), NOW - timedelta(hours=1)),
            task(
                "tri-e/question-2",
                "lead",
                NOW,
                NOW + timedelta(hours=4),
                kind=TaskKind.QUESTION,
            ),
        ],
    ),
    # Waiting with most of its SLA left, on a fresh case.
    case(
        "inv-g",
        "invoice",
        "awaiting_approval",
        [event(AuditKind.CASE_STARTED), APPROVAL_OPENED],
        execution="running",
        open_tasks=[
            task(
                "inv-g/approval-1",
                "finance_manager",
                NOW - timedelta(hours=1),
                NOW + timedelta(hours=47),
                amount=Decimal("12600"),
                currency="EUR",
            )
        ],
    ),
    # The workflow itself failed before deciding anything.
    case(
        "inv-f",
        "invoice",
        "analysing",
        [event(AuditKind.CASE_STARTED)],
        execution="failed",
        failure="InvalidInput: submitted_by: 'zed' is not in the approval directory",
        closed_at=T0 + timedelta(seconds=1),
    ),
    # Its audit trail could not be read.
    case("inv-h", "invoice", "paid", None, closed_at=T0 + timedelta(seconds=40)),
]


def test_cases_backlog_and_sla() -> None:
    report = compute(CASES, NOW)

    assert report.cases == 8
    assert report.cases_by_process == {"invoice": 6, "triage": 2}
    assert report.cases_by_process_and_status == {
        "invoice": {
            "awaiting_approval": 1,
            "failed_compensated": 1,
            "paid": 3,
            "workflow_failed": 1,
        },
        "triage": {"awaiting_approval": 2},
    }
    assert report.backlog_by_role == {"finance_manager": 1, "lead": 2}
    assert report.questions_by_role == {"lead": 1}
    assert (report.sla.on_track, report.sla.at_risk, report.sla.breached) == (1, 1, 1)
    assert report.sla.at_risk_tasks == ["tri-d/approval-1"]
    assert report.sla.breached_tasks == ["tri-e/approval-1"]
    assert report.unreadable_audit == ["inv-h"]


def test_auto_approval_and_override_rates() -> None:
    report = compute(CASES, NOW)

    # Decided: a, b, c (completed or routed), d, e, g (routed to a person); f never decided.
    assert (report.auto_approval.count, report.auto_approval.of) == (2, 6)
    assert report.auto_approval.rate == round(2 / 6, 4)
    assert report.auto_approval_by_process["triage"].rate == 0
    # One human decision followed a recommendation (inv-b), and it went against it.
    assert (report.override.count, report.override.of, report.override.rate) == (1, 1, 1.0)
    (override,) = report.overrides
    assert (override.case_id, override.approver, override.recommended, override.decided) == (
        "inv-b",
        "carol",
        "reject",
        "approve",
    )


def test_confidence_model_usage_and_cycle_time() -> None:
    report = compute(CASES, NOW)

    assert report.confidence.count == 4
    assert report.confidence.buckets == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2]
    assert report.confidence.median == round((0.62 + 0.9) / 2, 4)
    spend = report.model_usage_by_process
    assert (spend["invoice"].model_calls, spend["invoice"].tokens) == (3, 470)
    assert spend["invoice"].cost_usd == 0.007
    # Five invoice cases had a readable trail: the per-case figures divide by those.
    assert spend["invoice"].cases == 5 and spend["invoice"].model_calls_per_case == 0.6
    assert (spend["triage"].model_calls, spend["triage"].tokens, spend["triage"].cost_usd) == (
        3,
        580,
        0.01,
    )
    assert report.model_usage.model_calls == 6 and report.model_usage.cost_usd == 0.017
    assert report.model_usage_by_case["inv-b"].tokens == 230
    assert report.cycle_time_by_process["invoice"].median_seconds == 20
    assert report.cycle_time.count == 5


def test_compensations_and_failure_reasons() -> None:
    report = compute(CASES, NOW)

    assert [(c.case_id, c.step, c.ok) for c in report.compensations] == [
        ("inv-c", "payment P-1 reversed", True)
    ]
    assert report.compensations_by_process == {"invoice": 1}
    assert [(f.case_id, f.status, f.reason) for f in report.failures] == [
        ("inv-c", "failed_compensated", "erp.set_invoice_status failed: 503"),
        (
            "inv-f",
            "workflow_failed",
            "InvalidInput: submitted_by: 'zed' is not in the approval directory",
        ),
    ]
    assert report.failure_reasons == {"erp.set_invoice_status failed": 1, "InvalidInput": 1}


def test_a_process_not_yet_following_the_conventions_still_counts() -> None:
    legacy = case(
        "ref-a",
        "refund",
        "refunded",
        [
            event(
                AuditKind.AGENT_PROPOSAL,
                agent="refund_analyst",
                proposal={"recommendation": "investigate", "confidence": 0.7},
                usage={"model": "m", "prompt_tokens": 50, "completion_tokens": 5, "cost_usd": 0.1},
            ),
            event(AuditKind.COMPENSATION, "compensation FAILED, needs a person: refund R-1"),
            event(AuditKind.CASE_COMPLETED),
        ],
        closed_at=T0 + timedelta(seconds=5),
    )

    report = compute([legacy], NOW)

    assert report.confidence.by_process == {"refund": [0.7]}
    spend = report.model_usage_by_process["refund"]
    assert (spend.model_calls, spend.tokens, spend.cost_usd) == (1, 55, 0.1)
    assert [c.ok for c in report.compensations] == [False]
    # Without recommended_action there is nothing to override.
    assert report.override.of == 0


# -- where cases stall: step and task times, SLA attainment, throughput, process maps -----------


def at(seconds: float, kind: AuditKind, **data: Any) -> AuditEvent:
    return AuditEvent(
        seq=0, at=T0 + timedelta(seconds=seconds), kind=kind, summary=kind.value, data=data
    )


def numbered(*events: AuditEvent) -> list[AuditEvent]:
    return [event.model_copy(update={"seq": n}) for n, event in enumerate(events, start=1)]


def opened(seconds: float, task_id: str, role: str, due_in: float, kind: str = "approval"):
    due = T0 + timedelta(seconds=seconds + due_in)
    return at(
        seconds, AuditKind.TASK_OPENED, task_id=task_id, task_kind=kind, role=role, due_at=due
    )


FLOW_CASES = [
    # Decided well inside its hour: SLA met. Closed on T0's day.
    case(
        "inv-1",
        "invoice",
        "paid",
        numbered(
            at(0, AuditKind.CASE_STARTED),
            at(10, AuditKind.AGENT_PROPOSAL),
            opened(20, "inv-1/approval-1", "ap_supervisor", 3600),
            at(620, AuditKind.HUMAN_DECISION, task_id="inv-1/approval-1"),
            at(650, AuditKind.CASE_COMPLETED),
        ),
        closed_at=T0 + timedelta(seconds=650),
    ),
    # Escalated, then decided after its first due time: SLA missed. Closed the next day.
    case(
        "inv-2",
        "invoice",
        "paid",
        numbered(
            at(0, AuditKind.CASE_STARTED),
            at(30, AuditKind.AGENT_PROPOSAL),
            opened(40, "inv-2/approval-1", "ap_supervisor", 100),
            at(140, AuditKind.TASK_ESCALATED, task_id="inv-2/approval-1"),
            at(1040, AuditKind.HUMAN_DECISION, task_id="inv-2/approval-1"),
            at(1050, AuditKind.CASE_COMPLETED),
        ),
        closed_at=T0 + timedelta(days=1),
    ),
    # Straight through.
    case(
        "inv-3",
        "invoice",
        "paid",
        numbered(
            at(0, AuditKind.CASE_STARTED),
            at(20, AuditKind.AGENT_PROPOSAL),
            at(25, AuditKind.CASE_COMPLETED),
        ),
        closed_at=T0 + timedelta(days=1, seconds=5),
    ),
    # A question answered in time, then an approval nobody decided: it timed out.
    case(
        "tri-1",
        "triage",
        "closed",
        numbered(
            at(0, AuditKind.CASE_STARTED),
            opened(5, "tri-1/question-1", "lead", 300, kind="question"),
            at(65, AuditKind.HUMAN_ANSWER, task_id="tri-1/question-1"),
            opened(70, "tri-1/approval-2", "lead", 50),
            at(120, AuditKind.TASK_TIMED_OUT, task_id="tri-1/approval-2"),
            at(121, AuditKind.CASE_COMPLETED),
        ),
        closed_at=T0 + timedelta(seconds=121),
    ),
    # Still waiting: its open task counts for no task time and no attainment.
    case(
        "tri-2",
        "triage",
        "awaiting_approval",
        numbered(at(0, AuditKind.CASE_STARTED), opened(8, "tri-2/approval-1", "lead", 60)),
        execution="running",
    ),
]


def test_time_in_each_step_and_human_task() -> None:
    flow = compute(FLOW_CASES, NOW).flow

    invoice = flow.step_times["invoice"]
    # The proposal stood 10 s (inv-1), 10 s (inv-2) and 5 s (inv-3) before the next entry.
    assert (invoice["agent_proposal"].count, invoice["agent_proposal"].median_seconds) == (3, 10)
    # p90 between the closest ranks of [5, 10, 10]: 10.
    assert invoice["agent_proposal"].p90_seconds == 10
    # task_opened stood 600 s (inv-1) and 100 s (inv-2, until escalated).
    assert invoice["task_opened"].median_seconds == 350
    assert invoice["task_opened"].p90_seconds == 100 + 0.9 * 500
    assert "case_completed" not in invoice  # the last entry has no next
    assert flow.step_times["triage"]["case_started"].count == 2

    tasks = flow.task_times["invoice"]["approval (ap_supervisor)"]
    assert (tasks.count, tasks.median_seconds, tasks.p90_seconds) == (2, 800, 600 + 0.9 * 400)
    triage = flow.task_times["triage"]
    assert triage["question (lead)"].median_seconds == 60
    assert triage["approval (lead)"].median_seconds == 50  # opened to timed out
    assert triage["approval (lead)"].count == 1  # tri-2's is still open


def test_sla_attainment_and_throughput() -> None:
    flow = compute(FLOW_CASES, NOW).flow

    # Met: inv-1 and tri-1's question. Missed: inv-2 (escalated, late), tri-1's approval.
    assert (flow.sla_attainment.count, flow.sla_attainment.of) == (2, 4)
    assert flow.sla_attainment_by_process["invoice"].rate == 0.5
    assert flow.sla_attainment_by_process["triage"].rate == 0.5
    assert flow.throughput_per_day == {"2026-03-01": 2, "2026-03-02": 2}
    assert flow.throughput_per_day_by_process == {
        "invoice": {"2026-03-01": 1, "2026-03-02": 2},
        "triage": {"2026-03-01": 1},
    }


def test_the_process_map_is_the_directly_follows_graph_with_waits() -> None:
    process_map = compute(FLOW_CASES, NOW).flow.process_maps["invoice"]

    assert process_map.cases == 3
    assert process_map.starts == {"case_started": 3}
    assert process_map.ends == {"case_completed": 3}
    assert process_map.activities["human_decision"] == 2
    edges = {(e.source, e.target): (e.count, e.median_wait_seconds) for e in process_map.edges}
    assert edges == {
        ("case_started", "agent_proposal"): (3, 20),
        ("agent_proposal", "task_opened"): (2, 10),
        ("agent_proposal", "case_completed"): (1, 5),
        ("task_opened", "human_decision"): (1, 600),
        ("task_opened", "task_escalated"): (1, 100),
        ("task_escalated", "human_decision"): (1, 900),
        ("human_decision", "case_completed"): (2, 20),
    }
    # Most frequent first.
    assert process_map.edges[0].source == "case_started"


def test_the_process_map_is_drawn_as_svg_with_its_activities_and_waits() -> None:
    from xml.etree import ElementTree

    from casework.processmap import svg

    drawn = svg(compute(FLOW_CASES, NOW).flow.process_maps["invoice"], "invoice")
    root = ElementTree.fromstring(drawn)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {"".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")}
    # Activity boxes: the kind (a line of its own) and how often it occurred; arrows: how
    # often and the median wait.
    activities = {"case_started", "agent_proposal", "task_opened", "task_escalated"}
    assert activities | {"human_decision", "case_completed"} <= texts, texts
    assert {"3 · 20s", "1 · 10min", "1 · 15min", "1 · 100s", "2 · 20s"} <= texts, texts


def test_case_lists_follow_who_may_see_the_case_and_figures_do_not_change() -> None:
    report = compute(CASES, NOW)

    shown = report.visible_to(lambda case_id: case_id.startswith("tri-"))

    assert shown.sla.breached_tasks == ["tri-e/approval-1"] and shown.sla.at_risk_tasks == [
        "tri-d/approval-1"
    ]
    assert shown.failures == [] and shown.compensations == [] and shown.overrides == []
    assert set(shown.model_usage_by_case) == {"tri-d", "tri-e"}
    assert shown.unreadable_audit == []
    # Counts over all cases stay what they are.
    assert (shown.cases, shown.sla.breached, shown.override.count) == (8, 1, 1)
    assert shown.flow == report.flow
