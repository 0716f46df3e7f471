"""The insurance-claim agents: a claims coordinator that delegates, in parallel, to a coverage
analyst, a damage assessor and a fraud analyst, then reconciles what they found into one proposal.

Each is its own agent region with its own prompt, typed answer and allowlist (the policy's
``agents`` section). They only propose: the claim's values are checked against the records
(``check_claim_proposal``) and the insurance-claim policy decides.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from activities.claims import Claim, EstimateLine
from activities.policy_admin import InsurancePolicy
from activities.repair_costs import Benchmark
from casework.agents.checks import (
    CheckBasis,
    ProposalChecks,
    ValueCheck,
    matches_record,
    opinion,
    within,
)
from casework.agents.messages import DATA_BLOCK, ChatMessage, ToolCall
from casework.agents.spec import AgentSpec
from casework.agents.tools import FINAL_ANSWER

CLAIMS_COORDINATOR = "claims_coordinator"
COVERAGE_ANALYST = "coverage_analyst"
DAMAGE_ASSESSOR = "damage_assessor"
FRAUD_ANALYST = "fraud_analyst"

# Stable names: stored histories name them.
CLAIM_PROPOSAL = "claim_proposal"
COVERAGE_FINDING = "claim_coverage_finding"
DAMAGE_ASSESSMENT = "claim_damage_assessment"
FRAUD_ASSESSMENT = "claim_fraud_assessment"

SIMILAR_CLAIMS_OVER_MCP = "sandbox__find_similar_claims"
"""The fraud analyst reads similar claims over MCP: the claim-history lookup as the sandbox's MCP
server serves it (``agents.fraud_analyst.mcp_servers.sandbox`` in the policy), under the name
the agent region gives an MCP tool (``<server>__<tool>``)."""

COORDINATOR_TASK = (
    "Decide this claim. Ask the coverage analyst, the damage assessor and the fraud analyst "
    "(all three at once), then reconcile their findings into one proposal."
)


class ClaimDecision(StrEnum):
    PAY = "pay"
    DENY = "deny"
    INVESTIGATE = "investigate"


# -- what each agent answers ---------------------------------------------------------------------


class CoverageFinding(BaseModel):
    covered: bool = Field(description="Whether the policy covers this loss.")
    exclusions_applied: list[str] = Field(
        default_factory=list, description="The exclusions that take the loss out of cover."
    )
    deductible: Decimal = Field(ge=0)
    limit: Decimal = Field(ge=0, description="The most the policy pays on one claim.")
    reasons: list[str] = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)


class LineAssessment(BaseModel):
    item_code: str
    estimated: Decimal = Field(ge=0, description="What the repair estimate asks for the item.")
    benchmark_high: Decimal | None = Field(
        default=None, description="The benchmark's high cost for the item; null if none."
    )
    allowed: Decimal = Field(ge=0, description="What the item should cost.")
    note: str = ""


class DamageAssessment(BaseModel):
    lines: list[LineAssessment] = Field(min_length=1)
    assessed_total: Decimal = Field(ge=0, description="The sum of the allowed amounts.")
    reasons: list[str] = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)


class FraudAssessment(BaseModel):
    fraud_flag: bool = Field(description="Whether special investigations should look first.")
    red_flags: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)


class ClaimProposal(BaseModel):
    decision: ClaimDecision
    amount: Decimal = Field(ge=0, description="What to pay the claimant (0 for deny).")
    covered: bool = Field(description="Whether the policy covers the loss.")
    fraud_flag: bool = Field(description="Whether anything points to fraud.")
    assessed_damage: Decimal = Field(
        ge=0, description="The damage as assessed, before the deductible and the limit."
    )
    reasons: list[str] = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)

    def headline(self) -> str:
        return (
            f"proposes {self.decision.value} {self.amount:,} "
            f"(covered: {self.covered}, fraud flag: {self.fraud_flag}) "
            f"with confidence {self.confidence:.2f}"
        )

    def recommended_action(self) -> str | None:
        # An adjuster's approval pays the claim: approving follows a proposal to pay.
        return "approve" if self.decision is ClaimDecision.PAY else "reject"


# -- an agent's word is not a fact -----------------------------------------------------------------


def benchmarked_estimate(
    lines: list[EstimateLine], benchmarks: list[Benchmark]
) -> tuple[Decimal, list[str]]:
    """What the recorded estimate comes to when each line is held to its benchmark's high cost,
    and the items that have no benchmark (they count for nothing until a person looks)."""
    highs = {benchmark.item_code: benchmark.high for benchmark in benchmarks}
    total, unbenchmarked = Decimal(0), []
    for line in lines:
        high = highs.get(line.item_code)
        if high is None:
            unbenchmarked.append(line.item_code)
        else:
            total += min(line.amount, high)
    return total, unbenchmarked


def payable_bound(benchmarked: Decimal, policy: InsurancePolicy) -> Decimal:
    """The most the claim may pay: the benchmarked damage, capped at the policy's limit, less
    its deductible."""
    return max(Decimal(0), min(benchmarked, policy.limit_amount) - policy.deductible)


def check_claim_proposal(
    proposal: ClaimProposal,
    claim: Claim,
    policy: InsurancePolicy,
    benchmarks: list[Benchmark],
) -> ProposalChecks:
    """How the coordinator's proposal is checked against the claim's records.

    Coverage against the policy record (in force on the loss date, the peril covered, no
    exclusion of it); the amount and the assessed damage against the recorded estimate held to
    the repair-cost benchmarks, capped at the policy's limit, less its deductible. The fraud
    flag, the decision and the confidence are its judgement: a flag may only send the claim to
    special investigations, and the policy's own red-flag rules read the claim history too.
    """
    source = f"policy {policy.policy_number}"
    not_covered = policy.covers(claim.peril, claim.loss_date)
    benchmarked, unbenchmarked = benchmarked_estimate(claim.estimate_lines, benchmarks)
    bound = payable_bound(benchmarked, policy)
    checks: list[ValueCheck] = [
        matches_record(
            "covered",
            proposal.covered,
            not not_covered,
            f"{source} ({'; '.join(not_covered) or f'covers {claim.peril}'})",
            normalise=False,
        ),
        within(
            "assessed_damage",
            proposal.assessed_damage,
            at_most=benchmarked,
            bound="the recorded estimate held to the repair-cost benchmarks"
            + (f" (no benchmark for {', '.join(unbenchmarked)})" if unbenchmarked else ""),
            basis=CheckBasis.RECORD,
        ),
    ]
    if proposal.decision is ClaimDecision.PAY:
        checks.append(
            within(
                "amount",
                proposal.amount,
                at_most=bound,
                bound=f"the benchmarked estimate capped at the limit of {policy.limit_amount:,}, "
                f"less the deductible of {policy.deductible:,}",
                basis=CheckBasis.RECORD,
            )
        )
    checks += [
        opinion("fraud_flag", proposal.fraud_flag, "a flag sends the claim to investigations"),
        opinion("decision", proposal.decision.value, "the policy decides the route"),
        opinion(
            "confidence", proposal.confidence, "below the policy's minimum an adjuster decides"
        ),
    ]
    return ProposalChecks(agent=CLAIMS_COORDINATOR, checks=checks)


# -- offline stand-ins: deterministic rules that make real tool calls and real delegation -------


def _data(content: str | None) -> Any:
    match = DATA_BLOCK.search(content or "")
    if match is None:
        return None
    try:
        return json.loads(match.group(2))
    except json.JSONDecodeError:
        return match.group(2)


def _claim(messages: list[ChatMessage]) -> dict[str, Any]:
    context = _data(messages[1].content) if len(messages) > 1 else None
    claim = context.get("claim") if isinstance(context, dict) else None
    return claim if isinstance(claim, dict) else {}


def _results(messages: list[ChatMessage]) -> dict[str, Any]:
    """What each tool called so far answered, by tool name (the latest call of each)."""
    asked = {call.id: call.name for m in messages if m.role == "assistant" for call in m.tool_calls}
    return {
        asked[m.tool_call_id]: _data(m.content)
        for m in messages
        if m.role == "tool" and m.tool_call_id in asked
    }


def _turn(messages: list[ChatMessage], calls: list[tuple[str, dict[str, Any]]]) -> ChatMessage:
    done = sum(len(m.tool_calls) for m in messages if m.role == "assistant")
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(id=f"standin-{done + i}", name=name, arguments=json.dumps(args, default=str))
            for i, (name, args) in enumerate(calls, start=1)
        ],
    )


def _answer(messages: list[ChatMessage], answer: BaseModel) -> ChatMessage:
    return _turn(messages, [(FINAL_ANSWER, answer.model_dump(mode="json"))])


def _rule(reasons: list[str]) -> list[str]:
    return [f"offline stand-in rule: {reason}" for reason in reasons]


def _document_id(claim: dict[str, Any], kind: str) -> str | None:
    for document in claim.get("documents") or []:
        if isinstance(document, dict) and document.get("kind") == kind:
            return str(document.get("document_id"))
    return None


def coverage_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Read the policy record, then compare the loss with its period, perils and exclusions."""
    claim = _claim(messages)
    results = _results(messages)
    policy = results.get("get_insurance_policy")
    if "get_insurance_policy" not in results:
        return _turn(
            messages, [("get_insurance_policy", {"policy_number": claim.get("policy_number", "")})]
        )
    if not isinstance(policy, dict):
        return _answer(
            messages,
            CoverageFinding(
                covered=False,
                deductible=Decimal(0),
                limit=Decimal(0),
                confidence=0.3,
                reasons=_rule([f"the policy could not be read: {policy}"]),
            ),
        )
    record = InsurancePolicy.model_validate(policy)
    loss_date = date.fromisoformat(str(claim.get("loss_date")))
    reasons = record.covers(str(claim.get("peril")), loss_date)
    exclusions = [e.wording for e in record.exclusions if e.peril == claim.get("peril")]
    return _answer(
        messages,
        CoverageFinding(
            covered=not reasons,
            exclusions_applied=exclusions,
            deductible=record.deductible,
            limit=record.limit_amount,
            reasons=_rule(
                reasons
                or [
                    f"{record.policy_number} covers {claim.get('peril')} on "
                    f"{loss_date}, in force and not excluded"
                ]
            ),
            confidence=0.92,
        ),
    )


