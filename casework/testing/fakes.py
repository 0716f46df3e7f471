"""Systems of record faked in memory under the real activity names, for workflow unit tests and
for recording replay histories.

A fake is a method marked ``@fake("<activity name>")`` on a ``Fakes`` class; its type hints are
the activity's input and output models, as the real activity's are, so the worker converts
payloads exactly as it does for the real one. ``activities()`` hands the worker every fake of
the object (and the real ``policies.load``: policies are files, not a system to fake, unless the
class fakes it too); every call's input is recorded (``calls``), and any fake can be scripted to
answer or fail in its place (``script``).

    @dataclass
    class FakeErp(FakeOutbox):
        invoice: Invoice

        @fake("erp.get_invoice")
        async def get_invoice(self, lookup: InvoiceLookup) -> Invoice:
            if lookup.invoice_id != self.invoice.invoice_id:
                raise not_found(f"invoice {lookup.invoice_id}")
            return self.invoice

    erp = FakeErp(invoice)
    erp.script("erp.get_invoice", ApplicationError("ERP down", type="SystemUnavailable"), invoice)
    async with Worker(client, task_queue=queue, workflows=[...], activities=erp.activities()):
        ...
    assert len(erp.calls("erp.get_invoice")) == 2

The framework's own activities have fakes here to mix in: the notifications outbox
(``FakeOutbox``), an agent's proposal (``FakeAgent``, ``llm.propose``) and an agent region's
model turns (``FakeChat``, ``llm.chat``).
"""

from __future__ import annotations

import functools
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from casework.agents.conversation import whole_conversation
from casework.agents.messages import (
    AgentRequest,
    AgentResult,
    AgentUsage,
    ChatMessage,
    ChatRequest,
    ChatResult,
)
from casework.catalogue import discover
from casework.governance import activity as policy
from casework.plugin import CaseworkPlugin
from casework.systems.notifications import Notification, NotificationRequest

_FAKE_OF = "__casework_fake_of__"
_POLICY_LOAD = "policies.load"

A = TypeVar("A", bound=Callable[..., Awaitable[Any]])
R = TypeVar("R")


def fake(name: str) -> Callable[[A], A]:
    """Mark a method of a ``Fakes`` class as the fake of the activity ``name``."""

    def mark(method: A) -> A:
        setattr(method, _FAKE_OF, name)
        return method

    return mark


def not_found(what: str) -> ApplicationError:
    """What a system of record answers for a record it does not have: not worth a retry."""
    return ApplicationError(f"{what} not found", type="RecordNotFound", non_retryable=True)


class Script:
    """Answers given in turn, the last one to every call after it; an exception is raised."""

    def __init__(self, *answers: Any) -> None:
        if not answers:
            raise ValueError("a script needs at least one answer")
        self._answers = list(answers)
        self._given = 0

    def next(self) -> Any:
        answer = self._answers[min(self._given, len(self._answers) - 1)]
        self._given += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer


