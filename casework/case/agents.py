"""Agents in a case: asking one for a proposal, and recording what it proposed and how its
values checked out. An agent only advises: when it gives no usable answer the case carries on
without it, to a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from casework.agents.checks import ProposalChecks
    from casework.agents.messages import AgentRequest, AgentResult, AgentUsage
    from casework.agents.spec import AgentSpec, AnswerT, Proposal
    from casework.audit import (
        CONFIDENCE,
        MODEL_USAGE,
        RECOMMENDED_ACTION,
        AuditKind,
        ModelUsage,
    )
    from casework.governance.models import AgentSettings


from casework.case.base import CaseBase, failure_message
from casework.case.patches import PROPOSALS_CHECKED

AGENT_TIMEOUT = timedelta(minutes=2)

# A few attempts only: an agent that keeps answering badly is left out and a person or the
# policy goes on without it, rather than retried forever. Auth and bad-request errors are
# non-retryable and skip straight to that.
AGENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)


def usage_of_call(agent: str, usage: AgentUsage) -> ModelUsage:
    """The spend of one model call, as the audit trail's ``model_usage`` convention counts it."""
    return ModelUsage(
        agent=agent,
        model_calls=1,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd or 0.0,
        models=[usage.model],
    )


@dataclass(frozen=True)
class Consultation(Generic[AnswerT]):
    """What consulting an agent came to: its answer and how its values checked out, or why it
    gave none (the case then carries on without it, to a person)."""

    answer: AnswerT | None
    why_none: str = ""
    checks: ProposalChecks | None = None
    """None when the agent gave no answer, when no check was asked for, or in a case that
    decided before proposals were checked (``PROPOSALS_CHECKED``)."""


class AgentSteps(CaseBase):
    """Consulting agents and recording their proposals."""

    async def consult(
        self,
        agent: AgentSpec[AnswerT],
        context: dict[str, Any],
        *,
        settings: AgentSettings,
        task: str | None = None,
        check: Callable[[AnswerT], ProposalChecks] | None = None,
        describe: Callable[[AnswerT], str] | None = None,
        failure: str | None = None,
        activity_summary: str | None = None,
        **data: Any,
    ) -> Consultation[AnswerT]:
        """Ask ``agent`` for a proposal on ``context`` (untrusted case data), record what it
        proposed (``describe``, default its answer's own ``headline()``), and check its values
        (``check``) so the rules use only what holds. ``data`` goes with every entry recorded."""
        result, why_none = await self.propose(
            agent.request(context, settings, task),
            failure=failure or f"{agent.name} gave no usable proposal",
            summary=activity_summary,
            **data,
        )
        if result is None:
            return Consultation(answer=None, why_none=why_none)
        answer = agent.model.model_validate(result.output)
        proposal: Proposal = answer  # type: ignore[assignment]
        said = describe(answer) if describe else proposal.headline()
        self.record_proposal(
            agent.name,
            f"{agent.name} on {result.usage.label} {said}",
            recommended_action=proposal.recommended_action(),
            confidence=proposal.confidence,
            usage=result.usage,
            **data,
            proposal=answer,
        )
        checks = self.check_proposal(check(answer)) if check else None
        return Consultation(answer=answer, checks=checks)

    async def propose(
        self,
        request: AgentRequest,
        *,
        failure: str,
        summary: str | None = None,
        **failure_data: Any,
    ) -> tuple[AgentResult | None, str]:
        """Ask an agent for a proposal (``llm.propose``), with the timeout and retries every
        agent gets. An agent only advises: when it gives none, ``"<failure>: <why>"`` is
        recorded (with ``failure_data``) and ``(None, why)`` returned, and the case carries on."""
        try:
            result: AgentResult = await workflow.execute_activity(
                "llm.propose",
                request,
                result_type=AgentResult,
                start_to_close_timeout=AGENT_TIMEOUT,
                retry_policy=AGENT_RETRY,
                summary=summary,
            )
        except ActivityError as error:
            reason = failure_message(error)
            self.record(AuditKind.AGENT_FAILED, f"{failure}: {reason}", **failure_data)
            return None, reason
        return result, ""

    def record_proposal(
        self,
        agent: str,
        summary: str,
        *,
        recommended_action: str | None,
        confidence: float | None,
        usage: AgentUsage | None = None,
        **data: Any,
    ) -> None:
        """Record what an agent proposed, in the terms every process's KPIs share.

        ``recommended_action`` is what the proposal means for a human task that may follow:
        ``approve`` when approving the task does what the agent proposes, ``reject`` when the
        agent advises against what approval would do (an invoice agent recommending reject or
        hold), None when neither reading fits. A person deciding otherwise overrides the agent.
        ``usage`` is the model call behind this proposal (from :meth:`propose`): its spend is
        recorded with it and its model becomes the case's ``agent_model`` fact. A proposal whose
        calls are recorded elsewhere (an agent region's) passes none.
        """
        if recommended_action not in (None, "approve", "reject"):
            raise ValueError(
                f"recommended_action must be approve, reject or None, not {recommended_action!r}"
            )
        spend = {} if usage is None else {MODEL_USAGE: usage_of_call(agent, usage)}
        self.record(
            AuditKind.AGENT_PROPOSAL,
            summary,
            agent=agent,
            **{RECOMMENDED_ACTION: recommended_action, CONFIDENCE: confidence},
            **spend,
            **data,
            **({} if usage is None else {"usage": usage}),
        )
        if usage is not None:
            self._facts["agent_model"] = usage.label

    def check_proposal(self, checks: ProposalChecks) -> ProposalChecks | None:
        """Record how each value of an agent's proposal was checked, and hand the checks to the
        rules, which use only what is verified.

        None in a case that decided before proposals were checked, while it replays that
        decision: its rules then decide as they did (``PROPOSALS_CHECKED``). A case that reaches
        this point afresh always gets its checks.
        """
        if not self.patched(PROPOSALS_CHECKED):
            return None
        self.record(
            AuditKind.PROPOSAL_CHECKED,
            checks.summary(),
            agent=checks.agent,
            unverified=len(checks.unverified),
            checks=checks.checks,
        )
        return checks

    def record_agent_region(
        self, summary: str, *, outcome: str, model_usage: ModelUsage, **data: Any
    ) -> None:
        """Record that an agent region (a child workflow) ended: its outcome, and the spend of
        all its model calls, which the case pays for."""
        self.record(
            AuditKind.AGENT_REGION_ENDED, summary, outcome=outcome, model_usage=model_usage, **data
        )