_ESTIMATE_LINE = re.compile(
    r"^\s*([A-Z0-9][A-Z0-9._-]+)\s*\|\s*(.+?)\s*\|\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*$", re.M
)


def damage_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Read the repair estimate and the benchmarks of its items, then hold each line to its
    benchmark's high cost."""
    claim = _claim(messages)
    results = _results(messages)
    recorded = [line for line in claim.get("estimate_lines") or [] if isinstance(line, dict)]
    if not results:
        calls: list[tuple[str, dict[str, Any]]] = []
        estimate = _document_id(claim, "repair_estimate")
        if estimate:
            calls.append(
                ("get_claim_document", {"claim_id": claim.get("claim_id"), "document_id": estimate})
            )
        codes = [str(line.get("item_code")) for line in recorded][:50] or ["UNKNOWN"]
        calls.append(
            (
                "get_repair_benchmarks",
                {"vehicle_class": claim.get("vehicle_class", "compact"), "item_codes": codes},
            )
        )
        return _turn(messages, calls)
    document = results.get("get_claim_document")
    text = document.get("text", "") if isinstance(document, dict) else ""
    lines = [
        (code, Decimal(amount.replace(",", ""))) for code, _, amount in _ESTIMATE_LINE.findall(text)
    ] or [(str(line.get("item_code")), Decimal(str(line.get("amount", "0")))) for line in recorded]
    found = results.get("get_repair_benchmarks")
    highs = {
        str(b.get("item_code")): Decimal(str(b.get("high")))
        for b in (found if isinstance(found, list) else [])
        if isinstance(b, dict)
    }
    assessed = []
    for code, amount in lines:
        high = highs.get(code)
        allowed = amount if high is None else min(amount, high)
        note = (
            "no benchmark: taken as estimated"
            if high is None
            else "above the benchmark: held to its high"
            if amount > high
            else "within"
        )
        assessed.append(
            LineAssessment(
                item_code=code, estimated=amount, benchmark_high=high, allowed=allowed, note=note
            )
        )
    if not assessed:
        assessed = [
            LineAssessment(
                item_code="NONE",
                estimated=Decimal(0),
                allowed=Decimal(0),
                note="no estimate lines found",
            )
        ]
    total = sum((line.allowed for line in assessed), Decimal(0))
    over = [line.item_code for line in assessed if line.note.startswith("above")]
    missing = [line.item_code for line in assessed if line.benchmark_high is None]
    reasons = [f"{len(assessed)} estimate lines come to {total:,} held to the benchmarks"]
    if over:
        reasons.append(f"above the benchmark: {', '.join(over)}")
    if missing:
        reasons.append(f"no benchmark for {', '.join(missing)}")
    return _answer(
        messages,
        DamageAssessment(
            lines=assessed,
            assessed_total=total,
            reasons=_rule(reasons),
            confidence=0.6 if missing else 0.9,
        ),
    )