@dataclass(kw_only=True)
class Fakes:
    """Activities faked by name: subclass it (as a dataclass) and mark its fakes with ``fake``."""

    _calls: defaultdict[str, list[Any]] = field(
        default_factory=lambda: defaultdict(list), init=False, repr=False, compare=False
    )
    _scripts: dict[str, Script] = field(default_factory=dict, init=False, repr=False, compare=False)

    def activities(self) -> list[Callable[..., Any]]:
        """Every fake of this object under its activity name, for a worker to register."""
        faked: dict[str, str] = {}
        for attribute in dir(type(self)):
            name = getattr(getattr(type(self), attribute), _FAKE_OF, None)
            if name is None:
                continue
            if name in faked:
                raise TypeError(
                    f"{type(self).__name__} fakes {name} twice: {faked[name]} and {attribute}"
                )
            faked[name] = attribute
        found = [self._activity(name, getattr(self, method)) for name, method in faked.items()]
        return found if _POLICY_LOAD in faked else [policy.load, *found]

    def calls(self, name: str) -> list[Any]:
        """The input of every call of activity ``name`` so far (each retry too), in order."""
        return self._calls[name]

    def script(self, name: str, *answers: Any) -> None:
        """From now on activity ``name`` answers ``answers`` in turn instead of its fake, the
        last one every later call; an exception among them is raised (an ``ApplicationError``
        reaches the workflow as the system's error)."""
        self._scripts[name] = Script(*answers)

    def _activity(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        # Wrapping keeps the method's signature and type hints: the worker reads the models
        # payloads convert to and from there.
        @functools.wraps(method)
        async def run(*args: Any) -> Any:
            self._calls[name].append(args[0] if len(args) == 1 else args)
            script = self._scripts.get(name)
            return script.next() if script is not None else await method(*args)

        return activity.defn(name=name)(run)


@asynccontextmanager
async def fake_worker(
    client: Client, fakes: Fakes, *workflows: type, task_queue: str | None = None
) -> AsyncIterator[str]:
    """A worker running ``workflows`` on ``fakes``, on a task queue of its own unless told;
    yields the queue. Its sandbox is the production worker's (``CaseworkPlugin``)."""
    queue = task_queue or f"fakes-{uuid.uuid4().hex}"
    plugin = CaseworkPlugin(
        passthrough=discover().passthrough_packages,
        workflows=list(workflows),
        activities=fakes.activities(),
    )
    async with Worker(client, task_queue=queue, plugins=[plugin]):
        yield queue


class Ledger(dict[str, R]):
    """Records a system made, by the idempotency key of the write that made each: a retried
    write finds its record instead of making another."""

    def once(self, idempotency_key: str, make: Callable[[int], R]) -> R:
        """The record the write ``idempotency_key`` made; made now if there is none (``make``
        gets its number in the ledger, from 1)."""
        if idempotency_key not in self:
            self[idempotency_key] = make(len(self) + 1)
        return self[idempotency_key]


def scripted_usage(prompt_tokens: int, completion_tokens: int) -> AgentUsage:
    """What a model call reports having cost, as a scripted (not stand-in) model's."""
    return AgentUsage(
        model="scripted",
        stand_in=False,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=0.001,
        attempt=activity.info().attempt,
    )


@dataclass(kw_only=True)
class FakeOutbox(Fakes):
    """``notifications.send``: what was sent, in order; some mailboxes refuse for good."""

    notifications: list[NotificationRequest] = field(default_factory=list)
    failing_recipients: set[str] = field(default_factory=set)
    """Addresses the outbox refuses for good."""

    @fake("notifications.send")
    async def send(self, request: NotificationRequest) -> Notification:
        if request.to in self.failing_recipients:
            raise ApplicationError(
                f"mailbox {request.to} does not exist", type="RequestRejected", non_retryable=True
            )
        self.notifications.append(request)
        return Notification(
            notification_id=f"N-{len(self.notifications)}", to=request.to, subject=request.subject
        )

    def sent_to(self, to: str) -> list[str]:
        """Subjects of the notifications sent to ``to``, in order."""
        return [n.subject for n in self.notifications if n.to == to]


@dataclass(kw_only=True)
class FakeAgent(Fakes, ABC):
    """``llm.propose``: an agent's answer to each request is ``agent_answer_to(request)`` (an
    exception is raised), reported with the usage a model call reports. A subclass says what
    its process's agent answers."""

    proposal_tokens: ClassVar[tuple[int, int]] = (120, 40)
    """Prompt and completion tokens each answer reports."""

    @property
    def agent_requests(self) -> list[AgentRequest]:
        """Every request the agent was asked, retries too."""
        return self.calls("llm.propose")

    @abstractmethod
    def agent_answer_to(self, request: AgentRequest) -> BaseModel | BaseException:
        """The agent's answer to ``request``, or the error its call ends with."""

    @fake("llm.propose")
    async def propose(self, request: AgentRequest) -> AgentResult:
        answer = self.agent_answer_to(request)
        if isinstance(answer, BaseException):
            raise answer
        usage = scripted_usage(*self.proposal_tokens)
        return AgentResult(output=answer.model_dump(mode="json"), usage=usage)


ChatTurn = Callable[[list[ChatMessage]], ChatMessage]
"""What the model says next, given the conversation so far."""


@dataclass(kw_only=True)
class FakeChat(Fakes):
    """``llm.chat``: an agent region's model, one turn at a time."""

    turn: ChatTurn
    turn_tokens: ClassVar[tuple[int, int]] = (100, 20)
    """Prompt and completion tokens each turn reports."""

    @fake("llm.chat")
    async def chat(self, request: ChatRequest) -> ChatResult:
        usage = scripted_usage(*self.turn_tokens)
        conversation, _ = await whole_conversation(request)
        return ChatResult(message=self.turn(conversation), usage=usage)
