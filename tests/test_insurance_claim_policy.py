"""The insurance-claim policy's pure rules: red flags from the records, and the route."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from activities.agents.insurance_claim import ClaimDecision, ClaimProposal
from casework.catalogue import discover
from casework.governance.loader import load_policy
from casework.governance.models import PolicyRef
from casework.governance.registry import policy_problems
from policies.insurance_claim import ClaimRoute, InsuranceClaimPolicy, decide_claim, red_flags
from tests.insurance_claim_support import claim_record, insurance_policy, past_claim

POLICY = InsuranceClaimPolicy.model_validate(load_policy("insurance_claim").content)
REF = PolicyRef(id="insurance_claim", version=1, sha256="0" * 64)
INSURANCE = insurance_policy("POL-1")
CLAIM, _ = claim_record("CLM-1", INSURANCE)


def proposal(**fields: object) -> ClaimProposal:
    values: dict[str, object] = {
        "decision": ClaimDecision.PAY,
        "amount": Decimal("1100.00"),
        "covered": True,
        "fraud_flag": False,
        "assessed_damage": Decimal("1350.00"),
        "reasons": ["fine"],
        "confidence": 0.9,
    }
    return ClaimProposal.model_validate(values | fields)


def route(**fields: object) -> ClaimRoute:
    arguments: dict[str, Any] = {
        "proposal": proposal(),
        "checks": None,
        "not_covered": [],
        "record_flags": [],
        "payable": Decimal("1100.00"),
    } | fields
    return decide_claim(POLICY, REF, CLAIM, **arguments).route


def test_the_policy_document_is_valid_and_every_amount_has_an_approver() -> None:
    assert policy_problems(Path("policies"), discover().policy_models) == []


def test_red_flags_come_from_the_records() -> None:
    assert red_flags(POLICY, CLAIM, INSURANCE, []) == []
    recent = [past_claim(INSURANCE, n, days_before=20 * n) for n in (1, 2, 3)]
    assert red_flags(POLICY, CLAIM, INSURANCE, recent) == [
        "3 earlier claims within 365 days of the loss"
    ]
    new_policy = insurance_policy("POL-2", inception_date=date(2026, 11, 10))
    assert red_flags(POLICY, CLAIM, new_policy, []) == [
        "the loss came 10 days after the policy started"
    ]


def test_routes() -> None:
    assert route() is ClaimRoute.FAST_TRACK
    assert route(not_covered=["policy POL-1 is lapsed"]) is ClaimRoute.DENY
    assert route(record_flags=["fraud before"]) is ClaimRoute.INVESTIGATE
    assert route(proposal=proposal(fraud_flag=True)) is ClaimRoute.INVESTIGATE
    assert route(proposal=proposal(confidence=0.5)) is ClaimRoute.ADJUSTER
    assert route(proposal=None) is ClaimRoute.ADJUSTER
    # At the threshold, not below it: an adjuster.
    big = proposal(amount=Decimal("2500.00"))
    assert route(proposal=big, payable=Decimal("3000.00")) is ClaimRoute.ADJUSTER


def test_an_amount_is_never_above_what_the_records_bear() -> None:
    decision = decide_claim(
        POLICY,
        REF,
        CLAIM,
        proposal=proposal(amount=Decimal("60000.00"), confidence=0.3),
        checks=None,
        not_covered=[],
        record_flags=[],
        payable=Decimal("1100.00"),
    )
    assert (decision.route, decision.amount, decision.role) == (
        ClaimRoute.ADJUSTER,
        Decimal("1100.00"),
        "claims_adjuster",
    )
