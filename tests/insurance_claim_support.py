"""The insurance claim's systems and model, faked by activity name, for the workflow tests and
the stored histories; and the records a claim is made of.

The agent regions run for real (the coordinator's and each specialist's child workflow); only
their model (``llm.chat``) is faked, by default with each agent's own offline stand-in, which
makes real tool calls and real delegation. A test replaces one agent's turns to make it lie.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from temporalio.exceptions import ApplicationError

from activities.agents.insurance_claim import (
    CLAIM_PROPOSAL,
    SPECIALIST_TASKS,
    ClaimProposal,
    coordinator_turn,
)
from activities.claim_history import (
    FraudFinding,
    FraudFindingLookup,
    PastClaim,
    PriorClaimsLookup,
    SimilarClaimsSearch,
)
from activities.claims import (
    Claim,
    ClaimDocument,
    ClaimLookup,
    DocumentLookup,
    DocumentRef,
    EstimateLine,
    Letter,
    LetterRequest,
    Payout,
    PayoutRequest,
    PayoutReversal,
    PayoutsLookup,
)
from activities.policy_admin import (
    ClaimStatusChange,
    Exclusion,
    InsurancePolicy,
    PolicyLookup,
    RegisteredClaim,
)
from activities.repair_costs import Benchmark, BenchmarkLookup
from casework.agents import registry
from casework.agents.conversation import whole_conversation
from casework.agents.messages import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    McpCallRequest,
    McpCallResult,
    McpToolInfo,
    McpToolList,
    McpToolsRequest,
    ToolCall,
)
from casework.agents.tools import FINAL_ANSWER
from casework.testing.fakes import (
    ChatTurn,
    FakeOutbox,
    Ledger,
    fake,
    not_found,
    scripted_usage,
)

ESTIMATE = [
    ("BUMPER-FRONT", "Front bumper, replace and paint", "640.00"),
    ("HEADLAMP-L", "Left headlamp unit", "380.00"),
    ("LABOUR-BODY", "Body shop labour, 4 h", "360.00"),
]
BENCHMARKS = {"BUMPER-FRONT": "700.00", "HEADLAMP-L": "350.00", "LABOUR-BODY": "400.00"}
"""The high benchmark of each item: the headlamp is estimated 30.00 above its benchmark."""


def insurance_policy(number: str, **fields: object) -> InsurancePolicy:
    values: dict[str, object] = {
        "policy_number": number,
        "holder_id": f"H-{number}",
        "holder_name": "Sam Claimant",
        "product": "motor",
        "status": "active",
        "inception_date": date(2025, 1, 1),
        "expiry_date": date(2030, 12, 31),
        "currency": "EUR",
        "limit_amount": Decimal("25000.00"),
        "deductible": Decimal("250.00"),
        "covered_perils": ["collision", "theft", "fire", "storm", "vandalism"],
        "exclusions": [Exclusion(peril="racing", wording="racing or speed trials")],
        "wording": "Motor policy. We pay for damage to your car caused by a covered peril.",
    }
    return InsurancePolicy.model_validate(values | fields)


def estimate_text(lines: list[tuple[str, str, str]]) -> str:
    return "Repair estimate, Main Street Garage\n" + "\n".join(
        f"{code} | {description} | {amount}" for code, description, amount in lines
    )


def claim_record(
    claim_id: str,
    policy: InsurancePolicy,
    *,
    peril: str = "collision",
    lines: list[tuple[str, str, str]] = ESTIMATE,
    description: str = "Rear-ended at a junction; front bumper and headlamp damaged.",
    loss_date: date = date(2026, 11, 20),
) -> tuple[Claim, dict[str, ClaimDocument]]:
    documents = {
        "DOC-1": ClaimDocument(
            document_id="DOC-1",
            claim_id=claim_id,
            kind="claim_form",
            title="Claim form",
            text=f"Claim form. Peril: {peril}. {description}",
        ),
        "DOC-2": ClaimDocument(
            document_id="DOC-2",
            claim_id=claim_id,
            kind="repair_estimate",
            title="Repair estimate",
            text=estimate_text(lines),
        ),
        "DOC-3": ClaimDocument(
            document_id="DOC-3",
            claim_id=claim_id,
            kind="police_report",
            title="Police report",
            text="Collision reported at 08:10; the other driver admitted fault.",
        ),
    }
    claim = Claim(
        claim_id=claim_id,
        policy_number=policy.policy_number,
        claimant_id=policy.holder_id,
        claimant_name=policy.holder_name,
        claimant_email="sam@example.com",
        loss_date=loss_date,
        peril=peril,
        description=description,
        vehicle_class="compact",
        repair_shop="Main Street Garage",
        currency="EUR",
        estimate_lines=[
            EstimateLine(item_code=code, description=text, amount=Decimal(amount))
            for code, text, amount in lines
        ],
        estimate_total=sum((Decimal(amount) for _, _, amount in lines), Decimal(0)),
        reported_at=datetime(2026, 11, 21, 9, 0),
        documents=[
            DocumentRef(document_id=d.document_id, kind=d.kind, title=d.title)
            for d in documents.values()
        ],
    )
    return claim, documents


@dataclass(kw_only=True)
class FakeClaimSystems(FakeOutbox):
    """Policy administration, claims (documents, letters, payouts), claim history and the
    repair-cost benchmarks, with the agents' model."""

    claim: Claim
    documents: dict[str, ClaimDocument]
    policy: InsurancePolicy
    prior: list[PastClaim] = field(default_factory=list)
    findings: dict[str, FraudFinding] = field(default_factory=dict)
    benchmarks: dict[str, str] = field(default_factory=lambda: dict(BENCHMARKS))
    turns: dict[str, ChatTurn] = field(default_factory=dict)
    """Model turns by agent output; an agent not named answers with its offline stand-in."""
    closing_fails: bool = False
    payouts: Ledger[Payout] = field(default_factory=Ledger)
    register: list[ClaimStatusChange] = field(default_factory=list)
    letters: list[LetterRequest] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)

    @fake("llm.chat")
    async def chat(self, request: ChatRequest) -> ChatResult:
        turn = self.turns.get(request.output) or registry.get(request.output).stand_in_turn
        assert turn is not None, f"no turn for {request.output}"
        # A model call carries only what is new; the rest is in the region's history.
        conversation, _ = await whole_conversation(request)
        return ChatResult(message=turn(conversation), usage=scripted_usage(100, 20))

    @fake("claims.get_claim")
    async def get_claim(self, lookup: ClaimLookup) -> Claim:
        if lookup.claim_id != self.claim.claim_id:
            raise not_found(f"claim {lookup.claim_id}")
        return self.claim

    @fake("claims.get_document")
    async def get_document(self, lookup: DocumentLookup) -> ClaimDocument:
        document = self.documents.get(lookup.document_id)
        if document is None or lookup.claim_id != self.claim.claim_id:
            raise not_found(f"document {lookup.document_id}")
        return document

    @fake("claims.write_to_claimant")
    async def write_to_claimant(self, request: LetterRequest) -> Letter:
        self.letters.append(request)
        return Letter(
            letter_id=f"LTR-{len(self.letters)}",
            claim_id=request.claim_id,
            to=self.claim.claimant_email,
            subject=request.subject,
            body=request.body,
        )

    @fake("claims.pay")
    async def pay(self, request: PayoutRequest) -> Payout:
        return self.payouts.once(
            request.idempotency_key,
            lambda n: Payout(
                payout_id=f"CPO-{n}",
                claim_id=request.claim_id,
                payee_id=request.payee_id,
                amount=request.amount,
                currency=request.currency,
                status="paid",
                idempotency_key=request.idempotency_key,
            ),
        )

    @fake("claims.list_payouts")
    async def list_payouts(self, lookup: PayoutsLookup) -> list[Payout]:
        return [payout for payout in self.payouts.values() if payout.claim_id == lookup.claim_id]

    @fake("claims.reverse_payout")
    async def reverse_payout(self, reversal: PayoutReversal) -> Payout:
        self.reversed.append(reversal.payout_id)
        (payout,) = (p for p in self.payouts.values() if p.payout_id == reversal.payout_id)
        return payout.model_copy(update={"status": "reversed"})

    @fake("policy_admin.get_policy")
    async def get_policy(self, lookup: PolicyLookup) -> InsurancePolicy:
        if lookup.policy_number != self.policy.policy_number:
            raise not_found(f"policy {lookup.policy_number}")
        return self.policy

    @fake("policy_admin.set_claim_status")
    async def set_claim_status(self, change: ClaimStatusChange) -> RegisteredClaim:
        if self.closing_fails and change.status == "paid":
            raise ApplicationError(
                "the policy is locked for renewal", type="RequestRejected", non_retryable=True
            )
        self.register.append(change)
        return RegisteredClaim(
            policy_number=change.policy_number,
            claim_id=change.claim_id,
            status=change.status,
            amount_paid=change.amount_paid,
            note=change.note,
            updated_at=datetime(2026, 12, 1),
        )

    @fake("repair_costs.get_benchmarks")
    async def get_benchmarks(self, lookup: BenchmarkLookup) -> list[Benchmark]:
        return [
            Benchmark(
                item_code=code,
                vehicle_class=lookup.vehicle_class,
                description=code,
                currency="EUR",
                low=Decimal(high) / 2,
                typical=Decimal(high) * Decimal("0.8"),
                high=Decimal(high),
            )
            for code, high in self.benchmarks.items()
            if code in lookup.item_codes
        ]

    @fake("claim_history.prior_claims")
    async def prior_claims(self, lookup: PriorClaimsLookup) -> list[PastClaim]:
        return [past for past in self.prior if past.holder_id == lookup.holder_id]

    @fake("claim_history.similar_claims")
    async def similar_claims(self, search: SimilarClaimsSearch) -> list[PastClaim]:
        return [past for past in self.prior if past.peril == search.peril][: search.limit]

    @fake("mcp.list_tools")
    async def list_mcp_tools(self, request: McpToolsRequest) -> McpToolList:
        """The sandbox's MCP server, as far as the claim uses it: its similar-claims lookup."""
        return McpToolList(
            server=request.server,
            tools=[
                McpToolInfo(
                    name="find_similar_claims",
                    description="Past claims like this one.",
                    input_schema=SimilarClaimsSearch.model_json_schema(),
                    read_only_hint=True,
                )
            ],
        )

    @fake("mcp.call_tool")
    async def call_mcp_tool(self, request: McpCallRequest) -> McpCallResult:
        if request.tool != "find_similar_claims":
            return McpCallResult(is_error=True, content=f"no tool {request.tool!r}")
        found = await self.similar_claims(SimilarClaimsSearch.model_validate(request.arguments))
        return McpCallResult(
            is_error=False, content=[past.model_dump(mode="json") for past in found]
        )

    @fake("claim_history.get_fraud_finding")
    async def get_fraud_finding(self, lookup: FraudFindingLookup) -> FraudFinding:
        finding = self.findings.get(lookup.finding_id)
        if finding is None:
            raise not_found(f"fraud finding {lookup.finding_id}")
        return finding

    def statuses(self) -> list[str]:
        """The claim's statuses on the policy's register, in order."""
        return [change.status for change in self.register]