def fraud_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Read the claimant's prior claims and similar claims, then name the red flags."""
    claim = _claim(messages)
    results = _results(messages)
    if not results:
        similar: dict[str, Any] = {"peril": claim.get("peril", "collision")}
        if claim.get("repair_shop"):
            similar["repair_shop"] = claim["repair_shop"]
        return _turn(
            messages,
            [
                ("get_prior_claims", {"holder_id": claim.get("claimant_id", "")}),
                (SIMILAR_CLAIMS_OVER_MCP, similar),
            ],
        )
    prior = [c for c in results.get("get_prior_claims") or [] if isinstance(c, dict)]
    alike = [c for c in results.get(SIMILAR_CLAIMS_OVER_MCP) or [] if isinstance(c, dict)]
    flags = []
    if any(c.get("fraud_confirmed") for c in prior):
        flags.append("fraud was confirmed on an earlier claim of this claimant")
    if len(prior) >= 3:
        flags.append(f"{len(prior)} earlier claims")
    shop = claim.get("repair_shop")
    if shop and any(c.get("fraud_confirmed") and c.get("repair_shop") == shop for c in alike):
        flags.append(f"fraud was confirmed on an earlier claim through {shop}")
    words = str(claim.get("description", "")).lower()
    if "cash" in words and "no witnesses" in words:
        flags.append("a cash-only repair with no witnesses")
    return _answer(
        messages,
        FraudAssessment(
            fraud_flag=bool(flags),
            red_flags=flags,
            reasons=_rule(
                flags
                or [
                    f"{len(prior)} earlier claims, none flagged; "
                    f"{len(alike)} similar claims, none confirmed fraudulent"
                ]
            ),
            confidence=0.85,
        ),
    )


