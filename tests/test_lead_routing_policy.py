"""The lead-routing policy's pure rules: ICP score, routing by territory and load, the decision."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from activities.agents.lead_routing import LeadIntent, LeadRead, check_read, stand_in_read
from activities.crm_sales import Account, AccountExecutive, Firmographics, Lead
from casework.governance.loader import load_policy
from casework.governance.models import PolicyRef
from policies.lead_routing import (
    LeadRoute,
    LeadRoutingPolicy,
    RoutingRule,
    decide_lead,
    first_touch_text,
    least_loaded,
    route_lead,
    score_icp,
    territory_for,
)

DOCUMENT = load_policy("lead_routing")
POLICY = LeadRoutingPolicy.model_validate(DOCUMENT.content)
REF = DOCUMENT.ref


def lead(**fields: Any) -> Lead:
    return Lead.model_validate(
        {
            "lead_id": "L-1",
            "contact_name": "Anna Berg",
            "email": "anna@nordwind.example",
            "company": "Nordwind GmbH",
            "domain": "nordwind.example",
            "country": "DE",
            "message": "Pricing for 40 seats, please.",
        }
        | fields
    )


def ae(ae_id: str, load: int = 0, capacity: int = 10, **fields: Any) -> AccountExecutive:
    return AccountExecutive.model_validate(
        {
            "ae_id": ae_id,
            "name": f"Name of {ae_id}",
            "email": f"{ae_id.lower()}@example.com",
            "territory": "emea",
            "current_load": load,
            "capacity": capacity,
        }
        | fields
    )


def firm(industry: str = "software", employees: int = 500) -> Firmographics:
    return Firmographics(
        domain="nordwind.example",
        company_name="Nordwind GmbH",
        industry=industry,
        employees=employees,
        country="DE",
    )


def account(owner: str | None = "AE-OWNER") -> Account:
    return Account(
        account_id="ACC-1", name="Nordwind", domain="nordwind.example", owner_ae_id=owner
    )


def read(intent: LeadIntent = LeadIntent.PURCHASE, confidence: float = 0.9) -> LeadRead:
    return LeadRead(intent=intent, confidence=confidence, summary="scripted")


def with_policy(**changes: Any) -> LeadRoutingPolicy:
    return LeadRoutingPolicy.model_validate(DOCUMENT.content | changes)


# -- the document ---------------------------------------------------------------------------------


def test_the_shipped_policy_is_valid_and_pinned() -> None:
    assert (POLICY.id, POLICY.version) == ("lead_routing", 2)
    assert POLICY.review.tiers[0].role == "sales_ops"
    assert len(REF.sha256) == 64
    # Bare NO would be YAML for false.
    assert "NO" in POLICY.routing.territories["emea"]


def test_weights_must_add_up_to_one() -> None:
    with pytest.raises(ValidationError, match="icp and agent must add up to 1"):
        with_policy(confidence_weights={"icp": 0.6, "agent": 0.6})


def test_a_misspelt_first_touch_placeholder_fails_when_the_policy_loads() -> None:
    with pytest.raises(ValidationError, match="unknown placeholder 'frist_name'"):
        with_policy(first_touch={"subject": "Hi {frist_name}", "body": "b"})


# -- ICP ------------------------------------------------------------------------------------------


def test_territory_of_a_country() -> None:
    assert territory_for(POLICY.routing, "DE") == "emea"
    assert territory_for(POLICY.routing, "us") == "na"
    assert territory_for(POLICY.routing, "BR") is None


def test_full_icp_fit_scores_every_rule() -> None:
    score = score_icp(POLICY, lead(), firm("Software", 500), None)

    assert score.score == 100
    assert score.findings == [
        "industry Software is a target (+40)",
        "500 employees (+40)",
        "DE is served (+20)",
    ]


@pytest.mark.parametrize(
    ("employees", "points"), [(200, 40), (199, 25), (50, 25), (10, 10), (9, 0)]
)
def test_headcount_scores_the_first_band_it_reaches(employees: int, points: int) -> None:
    score = score_icp(POLICY, lead(country="BR"), firm("retail", employees), None)
    assert score.score == points


def test_without_firmographics_only_the_country_scores() -> None:
    score = score_icp(POLICY, lead(), None, None)

    assert score.score == 20
    assert score.findings[0] == (
        "no firmographics for nordwind.example: industry and headcount unknown"
    )


def test_an_existing_account_is_a_full_fit_unless_the_policy_says_otherwise() -> None:
    assert score_icp(POLICY, lead(country="BR"), None, account()).score == 100
    strict = with_policy(icp=DOCUMENT.content["icp"] | {"existing_account_is_fit": False})
    assert score_icp(strict, lead(country="BR"), None, account()).score == 0


# -- choosing an AE -------------------------------------------------------------------------------


def test_least_utilised_wins_not_least_loaded() -> None:
    # 4/20 is less utilised than 3/5, though its load is higher.
    assert least_loaded([ae("AE-A", 3, 5), ae("AE-B", 4, 20)]).ae_id == "AE-B"


def test_equal_utilisation_goes_to_the_lower_load_then_the_lower_id() -> None:
    assert least_loaded([ae("AE-A", 2, 10), ae("AE-B", 1, 5)]).ae_id == "AE-B"
    assert least_loaded([ae("AE-C", 1, 5), ae("AE-B", 1, 5)]).ae_id == "AE-B"
    # Whatever order the CRM lists them in.
    assert least_loaded([ae("AE-B", 1, 5), ae("AE-C", 1, 5)]).ae_id == "AE-B"


def test_full_inactive_and_zero_capacity_aes_take_nothing() -> None:
    candidates = [ae("AE-FULL", 10, 10), ae("AE-OFF", 0, 10, active=False), ae("AE-ZERO", 0, 0)]
    assert least_loaded(candidates) is None
    assert least_loaded([*candidates, ae("AE-LAST", 9, 10)]).ae_id == "AE-LAST"


# -- routing --------------------------------------------------------------------------------------

ROSTER = [
    ae("AE-OWNER", 10, 10),
    ae("AE-E1", 6, 10),
    ae("AE-E2", 3, 10),
    ae("AE-N1", 1, 10, territory="na"),
    ae("AE-IS", 5, 50, territory="inside_sales"),
]


def test_territory_routing_picks_the_least_loaded_ae_there() -> None:
    choice = route_lead(POLICY.routing, lead(), None, ROSTER)

    assert (choice.rule, choice.ae.ae_id, choice.territory) == (
        RoutingRule.TERRITORY,
        "AE-E2",
        "emea",
    )
    assert "AE-E2 (Name of AE-E2) is the least loaded" in choice.reasons[0]


def test_an_existing_account_goes_to_its_owner_even_at_capacity() -> None:
    choice = route_lead(POLICY.routing, lead(), account(), ROSTER)

    assert (choice.rule, choice.ae.ae_id) == (RoutingRule.ACCOUNT_OWNER, "AE-OWNER")
    assert choice.reasons == [
        "existing account ACC-1 (Nordwind) is owned by AE-OWNER (Name of AE-OWNER, 10/10)"
    ]


def test_a_full_owner_is_skipped_when_the_policy_respects_capacity() -> None:
    rules = POLICY.routing.model_copy(update={"account_owner_over_capacity": False})

    choice = route_lead(rules, lead(), account(), ROSTER)

    assert (choice.rule, choice.ae.ae_id) == (RoutingRule.TERRITORY, "AE-E2")
    assert choice.reasons[0] == "account ACC-1's owner AE-OWNER is at capacity (10/10)"


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        ("AE-GONE", "account ACC-1's owner AE-GONE is not in the CRM"),
        ("AE-OFF", "account ACC-1's owner AE-OFF is inactive"),
        (None, "account ACC-1 has no owner"),
    ],
)
def test_an_account_without_a_usable_owner_is_routed_by_territory(
    owner: str | None, reason: str
) -> None:
    roster = [*ROSTER, ae("AE-OFF", 0, 10, active=False)]

    choice = route_lead(POLICY.routing, lead(), account(owner), roster)

    assert (choice.rule, choice.ae.ae_id) == (RoutingRule.TERRITORY, "AE-E2")
    assert choice.reasons[0] == reason


def test_unknown_territory_falls_back() -> None:
    choice = route_lead(POLICY.routing, lead(country="BR"), None, ROSTER)

    assert (choice.rule, choice.ae.ae_id, choice.territory) == (
        RoutingRule.FALLBACK,
        "AE-IS",
        "inside_sales",
    )
    assert choice.reasons[0] == "country BR is in no territory"


def test_a_full_territory_falls_back() -> None:
    roster = [ae("AE-E1", 10, 10), ae("AE-E2", 8, 8), ae("AE-IS", 5, 50, territory="inside_sales")]

    choice = route_lead(POLICY.routing, lead(), None, roster)

    assert (choice.rule, choice.ae.ae_id) == (RoutingRule.FALLBACK, "AE-IS")
    assert choice.reasons[0] == "no AE in territory emea has capacity (AE-E1 10/10, AE-E2 8/8)"


def test_a_territory_without_aes_falls_back() -> None:
    choice = route_lead(POLICY.routing, lead(country="JP"), None, ROSTER)

    assert (choice.rule, choice.ae.ae_id) == (RoutingRule.FALLBACK, "AE-IS")
    assert choice.reasons[0] == "no AE in territory apac has capacity (it has no AEs)"


def test_nobody_with_capacity_anywhere_routes_to_nobody() -> None:
    roster = [ae("AE-E1", 10, 10), ae("AE-IS", 50, 50, territory="inside_sales")]

    choice = route_lead(POLICY.routing, lead(), None, roster)

    assert (choice.rule, choice.ae, choice.territory) == (RoutingRule.NOBODY, None, "emea")
    assert choice.reasons[-1] == (
        "no AE in fallback territory inside_sales has capacity (AE-IS 50/50)"
    )


# -- the decision ---------------------------------------------------------------------------------


def decide(**context: Any) -> Any:
    arguments: dict[str, Any] = {
        "firmographics": firm(),
        "read": read(),
        "account": None,
        "roster": ROSTER,
    } | context
    return decide_lead(POLICY, REF, lead(), **arguments)


def test_a_confident_fit_goes_straight_through() -> None:
    decision = decide()

    assert decision.route is LeadRoute.STRAIGHT_THROUGH
    assert decision.confidence == 0.95  # 0.5 x 1.00 + 0.5 x 0.90
    assert decision.routing.ae.ae_id == "AE-E2"
    assert decision.policy == REF
    assert decision.reasons[1] == "agent reads purchase with confidence 0.90"


def test_exactly_the_threshold_is_enough() -> None:
    # ICP 60 (industry 40 + DE 20), agent 0.9: 0.30 + 0.45 = 0.75.
    assert decide(firmographics=firm(employees=5), read=read()).confidence == 0.75
    assert decide(firmographics=firm(employees=5), read=read()).route is LeadRoute.STRAIGHT_THROUGH


def test_a_weak_fit_or_an_unsure_read_goes_to_review() -> None:
    weak_fit = decide(firmographics=firm("retail", 20))  # ICP 30: 0.15 + 0.45
    unsure = decide(read=read(LeadIntent.EVALUATION, 0.3))  # 0.50 + 0.15

    assert (weak_fit.route, weak_fit.confidence) == (LeadRoute.REVIEW, 0.6)
    assert (unsure.route, unsure.confidence) == (LeadRoute.REVIEW, 0.65)
    assert weak_fit.routing.ae is not None  # the review approves a concrete proposal


@pytest.mark.parametrize(
    "intent", [LeadIntent.SUPPORT, LeadIntent.JOB_APPLICATION, LeadIntent.SPAM, LeadIntent.UNCLEAR]
)
def test_a_confident_read_of_a_non_sales_intent_counts_nothing(intent: LeadIntent) -> None:
    decision = decide(read=read(intent, 0.99))

    assert (decision.route, decision.confidence, decision.intent) == (LeadRoute.REVIEW, 0.5, intent)
    assert "not a sales intent: counts 0" in decision.reasons[1]


def test_no_read_from_the_agent_counts_nothing_and_says_why() -> None:
    decision = decide(read=None, no_read_reason="LlmUnavailable: 503")

    assert (decision.route, decision.confidence, decision.intent) == (LeadRoute.REVIEW, 0.5, None)
    assert decision.reasons[1] == "no read from the agent (LlmUnavailable: 503): counts 0"


def test_an_existing_account_with_a_sales_read_goes_straight_to_its_owner() -> None:
    decision = decide(firmographics=None, account=account())

    assert (decision.route, decision.routing.rule, decision.routing.ae.ae_id) == (
        LeadRoute.STRAIGHT_THROUGH,
        RoutingRule.ACCOUNT_OWNER,
        "AE-OWNER",
    )


def test_nobody_with_capacity_nurtures_whatever_the_confidence() -> None:
    decision = decide(roster=[ae("AE-E1", 10, 10)])

    assert (decision.route, decision.confidence) == (LeadRoute.NURTURE, 0.95)


def test_the_decision_names_the_policy_it_was_made_under() -> None:
    other = PolicyRef(id="lead_routing", version=2, sha256="0" * 64)
    assert (
        decide_lead(
            POLICY, other, lead(), firmographics=None, read=None, account=None, roster=[]
        ).policy
        == other
    )


def test_a_read_whose_signals_the_message_does_not_state_counts_nothing() -> None:
    """The same confident purchase read goes straight through when its signals are quoted from
    the lead's message, and to a person when they are not."""
    prospect = lead()
    quoted = read().model_copy(update={"buying_signals": ["Pricing", "40 seats"]})
    invented = read().model_copy(update={"buying_signals": ["5,000 seats", "signed budget"]})
    quoted_checks = check_read(quoted, prospect.message, POLICY.sales_intents)
    invented_checks = check_read(invented, prospect.message, POLICY.sales_intents)

    assert decide(read=quoted, read_checks=quoted_checks).route is LeadRoute.STRAIGHT_THROUGH
    decision = decide(read=invented, read_checks=invented_checks)
    assert (decision.route, decision.confidence) == (LeadRoute.REVIEW, 0.5)
    assert decision.reasons[1] == (
        "agent reads purchase (confidence 0.90), not borne out by the message: counts 0 ("
        + "; ".join(invented_checks.reasons())
        + ")"
    )


# -- the first touch ------------------------------------------------------------------------------


def test_first_touch_fills_the_template_and_never_parses_lead_text() -> None:
    prospect = lead(contact_name="Anna {ae_email} Berg", company="{company} & Co")

    text = first_touch_text(POLICY.first_touch, prospect, ae("AE-E2", name="Jonas Weber"))

    assert text.subject == "{company} & Co: your enquiry"
    assert text.body.startswith("Hi Anna,\n")
    assert "Jonas Weber (ae-e2@example.com)" in text.body


# -- the offline stand-in -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "intent", "confidence"),
    [
        ("We need pricing and a quote for 300 seats before our Q3 budget.", "purchase", 0.9),
        ("Could we book a demo?", "evaluation", 0.7),
        ("I cannot reset my password, the login page shows an error.", "support", 0.9),
        ("Are there any open positions? My resume is attached.", "job_application", 0.9),
        ("Just looking around.", "unclear", 0.3),
    ],
)
def test_the_stand_in_reads_intent_from_keywords(
    message: str, intent: str, confidence: float
) -> None:
    answer = stand_in_read({"lead": {"message": message}})
    assert (answer.intent.value, answer.confidence) == (intent, confidence)
