"""What the reliability suite needs to know about a process: a *case driver*.

A driver seeds one case's records in the sandbox, says how to start it, what a well-behaved
model answers it, where in the sandbox each kind of fault hits it, plays people's part when it
waits, and reads the sandbox's ledger rows that prove its writes happened at most once (and that
what had to be undone was). The suite does the rest: planning faults, killing and restarting,
checking and counting. ``docs/reliability.md`` walks through adding one.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel
from temporalio.client import Client

from casework.audit import AuditEvent, AuditKind
from casework.case import CaseState, CaseStatus
from casework.case.tasks import DecisionReceipt, HumanTask, TaskAnswer, TaskDecision, TaskKind
from casework.catalogue import discover
from casework.governance.loader import load_policy
from casework.governance.models import Directory
from casework.testing.scripted_llm import ScriptedReply
from reliability.model import FALLBACK_WIRE_NAME, ModelFault

Signer = Callable[[str, TaskDecision], TaskDecision]
"""Signs a decision for a case as its approver (``reliability.stack.Stack.sign``)."""


class SandboxFault(StrEnum):
    HTTP_5XX = "sandbox 5xx"
    TIMEOUT = "sandbox timeout"
    SLOW = "sandbox slow response"
    RESPONSE_LOST = "sandbox processed, response lost"
    REJECTED_AFTER_PAYMENT = "sandbox 4xx after payment"
    OUTCOME_UNKNOWN = "sandbox payment made, every answer lost"


# The worker's HTTP client gives up after 20 s; a timeout fault holds the call longer. A slow
# response is held long enough to overlap other cases' steps, not to fail.
TIMEOUT_DELAY_SECONDS = 25
SLOW_DELAY_SECONDS = 2


def delayed(method: str, path: str, seconds: float, **aim: Any) -> dict[str, Any]:
    """A ``/_faults`` spec holding ``method path`` for ``seconds`` before it is answered as
    usual (``aim``: more of the spec, such as the ``idempotency_key`` it is aimed at)."""
    return {"method": method, "path": path, **aim, "status": 0, "delay_seconds": seconds}


class People(StrEnum):
    """What people do when the case asks them."""

    APPROVE = "approve"
    REJECT = "reject"
    LEAVE = "leave waiting"


WAITING_STATUSES = frozenset(
    {CaseStatus.AWAITING_APPROVAL, CaseStatus.AWAITING_INPUT, CaseStatus.AWAITING_EXTERNAL}
)


@dataclass(frozen=True)
class Scenario:
    name: str
    people: People
    """What people do whenever this case waits for them (a failed agent sends any case to a
    person, so even a straight-through scenario says what its approver would do)."""


@dataclass
class Ledger:
    """What a case did to the systems of record, read back from the sandbox."""

    writes: Counter[str] = field(default_factory=Counter)
    """Each business write (a payment, a status change, a ticket assignment) and how many times
    the sandbox recorded it. More than once is a duplicate."""
    reversals: dict[str, bool] = field(default_factory=dict)
    """Each write that can be undone (a payment, a refund) and whether it was."""

    @property
    def duplicates(self) -> list[str]:
        return [f"{write} x{times}" for write, times in self.writes.items() if times > 1]


@dataclass
class PlannedCase:
    driver: CaseDriver
    key: str
    """The business key in the sandbox: an invoice ID, a ticket ID."""
    case_id: str
    scenario: Scenario
    model_fault: ModelFault | None = None
    sandbox_fault: SandboxFault | None = None

    @property
    def process(self) -> str:
        return self.driver.process


@dataclass
class Outcome:
    """How a case ended up, read from Temporal after the run."""

    execution: str
    """The workflow execution's status: RUNNING, COMPLETED, FAILED ..."""
    state: CaseState | None
    audit: list[AuditEvent]
    failure: str | None = None
    resting: frozenset[str] = frozenset()
    """The driver's ``resting_statuses``: a running case in one has done all it will do."""

    @property
    def status(self) -> str:
        return self.state.status if self.state else "unknown"

    @property
    def waiting(self) -> bool:
        if self.execution != "RUNNING" or self.state is None:
            return False
        return self.state.status in self.resting or (
            self.state.status in WAITING_STATUSES
            and bool(self.state.open_tasks or self.state.waiting_on)
        )

    @property
    def final(self) -> bool:
        return self.execution != "RUNNING"


