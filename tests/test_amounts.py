"""Amounts in decisions, without Temporal: how a person writes one, what a currency and a policy
allow, whose approval limit covers it, and which amounts a policy leaves to nobody.

The cases themselves (signals, updates, the review queue) are in ``test_edited_amounts.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from casework.amounts import AmountError, money, parse_amount
from casework.case.refusals import eligible_roles, refusal_reasons
from casework.case.tasks import HumanTask, TaskDecision
from casework.catalogue import discover
from casework.governance.loader import catalogue_policy_dir, load_policy
from casework.governance.models import Directory, PolicyRef
from casework.governance.registry import policy_problems
from casework.signing import decision_message
from casework.testing.temporal import BIN
from policies.invoice_exception import (
    InvoiceExceptionPolicy,
    Route,
    compute_variance,
    decide_invoice,
)
from policies.refund import RefundPolicy, RefundRoute, decide_refund
from tests.fake_systems import proposal as invoice_proposal
from tests.fake_systems import scenario
from tests.refund_support import proposal
from tests.test_refund_policy import assess

CASEWORK = str(BIN / "casework")
REF = PolicyRef(id="p", version=1, sha256="0" * 64)
INVOICE_POLICY = InvoiceExceptionPolicy.model_validate(load_policy("invoice_exception").content)
REFUND_POLICY = RefundPolicy.model_validate(load_policy("refund").content)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.model_validate(load_policy("directory").content)


def task(
    amount: str = "12600.00",
    currency: str = "EUR",
    *,
    tier: int = 1,
    min_amount: str | None = None,
    max_amount: str | None = None,
) -> HumanTask:
    """An invoice task at the finance_manager tier (carol, limit 50,000 EUR; dave, no limit)."""
    tiers = INVOICE_POLICY.approval_tiers
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return HumanTask(
        task_id="case/approval-1",
        case_id="case",
        title="t",
        role=tiers[tier].role,
        eligible_roles=eligible_roles(tiers, tier),
        amount=Decimal(amount),
        currency=currency,
        min_amount=Decimal(min_amount) if min_amount else None,
        max_amount=Decimal(max_amount) if max_amount else None,
        requested_by="alice",
        opened_at=now,
        due_at=now + timedelta(hours=48),
        tier=tier,
        summary="s",
    )


def approve(amount: str | None, approver: str = "carol") -> TaskDecision:
    return TaskDecision(
        approver=approver, action="approve", amount=Decimal(amount) if amount else None
    )


# -- what an amount can be at all ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1E+400", "1E+400"),
        ("1E+30", "1E+30"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("NaN", "NaN"),
        ("sNaN", "sNaN"),
        ("12600.004", "12,600.00"),
    ],
)
def test_money_never_raises_whatever_it_is_given(value: str, shown: str) -> None:
    # It once raised decimal.InvalidOperation inside a signal handler, freezing the case.
    assert money(Decimal(value)) == shown


@pytest.mark.parametrize("amount", ["1E+400", "1E+30", "1000000000000000", "1E-13", "NaN", "Inf"])
def test_a_decision_with_an_amount_no_task_could_allow_is_refused_naming_the_field(
    amount: str,
) -> None:
    with pytest.raises(ValidationError) as refused:
        TaskDecision.model_validate({"approver": "carol", "action": "approve", "amount": amount})
    assert refused.value.errors()[0]["loc"] == ("amount",)


def test_the_largest_and_longest_amounts_a_decision_may_carry_are_signed_exactly() -> None:
    largest = TaskDecision(approver="c", action="approve", amount=Decimal("999999999999999.99"))
    longest = TaskDecision(approver="c", action="approve", amount=Decimal("0.000000000001"))
    assert b'"amount":"999999999999999.99"' in decision_message("case", largest)
    assert b'"amount":"0.000000000001"' in decision_message("case", longest)
    # Trailing zeros do not count, as the README's message format says.
    plain = TaskDecision(approver="c", action="approve", amount=Decimal("1200.50"))
    assert b'"amount":"1200.5"' in decision_message("case", plain)


@pytest.mark.parametrize(
    "amount", ["NaN", "sNaN", "Infinity", "-Infinity", "1E+400", "-1E+400", "1E-400", "-5", "0"]
)
def test_refusal_reasons_never_raise_and_refuse_what_no_model_would_let_through(
    directory: Directory, amount: str
) -> None:
    # model_construct skips the model's checks: the rules must hold on their own too, since a
    # signal handler that raised would fail every workflow task of its case.
    decision = TaskDecision.model_construct(
        approver="carol", action="approve", amount=Decimal(amount), comment=None, task_id=None
    )
    reasons = refusal_reasons(directory, task(), decision)
    assert reasons and all("edited amount" in reason for reason in reasons), reasons


@pytest.mark.parametrize(
    ("typed", "amount"),
    [("12600.00", "12600.00"), ("12600", "12600"), (" 0.5 ", "0.5"), ("12.600", "12.600")],
)
def test_a_typed_amount_is_digits_with_a_point_for_decimals(typed: str, amount: str) -> None:
    assert parse_amount(typed) == Decimal(amount)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("12.600,00", "has a comma"),
        ("12,600.00", "has a comma"),
        ("12600,5", "has a comma"),
        ("1e400", "not a plain amount"),
        ("1E3", "not a plain amount"),
        ("12 600", "not a plain amount"),
        ("12'600", "not a plain amount"),
        ("NaN", "not a plain amount"),
        ("+5", "not a plain amount"),
        ("-5", "must be above 0"),
        ("0.00", "must be above 0"),
        ("9999999999999999", "more than 15 digits before the decimal point"),
        ("", "no amount given"),
    ],
)
def test_an_ambiguous_or_impossible_typed_amount_is_refused_saying_why(
    typed: str, reason: str
) -> None:
    with pytest.raises(AmountError) as refused:
        parse_amount(typed)
    assert reason in str(refused.value)


# -- edited amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "refusal"),
    [
        ("EUR", "0.001", "edited amount 0.001 EUR has 3 decimal places; EUR has 2"),
        # How much of Europe writes twelve thousand six hundred: not read as 12.60.
        ("EUR", "12.600", "edited amount 12.600 EUR has 3 decimal places; EUR has 2"),
        ("EUR", "0.00001", "edited amount 0.00001 EUR has 5 decimal places; EUR has 2"),
        ("JPY", "1500.5", "edited amount 1,500.5 JPY has 1 decimal places; JPY has 0"),
        ("KWD", "12.0001", "edited amount 12.0001 KWD has 4 decimal places; KWD has 3"),
        ("EUR", "12.60", None),
        ("JPY", "1500", None),
        ("KWD", "12.125", None),
    ],
)
def test_an_edited_amount_has_no_more_decimals_than_its_currency(
    directory: Directory, currency: str, amount: str, refusal: str | None
) -> None:
    reasons = refusal_reasons(directory, task(currency=currency), approve(amount, "dave"))
    assert reasons == ([refusal] if refusal else [])


def test_an_edited_amount_above_the_task_is_refused_quoting_it_exactly(
    directory: Directory,
) -> None:
    reasons = refusal_reasons(directory, task("12600.00"), approve("12600.001"))
    # It once read "edited amount 12,600.00 must be above 0 and at most 12,600.00".
    assert reasons == [
        "edited amount 12,600.001 EUR is above 12,600.00 EUR, the amount this task is for",
        "edited amount 12,600.001 EUR has 3 decimal places; EUR has 2",
    ]
    assert refusal_reasons(directory, task("12600.00"), approve("-5")) == [
        "edited amount -5 EUR must be above 0"
    ]


def test_an_edited_amount_stays_within_the_policy_s_minimum_and_maximum(
    directory: Directory,
) -> None:
    loan = task("150000.00", min_amount="1000.00", max_amount="100000.00")
    assert refusal_reasons(directory, loan, approve("1.00", "dave")) == [
        "edited amount 1.00 EUR is below 1,000.00 EUR, the policy's minimum"
    ]
    assert refusal_reasons(directory, loan, approve("120000.00", "dave")) == [
        "edited amount 120,000.00 EUR is above 100,000.00 EUR, the policy's maximum"
    ]
    assert refusal_reasons(directory, loan, approve("1000.00", "dave")) == []


def test_a_task_without_an_amount_refuses_one_and_no_limit_applies(
    directory: Directory,
) -> None:
    review = task("0", currency="").model_copy(
        update={"role": "service_desk_lead", "eligible_roles": ["service_desk_lead"]}
    )
    # It once read "frank's approval limit 0.00  does not cover 100.00 ".
    assert refusal_reasons(directory, review, approve("100", "frank")) == [
        "task case/approval-1 carries no amount, so an amount means nothing here: "
        "approve it without one"
    ]
    assert refusal_reasons(directory, review, approve(None, "frank")) == []


def test_an_approval_limit_covers_only_amounts_in_the_directory_s_currency(
    directory: Directory,
) -> None:
    in_kwd = task("49.99", currency="KWD", tier=2)
    assert refusal_reasons(directory, in_kwd, approve(None, "carol")) == [
        "carol (finance_manager) may not decide this task; it needs one of: cfo"
    ]
    lower = task("49.99", currency="KWD", tier=1)
    assert refusal_reasons(directory, lower, approve(None, "carol")) == [
        "carol's approval limit is in EUR and does not cover an amount in KWD: only a role "
        "without a limit may approve this task"
    ]
    assert refusal_reasons(directory, lower, approve(None, "dave")) == []


def test_signals_replayed_in_cases_started_before_the_amount_rules_are_judged_as_then(
    directory: Directory,
) -> None:
    # A case started before the rules may hold an accepted signal with such an amount in its
    # history; replayed, it must be accepted again (see case.EDITED_AMOUNT_RULES).
    lax = refusal_reasons(directory, task(), approve("0.001"), strict_amounts=False)
    assert lax == []
    assert refusal_reasons(directory, task(), approve("0.001")) != []


# -- thresholds per currency --------------------------------------------------------------------


def test_a_refund_in_another_currency_is_never_automatic_and_goes_to_the_top_tier() -> None:
    in_eur = assess(REFUND_POLICY, "49.99", total="49.99")
    assert decide_refund(REFUND_POLICY, REF, in_eur, proposal()).route is RefundRoute.AUTO_REFUND
    in_kwd = in_eur.model_copy(update={"currency": "KWD"})
    decision = decide_refund(REFUND_POLICY, REF, in_kwd, proposal())
    assert (decision.route, decision.role) == (RefundRoute.APPROVAL, "cfo")
    assert decision.reasons == [
        "the amount is in KWD, the policy's amounts are in EUR: a person decides"
    ]


def test_an_invoice_in_another_currency_goes_to_the_top_tier() -> None:
    within = scenario("INV-1")
    variance = compute_variance(
        within.invoice, within.purchase_order, within.receipts, INVOICE_POLICY.tolerance
    )
    agent, supplier = invoice_proposal(), within.supplier
    in_eur = decide_invoice(INVOICE_POLICY, REF, variance, agent, supplier, currency="EUR")
    in_usd = decide_invoice(INVOICE_POLICY, REF, variance, agent, supplier, currency="USD")
    assert in_eur.route is Route.AUTO_APPROVE
    assert (in_usd.route, in_usd.role) == (Route.HUMAN_APPROVAL, "cfo")
    assert in_usd.reasons == [
        "the amount is in USD, the policy's amounts are in EUR: a person decides"
    ]


# -- tiers that leave amounts to nobody ---------------------------------------------------------


def test_the_shipped_policies_leave_no_amount_that_nobody_may_approve() -> None:
    assert policy_problems(catalogue_policy_dir(), discover().policy_models) == []


def test_tiers_that_leave_amounts_nobody_may_approve_are_refused_naming_the_gap(
    tmp_path: Path,
) -> None:
    for source in catalogue_policy_dir().glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)

    def edit(name: str, change: Callable[[dict[str, Any]], None]) -> Path:
        path = tmp_path / name
        content = yaml.safe_load(path.read_text())
        change(content)
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    def tiers_as_first_shipped(refund: dict[str, Any]) -> None:
        # Finance (limit 50,000.00) on top; fraud investigators (limit 10,000.00) alone.
        refund["approval_tiers"] = refund["approval_tiers"][:2]
        refund["approval_tiers"][1]["max_amount"] = None
        refund["fraud_investigation"]["tiers"] = refund["fraud_investigation"]["tiers"][:1]
        refund["fraud_investigation"]["tiers"][0]["max_amount"] = None

    def credit_officer_limited(people: dict[str, Any]) -> None:
        people["roles"]["credit_officer"]["approval_limit"] = 1000000

    refund = edit("refund.yaml", tiers_as_first_shipped)
    loan = tmp_path / "loan_application.yaml"
    edit("directory.yaml", credit_officer_limited)

    assert policy_problems(tmp_path, discover().policy_models) == [
        f"{loan}: underwriting.tiers: a case in another currency than EUR goes to "
        "credit_officer, whose approval limit covers no other currency: nobody may approve it",
        f"{refund}: approval_tiers: above 50,000.00 EUR goes to finance_manager, and no one who "
        "may decide it (finance_manager) has an approval limit that covers it",
        f"{refund}: approval_tiers: a case in another currency than EUR goes to "
        "finance_manager, whose approval limit covers no other currency: nobody may approve it",
        f"{refund}: fraud_investigation.tiers: above 10,000.00 EUR goes to fraud_investigator, "
        "and no one who may decide it (fraud_investigator) has an approval limit that covers it",
        f"{refund}: fraud_investigation.tiers: a case in another currency than EUR goes to "
        "fraud_investigator, whose approval limit covers no other currency: nobody may "
        "approve it",
    ]


def test_a_policy_or_directory_that_names_no_currency_is_refused(tmp_path: Path) -> None:
    for source in catalogue_policy_dir().glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)
    for name in ("refund.yaml", "directory.yaml"):
        path = tmp_path / name
        path.write_text(path.read_text().replace("\ncurrency: EUR\n", "\n"))
    assert policy_problems(tmp_path, discover().policy_models) == [
        f"{tmp_path / 'directory.yaml'}: currency: missing; name the currency (e.g. currency: "
        "EUR) of the approval limits",
        f"{tmp_path / 'refund.yaml'}: currency: missing; name the currency (e.g. currency: EUR) "
        "of its amounts",
    ]


def test_a_policy_written_before_currencies_were_named_applies_its_amounts_in_any() -> None:
    # What running cases replay: their policy, from their history, names no currency, and each
    # decision must come out as it did (an amount rule applied whatever the order's currency).
    content = load_policy("refund").content
    before = RefundPolicy.model_validate({k: v for k, v in content.items() if k != "currency"})
    in_kwd = assess(before, "49.99", total="49.99").model_copy(update={"currency": "KWD"})
    assert decide_refund(before, REF, in_kwd, proposal()).route is RefundRoute.AUTO_REFUND


def test_a_loan_ceiling_bounds_the_amounts_its_tiers_must_cover(tmp_path: Path) -> None:
    for source in catalogue_policy_dir().glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)
    people = tmp_path / "directory.yaml"
    content = yaml.safe_load(people.read_text())
    # The underwriter alone, limit 100,000.00: loans go up to the policy's 500,000.00.
    content["roles"]["credit_officer"]["approval_limit"] = 0
    people.write_text(yaml.safe_dump(content, sort_keys=False))
    problems = policy_problems(tmp_path, discover().policy_models)
    assert (
        f"{tmp_path / 'loan_application.yaml'}: underwriting.tiers: above 100,000.00 up to "
        "500,000.00 EUR goes to credit_officer, and no one who may decide it (credit_officer) "
        "has an approval limit that covers it"
    ) in problems


# -- the command line ---------------------------------------------------------------------------


def casework(*args: str) -> subprocess.CompletedProcess[str]:
    # No Temporal at this address: amounts are refused before anything is sent.
    env = {**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    return subprocess.run(
        [CASEWORK, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("command", ["approve", "sign"])
@pytest.mark.parametrize(
    ("typed", "reason"),
    [("1e400", "not a plain amount"), ("12.600,00", "has a comma"), ("0.00", "above 0")],
)
def test_approve_and_sign_refuse_an_amount_they_cannot_read_unambiguously(
    command: str, typed: str, reason: str
) -> None:
    args = [command, "invoice-exception-INV-1", "--as", "carol", "--amount", typed]
    result = casework(*args, *(["--action", "approve"] if command == "sign" else []))
    assert result.returncode == 2
    # It once printed "[<class 'decimal.InvalidOperation'>]" (approve) or signed "1E+400" (sign).
    assert f"argument --amount: amount {typed!r} " in result.stderr and reason in result.stderr
    assert "InvalidOperation" not in result.stderr and result.stdout == ""


def test_approve_help_states_what_an_amount_may_be() -> None:
    shown = " ".join(casework("approve", "--help").stdout.split())
    for bound in (
        "e.g. 12600.00",
        "no thousands separator",
        "above 0, at most the task's amount, within the policy's minimum and maximum",
        "(EUR 2, JPY 0, KWD 3)",
    ):
        assert bound in shown