def past_claim(policy: InsurancePolicy, number: int, *, days_before: int, **fields: object):
    values: dict[str, object] = {
        "claim_id": f"OLD-{policy.policy_number}-{number}",
        "policy_number": policy.policy_number,
        "holder_id": policy.holder_id,
        "loss_date": date(2026, 11, 20) - timedelta(days=days_before),
        "peril": "collision",
        "repair_shop": "Main Street Garage",
        "amount_paid": Decimal("900.00"),
        "outcome": "paid",
        "description": "Parking damage",
        "fraud_confirmed": False,
    }
    return PastClaim.model_validate(values | fields)


def delegate_then_answer(**answer: object) -> ChatTurn:
    """A coordinator that really delegates to its three specialists, then answers ``answer``
    whatever they found (a model that lies, when the answer does not hold)."""

    def turn(messages: list[ChatMessage]) -> ChatMessage:
        if not any(m.role == "assistant" for m in messages):
            return coordinator_turn(messages)
        proposal = ClaimProposal.model_validate(
            {
                "decision": "pay",
                "covered": True,
                "fraud_flag": False,
                "reasons": ["the scripted coordinator says so"],
                "confidence": 0.97,
            }
            | answer
        )
        return ChatMessage(
            role="assistant",
            tool_calls=[
                ToolCall(id="final", name=FINAL_ANSWER, arguments=proposal.model_dump_json())
            ],
        )

    return turn


def coordinator_lies(**answer: object) -> dict[str, ChatTurn]:
    return {CLAIM_PROPOSAL: delegate_then_answer(**answer)}


def asked_specialists(messages: list[ChatMessage]) -> list[str]:
    """The specialists the coordinator asked, from its first turn's tool calls."""
    first = next(m for m in messages if m.role == "assistant")
    return [call.name for call in first.tool_calls if call.name in SPECIALIST_TASKS]


def arguments_of(call: ToolCall) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(call.arguments)
    return loaded