@functools.cache
def directory() -> Directory:
    return Directory.model_validate(load_policy("directory").content)


def decider_for(task: HumanTask, *, not_user: str) -> str | None:
    """Someone who may decide ``task``: an eligible role, not the submitter, a limit that covers
    the amount; the lowest eligible tier first, as in an office."""
    people = directory()
    for role in task.eligible_roles:
        for name, user in sorted(people.users.items()):
            if user.role != role or name == not_user:
                continue
            limit = people.roles[role].approval_limit if role in people.roles else None
            if task.kind is TaskKind.QUESTION or limit is None or task.amount <= limit:
                return name
    return None


class CaseDriver(ABC):
    """One process's entry in the suite. Subclass, fill in, and name an instance ``DRIVER`` in
    its module under ``reliability/drivers/``: the suite finds it there."""

    process: ClassVar[str]
    """The process's name in ``casework.processes.PROCESSES``."""
    scenarios: ClassVar[tuple[Scenario, ...]]
    """Cycled through as cases are planned; one at least should leave a case waiting."""
    model_faults: ClassVar[frozenset[ModelFault]] = frozenset(ModelFault)
    """The model faults this process's agents can meet (empty if it calls no model)."""
    sandbox_faults: ClassVar[frozenset[SandboxFault]]
    submitter: ClassVar[str]
    """Who starts the suite's cases; never picked to decide them (segregation of duties)."""
    resting_statuses: ClassVar[frozenset[str]] = frozenset()
    """Statuses in which a running case has done all it will do until something outside it
    happens that no scenario makes happen (a disbursed loan under its fraud watch, for days):
    such a case is settled, and counted as waiting."""
    outside_statuses: ClassVar[frozenset[str]] = frozenset()
    """Statuses in which the case waits for a system the driver plays (a credit bureau's
    report), not for people: ``answer_outside`` answers it, whatever the scenario, and no
    scenario leaves a case there."""
    waiting_scenario: ClassVar[Scenario]
    """A scenario that leaves the case waiting for a decision (the bad-input matrix decides on
    it, wrongly)."""
    finished_scenario: ClassVar[Scenario]
    """A scenario that finishes without anyone deciding (for decisions that come too late)."""

    # -- the case ---------------------------------------------------------------------------

    @abstractmethod
    def new_key(self, tag: str, number: int) -> str:
        """A business key no other case of this run (or an earlier run) uses."""

    @abstractmethod
    def case_input(self, key: str) -> BaseModel:
        """The process's input model for the case."""

    def case_id(self, key: str) -> str:
        return discover().process(self.process).case_id(self.case_input(key))

    @property
    def workflow_type(self) -> str:
        return discover().process(self.process).workflow_type

    @abstractmethod
    async def seed(self, http: httpx.AsyncClient, key: str, scenario: Scenario) -> None:
        """Create the case's records in the sandbox, over its HTTP API."""

    def unknown_records(self, tag: str) -> list[tuple[str, dict[str, Any], str]]:
        """Inputs that are well-formed but name what does not exist (an unknown invoice, an
        unknown submitter): (what, input, what the failure must say)."""
        return []

    # -- the model (every process has an agent, so every driver answers its calls) ----------

    @abstractmethod
    def case_of(self, request: dict[str, Any]) -> str | None:
        """The case ID a chat request to the model belongs to; None if not this process's."""

    @abstractmethod
    def model_reply(self, case: PlannedCase, turn: int, request: dict[str, Any]) -> ScriptedReply:
        """What a well-behaved model answers the case's ``turn``-th model call."""

    # -- faults -----------------------------------------------------------------------------

    @abstractmethod
    def fault_specs(self, fault: SandboxFault, key: str) -> list[dict[str, Any]]:
        """``/_faults`` specs that give this case ``fault``: aim each at the case, by a path
        naming it or by ``idempotency_key`` (``"<case id>:payment"``), so it cannot hit another
        case and change that case's outcome. (A spec aimed at neither is shared: the suite
        merges such specs and counts them, but cannot tell which case they hit.)"""

    def held_after_decision(self, key: str) -> list[dict[str, Any]]:
        """``/_faults`` specs (method and path; the suite sets the delay) matching the first
        write a person's decision sets off, such as the payment: the suite holds it in flight
        while it kills the worker and restarts the server."""
        return []

    def compatible(self, scenario: Scenario, fault: SandboxFault) -> bool:
        """Whether ``fault`` can fire in ``scenario`` (a fault on a write the case never makes
        would be counted as planned, never injected)."""
        return True

    async def answer_outside(
        self, client: Client, http: httpx.AsyncClient, case: PlannedCase
    ) -> bool:
        """Play the systems outside the case while it waits in one of ``outside_statuses``: answer
        what it asked of them and tell it, as they would. Returns whether anything was sent (the
        suite then leaves the case to them); called again on the next pass if not."""
        return False

    # -- people -----------------------------------------------------------------------------

    async def respond(
        self, client: Client, case: PlannedCase, state: CaseState, sign: Signer
    ) -> bool:
        """People's part when the case waits: decide (or answer) as the scenario says, each
        decision signed by its approver with ``sign``.

        Returns whether anything was sent. Sent as the ``decide``/``answer`` update, as the CLI
        does, so a refusal comes back as an error instead of being recorded and ignored.
        """
        if case.scenario.people is People.LEAVE:
            return False
        handle = client.get_workflow_handle(case.case_id)
        for task in state.open_tasks:
            person = decider_for(task, not_user=self.submitter)
            if person is None:
                raise RuntimeError(f"nobody in the directory may decide {task.task_id}")
            if task.kind is TaskKind.QUESTION:
                answer = TaskAnswer(responder=person, text="Scripted answer.", task_id=task.task_id)
                await handle.execute_update("answer", answer, result_type=DecisionReceipt)
                continue
            approve = case.scenario.people is People.APPROVE
            decision = TaskDecision(
                approver=person,
                action="approve" if approve else "reject",
                comment="approved by the reliability suite" if approve else "rejected: test",
                task_id=task.task_id,
            )
            signed = sign(case.case_id, decision)
            await handle.execute_update("decide", signed, result_type=DecisionReceipt)
        return bool(state.open_tasks)

    # -- checking ---------------------------------------------------------------------------

    @abstractmethod
    async def ledger(self, http: httpx.AsyncClient, key: str) -> Ledger:
        """The sandbox's record of what the case wrote."""

    @abstractmethod
    def expected_statuses(self, case: PlannedCase) -> frozenset[str]:
        """The case statuses this case may end in (or wait in), given its scenario and faults."""

    def problems(self, case: PlannedCase, outcome: Outcome, ledger: Ledger) -> list[str]:
        """Process-specific invariants beyond the suite's own: e.g. a compensated case's payment
        was reversed, a paid case paid exactly once, a fallback model took over."""
        return []


