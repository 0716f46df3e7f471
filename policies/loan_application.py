"""The loan-application policy: its typed document and the pure rules that decide a loan.

No I/O, no clock, no randomness: the workflow calls these functions directly, and every decision
can be recomputed from the case's history. The agent's reading of income documents is one input
among others; the rules decide.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from activities.agents.loan_application import IncomeAssessment, IncomeReading, check_reading
from activities.credit_bureau import CreditReport
from activities.kyc import IdentityVerification, SanctionsScreening
from activities.lending import IncomeDocument, LoanApplication
from casework.agents.checks import ProposalChecks
from casework.amounts import money
from casework.eval.minimums import EvalSection
from casework.governance.decisions import RoutedDecision
from casework.governance.models import (
    AgentSettings,
    ApprovalPolicy,
    ApprovalTier,
    Duration,
    PolicyModel,
    PolicyRef,
    TierLadder,
)
from casework.governance.rules import foreign_currency, tier_for_amount

RATIO = Decimal("0.001")


class LoanLimits(PolicyModel):
    min_amount: Decimal = Field(gt=0)
    max_amount: Decimal = Field(gt=0)
    max_term_months: int = Field(ge=1)


class Affordability(PolicyModel):
    annual_interest_rate: Decimal = Field(ge=0, lt=1)


class CreditRules(PolicyModel):
    reject_below_score: int = Field(ge=300, le=850)
    reject_on_defaults: bool = True


class IncomeRules(PolicyModel):
    standard_kinds: list[str]
    min_supported_share_of_declared: Decimal = Field(ge=0, le=1)


class LoanAutoApproval(PolicyModel):
    min_score: int = Field(ge=300, le=850)
    max_debt_to_income: Decimal = Field(gt=0)
    max_amount: Decimal = Field(gt=0)
    min_agent_confidence: float = Field(ge=0, le=1)


class LoanRejection(PolicyModel):
    max_debt_to_income: Decimal = Field(gt=0)


class CreditBureauRules(PolicyModel):
    report_within: Duration


class MoreInformation(PolicyModel):
    reply_within: Duration
    max_requests: int = Field(ge=0)


class Underwriting(PolicyModel):
    tiers: list[ApprovalTier] = Field(min_length=1)
    escalate_on_sla: bool = True


class FraudWatch(PolicyModel):
    window: Duration
    notify_roles: list[str] = Field(default_factory=list)


class LoanApplicationPolicy(ApprovalPolicy):
    policy_id: ClassVar[str] = "loan_application"

    id: str
    version: int
    description: str = ""
    limits: LoanLimits
    affordability: Affordability
    credit: CreditRules
    income: IncomeRules
    auto_approval: LoanAutoApproval
    rejection: LoanRejection
    credit_bureau: CreditBureauRules
    more_information: MoreInformation
    underwriting: Underwriting
    fraud_watch: FraudWatch
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=dict)
    """Minimums its agents must meet on their labelled cases (``casework eval --gate``)."""

    def amount_ladders(self) -> list[TierLadder]:
        return [TierLadder("underwriting.tiers", self.underwriting.tiers, self.limits.max_amount)]


class LoanRoute(StrEnum):
    AUTO_APPROVE = "auto_approve"
    REJECT = "reject"
    UNDERWRITING = "underwriting"
    MORE_INFORMATION = "more_information"


class LoanDecision(RoutedDecision[LoanRoute]):
    monthly_instalment: Decimal | None = None
    verified_monthly_income: Decimal | None = None
    debt_to_income: Decimal | None = None
    missing: list[str] = Field(default_factory=list)
    """For ``more_information``: what to ask the applicant for."""


def monthly_instalment(amount: Decimal, term_months: int, annual_rate: Decimal) -> Decimal:
    """The annuity instalment repaying ``amount`` over ``term_months`` at ``annual_rate``."""
    rate = annual_rate / 12
    if rate == 0:
        return (amount / term_months).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    growth = (1 + rate) ** term_months
    return (amount * rate * growth / (growth - 1)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def non_standard_documents(
    policy: LoanApplicationPolicy, documents: list[IncomeDocument]
) -> list[IncomeDocument]:
    """The documents no payroll or pension feed covers: the income reader reads these."""
    return [doc for doc in documents if doc.kind not in policy.income.standard_kinds]


def standard_income(policy: LoanApplicationPolicy, documents: list[IncomeDocument]) -> Decimal:
    return sum(
        (
            doc.monthly_amount
            for doc in documents
            if doc.kind in policy.income.standard_kinds and doc.monthly_amount is not None
        ),
        Decimal(0),
    )


def check_income_reading(
    policy: LoanApplicationPolicy,
    application: LoanApplication,
    documents: list[IncomeDocument],
    reading: IncomeReading,
) -> ProposalChecks:
    """The income reader's figure checked against the documents it read and the income the
    applicant declared (less what payroll feeds evidence)."""
    texts = {
        doc.document_id: f"{doc.description}\n{doc.text}"
        for doc in non_standard_documents(policy, documents)
    }
    return check_reading(
        reading,
        texts,
        application.declared_monthly_income,
        standard_income(policy, documents),
    )


def kyc_refusals(identity: IdentityVerification, screening: SanctionsScreening) -> list[str]:
    """Why KYC stops the application; empty when it may go on. No rule overrides these."""
    reasons = [
        f"sanctions screening {screening.screening_id} hit {hit.entry_id} ({hit.name}, "
        f"{hit.program}) on {' and '.join(hit.matched_on)}"
        for hit in screening.hits
    ]
    if identity.status != "verified":
        reasons.append(
            f"identity verification {identity.verification_id} failed: "
            + ("; ".join(identity.reasons) or "no reason given")
        )
    return reasons


def decide_loan(
    policy: LoanApplicationPolicy,
    ref: PolicyRef,
    application: LoanApplication,
    documents: list[IncomeDocument],
    report: CreditReport | None,
    reading: IncomeReading | None,
    *,
    report_missing_reason: str = "",
    reading_problem: str = "",
    information_requests: int = 0,
    reading_checks: ProposalChecks | None = None,
) -> LoanDecision:
    """Reject on a hard rule; approve only when every condition holds; ask the applicant when the
    income is not evidenced and asking is still allowed; otherwise an underwriter decides.

    ``documents`` are the application's plus any the applicant sent since; ``reading`` is the
    income reader's view of the non-standard ones (None when there were none, or when it gave no
    usable reading: then ``reading_problem`` says why). ``reading_checks`` are the checks of its
    figure (``check_income_reading``): a figure that fails them counts for nothing and sends the
    case to an underwriter, who sees why. None only in a case that decided before readings were
    checked, replaying that decision.
    """
    amount, currency = application.amount, application.currency
    instalment = monthly_instalment(
        amount, application.term_months, policy.affordability.annual_interest_rate
    )
    checked = reading_checks is not None and reading is not None
    unverified = reading_checks.reasons() if checked else []
    agent_income = (
        reading.verified_monthly_income or Decimal(0)
        if reading is not None
        and reading.assessment is IncomeAssessment.SUPPORTED
        and not unverified
        else Decimal(0)
    )
    verified = standard_income(policy, documents) + agent_income
    debt = report.monthly_debt_payments if report is not None else Decimal(0)
    dti = ((debt + instalment) / verified).quantize(RATIO) if verified > 0 else None

    def decision(route: LoanRoute, reasons: list[str], **fields: object) -> LoanDecision:
        return LoanDecision(
            route=route,
            reasons=reasons,
            policy=ref,
            monthly_instalment=instalment,
            verified_monthly_income=verified,
            debt_to_income=dti,
            **fields,
        )

    # Without the reader's figure the income is incomplete, so the ratio cannot prove the loan
    # unaffordable: an underwriter judges it instead.
    rejections = _rejections(policy, application, report, None if unverified else dti, currency)
    if rejections:
        return decision(LoanRoute.REJECT, rejections)

    limits = policy.more_information
    needed = application.declared_monthly_income * policy.income.min_supported_share_of_declared
    income_short = verified < needed
    unread = reading is not None and reading.assessment is IncomeAssessment.INSUFFICIENT
    if (
        income_short
        and information_requests < limits.max_requests
        and not reading_problem
        and not unverified
        and (verified == 0 or unread)
    ):
        missing = list(reading.missing) if reading is not None and reading.missing else []
        return decision(
            LoanRoute.MORE_INFORMATION,
            [
                f"the documents evidence {money(verified)} {currency} of the "
                f"{money(application.declared_monthly_income)} {currency} monthly income declared"
            ],
            missing=missing or ["proof of your regular monthly income"],
        )

    rules = policy.auto_approval
    foreign = foreign_currency(policy, currency)
    blockers = [foreign] if foreign else []
    if report is None:
        blockers.append(report_missing_reason or "no credit bureau report")
    elif report.score < rules.min_score:
        blockers.append(f"bureau score {report.score} is below {rules.min_score}")
    if dti is None:
        blockers.append("no income is evidenced")
    elif dti > rules.max_debt_to_income:
        blockers.append(f"debt-to-income {dti} is above {rules.max_debt_to_income}")
    if not foreign and amount > rules.max_amount:
        blockers.append(
            f"amount {money(amount)} {currency} exceeds the auto-approval ceiling "
            f"{money(rules.max_amount)}"
        )
    if non_standard_documents(policy, documents):
        if reading is None:
            blockers.append(f"no usable reading of the income documents: {reading_problem}")
        elif reading.confidence < rules.min_agent_confidence:
            blockers.append(
                f"income reader confidence {reading.confidence:.2f} is below "
                f"{rules.min_agent_confidence:.2f}"
            )
    blockers += [f"not counted: {reason}" for reason in unverified]
    if income_short and verified > 0:
        blockers.append(
            f"the documents evidence {money(verified)} {currency} of the "
            f"{money(application.declared_monthly_income)} {currency} monthly income declared"
        )
    if not blockers:
        return decision(
            LoanRoute.AUTO_APPROVE,
            [
                f"score {report.score if report else '-'}, debt-to-income {dti}, amount within "
                "the auto-approval ceiling, income evidenced"
            ],
        )
    tier = tier_for_amount(policy.underwriting.tiers, amount, foreign=bool(foreign))
    return decision(
        LoanRoute.UNDERWRITING,
        blockers,
        tier=tier,
        role=policy.underwriting.tiers[tier].role,
        sla=policy.underwriting.tiers[tier].sla,
    )


def refer_to_underwriting(
    policy: LoanApplicationPolicy,
    decision: LoanDecision,
    reason: str,
    amount: Decimal,
    currency: str | None = None,
) -> LoanDecision:
    """``decision`` handed to an underwriter instead, for ``reason`` (the applicant's silence).
    ``currency``: the loan's, when not the policy's."""
    foreign = foreign_currency(policy, currency or policy.currency)
    tier = tier_for_amount(policy.underwriting.tiers, amount, foreign=bool(foreign))
    return decision.model_copy(
        update={
            "route": LoanRoute.UNDERWRITING,
            "reasons": [reason, *decision.reasons],
            "tier": tier,
            "role": policy.underwriting.tiers[tier].role,
            "sla": policy.underwriting.tiers[tier].sla,
            "missing": [],
        }
    )


def _rejections(
    policy: LoanApplicationPolicy,
    application: LoanApplication,
    report: CreditReport | None,
    dti: Decimal | None,
    currency: str,
) -> list[str]:
    reasons: list[str] = []
    limits = policy.limits
    # The limits are in the policy's currency: a loan in another one is for a person to judge.
    in_policy_currency = foreign_currency(policy, currency) is None
    if in_policy_currency and not limits.min_amount <= application.amount <= limits.max_amount:
        reasons.append(
            f"amount {money(application.amount)} {currency} is outside "
            f"{money(limits.min_amount)}-{money(limits.max_amount)}"
        )
    if application.term_months > limits.max_term_months:
        reasons.append(
            f"term {application.term_months} months exceeds {limits.max_term_months} months"
        )
    if report is not None:
        if report.score < policy.credit.reject_below_score:
            reasons.append(
                f"bureau score {report.score} is below {policy.credit.reject_below_score}"
            )
        if policy.credit.reject_on_defaults and report.defaults:
            reasons.append(f"the bureau reports {report.defaults} default(s)")
        if dti is not None and dti > policy.rejection.max_debt_to_income:
            reasons.append(
                f"debt-to-income {dti} is above {policy.rejection.max_debt_to_income}: "
                "the instalment is not affordable"
            )
    return reasons