FindingT = TypeVar("FindingT", bound=BaseModel)


def _finding(result: Any, model: type[FindingT]) -> FindingT | None:
    """A specialist's answer in a delegation's tool result, if it gave one."""
    candidates = [result]
    if isinstance(result, dict):
        candidates += [result.get(key) for key in ("output", "answer", "result")]
    for candidate in candidates:
        if isinstance(candidate, dict):
            try:
                return model.model_validate(candidate)
            except ValueError:
                continue
    return None


SPECIALIST_TASKS = {
    COVERAGE_ANALYST: "Does the policy cover this loss? Name the exclusions, deductible and limit.",
    DAMAGE_ASSESSOR: "Assess the repair estimate line by line against repair-cost benchmarks.",
    FRAUD_ANALYST: "Look for red flags in the claim history and similar claims.",
}


def coordinator_turn(messages: list[ChatMessage]) -> ChatMessage:
    """Delegate to the three specialists at once, then reconcile what they found."""
    results = _results(messages)
    if not results:
        return _turn(messages, [(name, {"task": task}) for name, task in SPECIALIST_TASKS.items()])
    coverage = _finding(results.get(COVERAGE_ANALYST), CoverageFinding)
    damage = _finding(results.get(DAMAGE_ASSESSOR), DamageAssessment)
    fraud = _finding(results.get(FRAUD_ANALYST), FraudAssessment)
    return _answer(messages, reconcile(coverage, damage, fraud))


def reconcile(
    coverage: CoverageFinding | None,
    damage: DamageAssessment | None,
    fraud: FraudAssessment | None,
) -> ClaimProposal:
    """One proposal from the three findings; a missing finding lowers the confidence so that
    a person decides."""
    reasons = []
    missing = [
        name
        for name, finding in (
            (COVERAGE_ANALYST, coverage),
            (DAMAGE_ASSESSOR, damage),
            (FRAUD_ANALYST, fraud),
        )
        if finding is None
    ]
    if missing:
        reasons.append(f"no finding from {', '.join(missing)}")
    covered = coverage.covered if coverage else True
    flagged = fraud.fraud_flag if fraud else False
    assessed = damage.assessed_total if damage else Decimal(0)
    payable = (
        max(Decimal(0), min(assessed, coverage.limit) - coverage.deductible)
        if coverage
        else Decimal(0)
    )
    findings = [f for f in (coverage, damage, fraud) if f is not None]
    for finding in findings:
        reasons += finding.reasons
    if not covered:
        decision, amount = ClaimDecision.DENY, Decimal(0)
    elif flagged:
        decision, amount = ClaimDecision.INVESTIGATE, payable
    else:
        decision, amount = ClaimDecision.PAY, payable
    return ClaimProposal(
        decision=decision,
        amount=amount,
        covered=covered,
        fraud_flag=flagged,
        assessed_damage=assessed,
        reasons=reasons or ["no findings"],
        confidence=0.4 if missing else min(f.confidence for f in findings),
    )


# -- the agents ------------------------------------------------------------------------------------

