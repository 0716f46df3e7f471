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