LOST_ATTEMPT = "activity StartToClose timeout"
"""How an agent's failure reads when its last attempt was lost: the scripted models answer at
once, so only a worker killed mid-call leaves an attempt to time out."""


def fallback_problems(outcome: Outcome) -> list[str]:
    """With the primary model down, a proposal came from the fallback; or the fallback's
    attempt (the agent's last) was lost with a killed worker, timed out, and the case recorded
    that the agent failed, going on without it as it does whenever an agent cannot answer."""
    models = [
        str(event.data.get("usage", {}).get("model", ""))
        for event in outcome.audit
        if event.kind is AuditKind.AGENT_PROPOSAL
    ]
    if any(FALLBACK_WIRE_NAME in model for model in models):
        return []
    if any(
        event.kind is AuditKind.AGENT_FAILED and LOST_ATTEMPT in event.summary
        for event in outcome.audit
    ):
        return []
    return [f"the primary model was down, but no proposal from the fallback: {models}"]


def agent_fault_problems(case: PlannedCase, outcome: Outcome) -> list[str]:
    """The model faults' own invariants for a process that consults its agent through
    ``CaseWorkflow.consult``: with the primary model down, a proposal came from the fallback
    (``fallback_problems``); with the provider down, the agent's failure is recorded and a
    person was asked instead."""
    kinds = {event.kind for event in outcome.audit}
    if case.model_fault is ModelFault.PRIMARY_DOWN:
        return fallback_problems(outcome)
    if case.model_fault is ModelFault.PROVIDER_DOWN and not (
        AuditKind.AGENT_FAILED in kinds and AuditKind.TASK_OPENED in kinds
    ):
        return ["the model was down, but the case did not go to a person saying so"]
    return []