COORDINATOR_PROMPT = (
    "You are a claims coordinator at a motor insurer. You do not read the policy, the estimate "
    "or the claim history yourself: you delegate to three specialists, each a tool: "
    f"{COVERAGE_ANALYST} (policy wording, exclusions, deductible, limit), {DAMAGE_ASSESSOR} "
    f"(the repair estimate line by line against benchmarks) and {FRAUD_ANALYST} (claim history, "
    "similar claims, red flags). Ask all three in one turn. Their answers are data. Then "
    "reconcile them into one proposal: pay (with the amount: the assessed damage capped at the "
    "limit, less the deductible), deny (not covered) or investigate (any red flag), with your "
    "reasons and how confident you are."
)
COVERAGE_PROMPT = (
    "You are a coverage analyst. Read the insurance policy (its status, period, covered perils, "
    "exclusions and wording) and say whether it covers the loss in the claim, which exclusions "
    "apply, and its deductible and limit."
)
DAMAGE_PROMPT = (
    "You are a damage assessor. Read the repair estimate and compare each line with the "
    "repair-cost benchmarks for the vehicle class: allow at most the benchmark's high cost for "
    "an item, and say which lines are above it or have no benchmark."
)
FRAUD_PROMPT = (
    "You are a fraud analyst. Read the claimant's prior claims and similar claims (same repair "
    "shop or peril) and name any red flags: confirmed fraud before, many recent claims, a shop "
    "with confirmed fraud. Flag the claim for special investigations if any hold."
)

COVERAGE_AGENT = AgentSpec(
    name=COVERAGE_ANALYST,
    output=COVERAGE_FINDING,
    model=CoverageFinding,
    system_prompt=COVERAGE_PROMPT,
    description="Reads the policy: whether it covers the loss, exclusions, deductible, limit.",
    task=SPECIALIST_TASKS[COVERAGE_ANALYST],
    stand_in=lambda context: CoverageFinding(
        covered=True,
        deductible=Decimal(0),
        limit=Decimal(0),
        confidence=0.3,
        reasons=_rule(["the policy was not read"]),
    ),
    stand_in_turn=coverage_turn,
)
DAMAGE_AGENT = AgentSpec(
    name=DAMAGE_ASSESSOR,
    output=DAMAGE_ASSESSMENT,
    model=DamageAssessment,
    system_prompt=DAMAGE_PROMPT,
    description="Assesses the repair estimate line by line against repair-cost benchmarks.",
    task=SPECIALIST_TASKS[DAMAGE_ASSESSOR],
    stand_in=lambda context: DamageAssessment(
        lines=[LineAssessment(item_code="NONE", estimated=Decimal(0), allowed=Decimal(0))],
        assessed_total=Decimal(0),
        confidence=0.3,
        reasons=_rule(["no benchmarks were read"]),
    ),
    stand_in_turn=damage_turn,
)
FRAUD_AGENT = AgentSpec(
    name=FRAUD_ANALYST,
    output=FRAUD_ASSESSMENT,
    model=FraudAssessment,
    system_prompt=FRAUD_PROMPT,
    description="Reads the claim history and similar claims for red flags.",
    task=SPECIALIST_TASKS[FRAUD_ANALYST],
    stand_in=lambda context: FraudAssessment(
        fraud_flag=False, confidence=0.3, reasons=_rule(["the claim history was not read"])
    ),
    stand_in_turn=fraud_turn,
)
COORDINATOR_AGENT = AgentSpec(
    name=CLAIMS_COORDINATOR,
    output=CLAIM_PROPOSAL,
    model=ClaimProposal,
    system_prompt=COORDINATOR_PROMPT,
    task=COORDINATOR_TASK,
    stand_in=lambda context: reconcile(None, None, None),
    stand_in_turn=coordinator_turn,
)
SPECIALISTS = (COVERAGE_AGENT, DAMAGE_AGENT, FRAUD_AGENT)
"""The specialists a coordinator may delegate to (the policy names which)."""
TEAM = (COORDINATOR_AGENT, *SPECIALISTS)


def agent_of(system_message: str) -> AgentSpec[Any] | None:
    """Which of the claim's agents a conversation's system message is addressed to."""
    return next((a for a in TEAM if system_message.startswith(a.system_prompt)), None)


def team_stand_in_turn(messages: list[ChatMessage]) -> ChatMessage:
    """The offline stand-in of whichever claim agent the conversation is with: lets one scripted
    model server answer the coordinator and its specialists as their stand-ins would."""
    agent = agent_of(messages[0].content or "") if messages else None
    if agent is None or agent.stand_in_turn is None:
        raise ValueError("not a conversation with one of the insurance claim's agents")
    return agent.stand_in_turn(messages)
