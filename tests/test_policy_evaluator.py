"""The pure policy evaluator and the policy documents it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from activities.agents.invoice_exception import Recommendation
from activities.agents.ticket_triage import TriageProposal
from casework.agents.tools import ASK_HUMAN, READ_ONLY
from casework.case.refusals import answer_refusal_reasons, eligible_roles, refusal_reasons
from casework.case.tasks import HumanTask, TaskAnswer, TaskDecision, TaskKind, TaskStatus
from casework.governance.loader import catalogue_policy_dir, load_policy
from casework.governance.models import Directory
from casework.governance.rules import tier_for_amount
from policies.invoice_exception import (
    InvoiceExceptionPolicy,
    Route,
    compute_variance,
    decide_invoice,
)
from policies.ticket_triage import TicketTriagePolicy, TriageRoute, decide_triage
from tests.fake_systems import proposal, scenario


@pytest.fixture(scope="module")
def policy() -> InvoiceExceptionPolicy:
    return InvoiceExceptionPolicy.model_validate(load_policy("invoice_exception").content)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.model_validate(load_policy("directory").content)


def test_bundled_policy_loads_with_version_hash_and_durations(
    policy: InvoiceExceptionPolicy,
) -> None:
    document = load_policy("invoice_exception")
    assert document.ref.version == policy.version == 3
    assert policy.currency == "EUR"
    assert len(document.ref.sha256) == 64
    assert [tier.role for tier in policy.approval_tiers] == [
        "ap_supervisor",
        "finance_manager",
        "cfo",
    ]
    assert policy.approval_tiers[0].sla == timedelta(hours=24)


def test_demo_directory_has_the_documented_people(directory: Directory) -> None:
    roles = {name: user.role for name, user in directory.users.items()}
    assert (
        roles.items()
        >= {
            "alice": "ap_clerk",
            "bob": "ap_supervisor",
            "carol": "finance_manager",
            "dave": "cfo",
        }.items()
    )
    assert directory.roles["ap_supervisor"].approval_limit == Decimal("5000")
    assert directory.roles["finance_manager"].approval_limit == Decimal("50000")
    assert directory.roles["cfo"].approval_limit is None


def test_policy_hash_changes_with_any_edit(tmp_path: Path) -> None:
    original = catalogue_policy_dir() / "invoice_exception.yaml"
    edited = tmp_path / "invoice_exception.yaml"
    edited.write_text(original.read_text().replace("percent: 2.0", "percent: 3.0"))
    assert load_policy("invoice_exception", tmp_path).ref.sha256 != (
        load_policy("invoice_exception").ref.sha256
    )


def test_misspelt_policy_key_is_refused() -> None:
    content = load_policy("invoice_exception").content | {"tolerence": {"percent": 1}}
    with pytest.raises(ValidationError, match="tolerence"):
        InvoiceExceptionPolicy.model_validate(content)


def test_exact_match_has_no_variance(policy: InvoiceExceptionPolicy) -> None:
    s = scenario("INV-1")
    variance = compute_variance(s.invoice, s.purchase_order, s.receipts, policy.tolerance)
    assert variance.variance == 0
    assert variance.within_tolerance
    assert variance.findings == []


def test_price_variance_outside_tolerance(policy: InvoiceExceptionPolicy) -> None:
    s = scenario("INV-1", invoice_price="31.50")
    variance = compute_variance(s.invoice, s.purchase_order, s.receipts, policy.tolerance)
    assert variance.variance == Decimal("150.00")
    assert variance.variance_percent == Decimal("5.00")
    assert not variance.within_tolerance
    assert variance.findings == ["W-1: price variance, invoiced 31.50 vs PO 30.00"]


def test_small_price_variance_is_within_both_limits(policy: InvoiceExceptionPolicy) -> None:
    s = scenario("INV-1", invoice_price="30.20")
    variance = compute_variance(s.invoice, s.purchase_order, s.receipts, policy.tolerance)
    assert variance.variance == Decimal("20.00")
    assert variance.within_tolerance


def test_absolute_limit_applies_even_when_percent_is_small(
    policy: InvoiceExceptionPolicy,
) -> None:
    # 1% of 30,000 is 300: inside 2% but far above the 50.00 absolute limit.
    s = scenario("INV-1", quantity=1000, invoice_price="30.30")
    variance = compute_variance(s.invoice, s.purchase_order, s.receipts, policy.tolerance)
    assert variance.variance_percent == Decimal("1.00")
    assert not variance.within_tolerance


def test_quantity_not_received_is_not_matched(policy: InvoiceExceptionPolicy) -> None:
    s = scenario("INV-1", received=80)
    variance = compute_variance(s.invoice, s.purchase_order, s.receipts, policy.tolerance)
    assert variance.matched_amount == Decimal("2400.00")
    assert "W-1: quantity variance, invoiced 100, received 80" in variance.findings


def test_missing_purchase_order_is_never_within_tolerance(policy: InvoiceExceptionPolicy) -> None:
    s = scenario("INV-1")
    variance = compute_variance(s.invoice, None, [], policy.tolerance)
    assert not variance.within_tolerance
    assert variance.findings == ["no purchase order referenced"]


def _decide(policy: InvoiceExceptionPolicy, **scenario_args: object):
    agent = scenario_args.pop("agent", proposal())
    s = scenario("INV-1", **scenario_args)  # type: ignore[arg-type]
    ref = load_policy("invoice_exception").ref
    variance = compute_variance(s.invoice, s.purchase_order, s.receipts, policy.tolerance)
    return decide_invoice(  # type: ignore[arg-type]
        policy, ref, variance, agent, s.supplier, currency=s.invoice.currency
    )


def test_auto_approval_needs_every_condition(policy: InvoiceExceptionPolicy) -> None:
    decision = _decide(policy)
    assert decision.route is Route.AUTO_APPROVE
    assert decision.policy.id == "invoice_exception"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"invoice_price": "31.50"}, "outside tolerance"),
        ({"agent": proposal(confidence=0.79)}, "agent confidence 0.79 is below 0.80"),
        ({"agent": proposal(Recommendation.HOLD)}, "agent recommends hold"),
        ({"agent": None}, "no agent proposal available"),
        ({"quantity": 400}, "exceeds the auto-approval ceiling 10,000.00"),
        ({"supplier_status": "blocked"}, "supplier SUP-1 is blocked"),
    ],
)
def test_any_failed_condition_routes_to_a_person(
    policy: InvoiceExceptionPolicy, args: dict[str, object], reason: str
) -> None:
    decision = _decide(policy, **args)
    assert decision.route is Route.HUMAN_APPROVAL
    assert any(reason in r for r in decision.reasons), decision.reasons


@pytest.mark.parametrize(
    ("amount", "role"),
    [("5000", "ap_supervisor"), ("5000.01", "finance_manager"), ("50001", "cfo")],
)
def test_tier_is_the_first_that_covers_the_amount(
    policy: InvoiceExceptionPolicy, amount: str, role: str
) -> None:
    assert (
        policy.approval_tiers[tier_for_amount(policy.approval_tiers, Decimal(amount))].role == role
    )


TIERS = InvoiceExceptionPolicy.model_validate(
    load_policy("invoice_exception").content
).approval_tiers


def _task(amount: str = "3000", requested_by: str = "alice", tier: int = 0) -> HumanTask:
    tiers = TIERS
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return HumanTask(
        task_id="case/approval-1",
        case_id="case",
        title="t",
        role=tiers[tier].role,
        eligible_roles=eligible_roles(tiers, tier),
        amount=Decimal(amount),
        currency="EUR",
        requested_by=requested_by,
        opened_at=now,
        due_at=now + tiers[tier].sla,
        tier=tier,
        summary="s",
    )


def test_eligible_approver_within_limit_is_accepted(directory: Directory) -> None:
    assert refusal_reasons(directory, _task(), TaskDecision(approver="bob", action="approve")) == []


def test_higher_tier_may_decide_a_lower_tier_task(directory: Directory) -> None:
    decision = TaskDecision(approver="dave", action="approve")
    assert refusal_reasons(directory, _task("60000"), decision) == []


@pytest.mark.parametrize(
    ("task", "decision", "reason"),
    [
        (
            _task("6000.00"),
            TaskDecision(approver="bob", action="approve"),
            "bob's approval limit 5,000.00 EUR does not cover 6,000.00 EUR",
        ),
        (_task(), TaskDecision(approver="zed", action="approve"), "unknown approver 'zed'"),
        (_task(requested_by="bob"), TaskDecision(approver="bob", action="approve"), "segregation"),
        (_task(tier=1), TaskDecision(approver="bob", action="reject", comment="x"), "needs one of"),
        (_task(), TaskDecision(approver="bob", action="reject"), "rejection needs a comment"),
        (
            _task(),
            TaskDecision(approver="bob", action="approve", amount=Decimal("3500")),
            "edited amount 3,500 EUR is above 3,000.00 EUR, the amount this task is for",
        ),
        (
            _task(),
            TaskDecision(approver="bob", action="approve", task_id="case/approval-0"),
            "task case/approval-0 is no longer open",
        ),
    ],
)
def test_refusals_name_the_reason(
    directory: Directory, task: HumanTask, decision: TaskDecision, reason: str
) -> None:
    reasons = refusal_reasons(directory, task, decision)
    assert any(reason in r for r in reasons), reasons


def test_decided_task_refuses_further_decisions(directory: Directory) -> None:
    task = _task().model_copy(update={"status": TaskStatus.DECIDED})
    reasons = refusal_reasons(directory, task, TaskDecision(approver="bob", action="approve"))
    assert reasons == ["task case/approval-1 is no longer open (it is decided)"]


@pytest.fixture(scope="module")
def triage_policy() -> TicketTriagePolicy:
    return TicketTriagePolicy.model_validate(load_policy("ticket_triage").content)


def _triage(**fields: object) -> TriageProposal:
    defaults: dict[str, object] = {
        "category": "access",
        "severity": 3,
        "action": "auto_resolve",
        "kb_article_id": "KB-1",
        "reasons": ["r"],
        "confidence": 0.9,
    }
    return TriageProposal.model_validate(defaults | fields)


def test_triage_agent_may_only_use_registered_read_only_tools(
    triage_policy: TicketTriagePolicy,
) -> None:
    allowed = set(triage_policy.agents["triage_agent"].allowed_tools) - {ASK_HUMAN}
    assert allowed <= set(READ_ONLY)
    assert not any(name.startswith(("resolve", "assign", "classify")) for name in READ_ONLY)


def test_low_risk_confident_proposal_with_existing_article_auto_resolves(
    triage_policy: TicketTriagePolicy,
) -> None:
    ref = load_policy("ticket_triage").ref
    decision = decide_triage(triage_policy, ref, _triage(), article_exists=True)
    assert decision.route is TriageRoute.AUTO_RESOLVE
    assert decision.kb_article_id == "KB-1"
    assert not decision.page


@pytest.mark.parametrize(
    ("proposal", "article_exists", "reason"),
    [
        (_triage(category="security"), True, "only for low-risk categories, not security"),
        (_triage(), False, "cited article KB-1 does not exist"),
        (_triage(confidence=0.7), True, "confidence 0.70 is below 0.75"),
        (_triage(category="plumbing"), True, "category 'plumbing' is not one the policy knows"),
        (
            _triage(action="assign", team="hackers", kb_article_id=None),
            True,
            "team 'hackers' is not one tickets may be assigned to",
        ),
        (None, False, "no usable proposal from the agent: budget_exhausted"),
    ],
)
def test_triage_goes_to_review_when_any_rule_fails(
    triage_policy: TicketTriagePolicy,
    proposal: TriageProposal | None,
    article_exists: bool,
    reason: str,
) -> None:
    ref = load_policy("ticket_triage").ref
    decision = decide_triage(
        triage_policy,
        ref,
        proposal,
        no_proposal_reason="budget_exhausted: model-call budget of 10 reached",
        article_exists=article_exists,
    )
    assert decision.route is TriageRoute.HUMAN_REVIEW
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_severity_one_pages_on_the_tickets_word_or_the_agents(
    triage_policy: TicketTriagePolicy,
) -> None:
    ref = load_policy("ticket_triage").ref
    escalate = _triage(category="database", action="escalate", kb_article_id=None, severity=1)
    assert decide_triage(triage_policy, ref, escalate).route is TriageRoute.ESCALATE
    assert decide_triage(triage_policy, ref, escalate).page
    assert decide_triage(triage_policy, ref, None, ticket_severity=1).page
    assert not decide_triage(triage_policy, ref, _triage(), article_exists=True).page


def _question() -> HumanTask:
    return _task().model_copy(
        update={
            "kind": TaskKind.QUESTION,
            "eligible_roles": ["service_desk_lead"],
            "question": "Is the VPN change approved?",
        }
    )


def test_answer_from_an_eligible_responder_is_accepted(directory: Directory) -> None:
    answer = TaskAnswer(responder="frank", text="yes, CHG-7")
    assert answer_refusal_reasons(directory, _question(), answer) == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (TaskAnswer(responder="erin", text="yes"), "erin (service_desk_agent) may not answer"),
        (TaskAnswer(responder="frank", text="  "), "the answer is empty"),
        (TaskAnswer(responder="zed", text="yes"), "unknown responder 'zed'"),
    ],
)
def test_answer_refusals_name_the_reason(
    directory: Directory, answer: TaskAnswer, reason: str
) -> None:
    reasons = answer_refusal_reasons(directory, _question(), answer)
    assert any(reason in r for r in reasons), reasons


def test_decide_is_refused_for_a_question_and_answer_for_an_approval(
    directory: Directory,
) -> None:
    decision = TaskDecision(approver="frank", action="approve")
    assert "is a question" in refusal_reasons(directory, _question(), decision)[0]
    answer = TaskAnswer(responder="bob", text="yes")
    assert answer_refusal_reasons(directory, _task(), answer) == [
        "there is no question awaiting an answer in this case"
    ]
