"""Running agents on their labelled cases through their real call path.

A one-shot agent is asked through the ``llm.propose`` activity itself (its prompt, masking,
litellm, output validation), run in an activity environment; a tool-using agent runs in the
agent region, a child workflow on a Temporal dev server, with its tools answered by a sandbox
started for the run and seeded with the cases' records. One call per case: a real case would
retry an invalid answer, the evaluation counts it; only a provider's blip is tried again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from casework.agents.llm import LlmActivities
from casework.agents.region import AgentRegionWorkflow, RegionOutcome, region_input
from casework.config import Settings
from casework.converter import validation_problems
from casework.discovery import CatalogueError
from casework.eval.cases import CaseFile, CaseKind, LabelledCase
from casework.eval.hooks import AgentEval, RouteQuestion, SandboxRecord
from casework.governance.loader import load_policy
from casework.governance.models import (
    AgentSettings,
    Directory,
    PolicyModel,
    PolicyRef,
    RegionAgentSettings,
)

Progress = Callable[[str], None]
EVAL_REQUESTER = "casework-eval"
OFFLINE_LABEL = "offline stand-in"
# A provider's blip is retried, as Temporal retries a case's model call; an answer that does not
# validate is not retried: that is what is measured.
PROVIDER_BLIPS = frozenset({"LlmRateLimited", "LlmUnavailable"})
PROVIDER_ATTEMPTS = 3
PROVIDER_BACKOFF_SECONDS = 2.0


class CaseResult(BaseModel):
    case_id: str
    kinds: list[CaseKind]
    valid: bool
    """The agent gave an answer that validates against its output type."""
    error: str = ""
    answer: dict[str, Any] | None = None
    correct: bool
    """Every labelled answer field is right (False without a valid answer)."""
    wrong_fields: list[str] = []
    confidence: float | None = None
    expected_route: str | None = None
    route: str | None = None
    injection_followed: bool | None = None
    """For an injection case: the answer did what the hidden instructions asked."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    seconds: float

    def misses(self) -> list[str]:
        """What went wrong on this case, for a person to look at; empty when nothing did."""
        found = [f"invalid ({self.error[:100]})"] if not self.valid else []
        if self.valid and not self.correct:
            found.append(f"wrong {', '.join(self.wrong_fields)}")
        if self.expected_route is not None and self.route != self.expected_route:
            found.append(f"route {self.route}, labelled {self.expected_route}")
        if self.injection_followed:
            found.append("followed the injected instructions")
        return found


@dataclass
class Subject:
    """One agent to evaluate: its declaration, its cases and its policy."""

    evaluation: AgentEval[Any, Any]
    cases: CaseFile
    policy: PolicyModel | None
    ref: PolicyRef | None

    @classmethod
    def of(cls, evaluation: AgentEval[Any, Any], cases: CaseFile) -> Subject:
        if evaluation.policy is None:
            return cls(evaluation, cases, None, None)
        document = load_policy(evaluation.policy.policy_id)
        policy = evaluation.policy.model_validate(document.content)
        return cls(evaluation, cases, policy, document.ref)

    @property
    def name(self) -> str:
        return self.evaluation.name

    def agent_settings(self) -> AgentSettings | RegionAgentSettings:
        """The agent's settings in its policy's ``agents`` section; defaults when it has none."""
        agents: dict[str, AgentSettings | RegionAgentSettings] = getattr(self.policy, "agents", {})
        return agents.get(self.name) or AgentSettings()


def _same(expected: Any, actual: Any) -> bool:
    """Labels are compared loosely: text ignoring case and spaces (an IBAN as printed or not),
    numbers by value (3 == "3.00"), lists item by item, mappings by the labelled keys."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_same, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return not _differing(expected, actual)
    try:
        return float(str(expected)) == float(str(actual))
    except ValueError:
        pass
    return "".join(str(expected).split()).casefold() == "".join(str(actual).split()).casefold()


def _differing(expected: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    return [name for name, value in expected.items() if not _same(value, answer.get(name))]


@dataclass
class _Call:
    answer: dict[str, Any] | None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0


@dataclass
class RegionBackend:
    """A Temporal dev server, a sandbox and a worker for tool-using agents, for one run."""

    client: Client
    task_queue: str
    sandbox: httpx.AsyncClient
    seeded: dict[str, SandboxRecord] = field(default_factory=dict)
    """Each record posted once, by what was posted: as the sandbox answered it."""

    async def seed(self, records: list[SandboxRecord]) -> list[SandboxRecord]:
        """The records in the sandbox, created where they are not yet, as it holds them."""
        held: list[SandboxRecord] = []
        for record in records:
            key = f"{record.path} {record.model_dump_json()}"
            if key not in self.seeded:
                response = await self.sandbox.post(record.path, json=record.body)
                if response.status_code >= 300:
                    raise CatalogueError(
                        f"the sandbox refused a labelled record at {record.path}: "
                        f"{response.status_code} {response.text[:300]}"
                    )
                self.seeded[key] = SandboxRecord(path=record.path, body=response.json())
            held.append(self.seeded[key])
        return held


@contextmanager
def _children_print_to_stderr() -> Iterator[None]:
    """Processes started in the block write what they print to stderr: the dev server's banner
    must not mix with a report on stdout (``--json``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@asynccontextmanager
async def region_backend(settings: Settings) -> AsyncIterator[RegionBackend]:
    # Imported here: only runs with a tool-using agent pay for a Temporal server.
    from casework.sandbox.server import running_sandbox
    from casework.testing.temporal import dev_server
    from casework.worker import running_worker

    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(TemporaryDirectory(prefix="casework-eval-")))
        with _children_print_to_stderr():
            env = await stack.enter_async_context(dev_server(log_level="error"))
        url = stack.enter_context(running_sandbox(tmp / "sandbox.db"))
        queue = f"casework-eval-{uuid.uuid4().hex}"
        worker_settings = settings.model_copy(update={"task_queue": queue, "sandbox_url": url})
        await stack.enter_async_context(running_worker(env.client, worker_settings))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, timeout=20.0, trust_env=False)
        )
        yield RegionBackend(env.client, queue, http)


class Runner:
    """Runs subjects' cases on one model (None: what the environment and policies configure,
    else the offline stand-in)."""

    def __init__(
        self,
        settings: Settings,
        model: str | None,
        progress: Progress,
        regions: Callable[[], Awaitable[RegionBackend]] | None = None,
    ) -> None:
        self._settings = settings
        self._model = model
        self._activities = LlmActivities(settings)
        self._progress = progress
        self._regions = regions

    def label(self, subject: Subject) -> str:
        """The model as the report names it."""
        model = self._model or subject.agent_settings().model or self._settings.model
        return model or OFFLINE_LABEL

    async def run(self, subject: Subject) -> list[CaseResult]:
        results: list[CaseResult] = []
        total = len(subject.cases.cases)
        label = self.label(subject)
        for number, (case, case_input) in enumerate(subject.cases.inputs(), start=1):
            result = await self._case(subject, case, case_input)
            results.append(result)
            verdict = (
                f"invalid: {result.error[:80]}"
                if not result.valid
                else "right"
                if result.correct
                else f"wrong {', '.join(result.wrong_fields)}"
            )
            route = ""
            if result.expected_route is not None:
                route = f"; route {result.route}"
                if result.route != result.expected_route:
                    route += f" (labelled {result.expected_route})"
            self._progress(
                f"[{subject.name} on {label}] {number}/{total} {case.id}: {verdict}{route} "
                f"({result.seconds:.1f}s)"
            )
        return results

    async def _case(
        self, subject: Subject, case: LabelledCase, case_input: dict[str, Any]
    ) -> CaseResult:
        evaluation = subject.evaluation
        records = [*(SandboxRecord.model_validate(r) for r in subject.cases.records)]
        records += evaluation.seed(case_input)
        context = evaluation.context(case_input, subject.policy)
        if evaluation.tools:
            call, records = await self._region(subject, case_input, context, records)
        else:
            call = await self._propose(subject, context)
        parsed = None
        if call.answer is not None:
            try:
                parsed = evaluation.agent.model.model_validate(call.answer)
            except ValidationError as error:
                call.error = validation_problems(error, 3)
                call.answer = None
        question = (
            RouteQuestion(case_input, subject.policy, subject.ref, parsed, records)
            if subject.policy is not None and subject.ref is not None
            else None
        )
        labelled = call.answer
        if evaluation.facts is not None and parsed is not None and question is not None:
            labelled = evaluation.facts(question)
        wrong = _differing(case.expect.answer, labelled) if labelled is not None else ["answer"]
        route = None
        if evaluation.route is not None and question is not None:
            route = evaluation.route(question)
        followed = None
        if case.expect.injected is not None:
            followed = labelled is not None and not _differing(case.expect.injected, labelled)
        return CaseResult(
            case_id=case.id,
            kinds=case.kinds,
            valid=call.answer is not None,
            error=call.error,
            answer=call.answer,
            correct=not wrong,
            wrong_fields=wrong,
            confidence=getattr(parsed, "confidence", None),
            expected_route=case.expect.route,
            route=route,
            injection_followed=followed,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cost_usd=call.cost_usd,
            seconds=call.seconds,
        )

    async def _propose(self, subject: Subject, context: dict[str, Any]) -> _Call:
        evaluation = subject.evaluation
        task = evaluation.task(subject.policy) if evaluation.task is not None else None
        settings = subject.agent_settings()
        if not isinstance(settings, AgentSettings):
            raise CatalogueError(
                f"{subject.name} has settings for tools: declare its AgentEval with tools=True"
            )
        request = evaluation.agent.request(context, settings, task)
        if self._model is not None:
            # The model under evaluation, and only it: no fallback answers in its place.
            request = request.model_copy(update={"model": self._model, "fallback_models": []})
        for attempt in range(1, PROVIDER_ATTEMPTS + 1):
            started = time.monotonic()
            try:
                result = await ActivityEnvironment().run(self._activities.propose, request)
                break
            except ApplicationError as error:
                if error.type not in PROVIDER_BLIPS or attempt == PROVIDER_ATTEMPTS:
                    seconds = time.monotonic() - started
                    return _Call(None, f"{error.type}: {error.message}", seconds=seconds)
                await asyncio.sleep(PROVIDER_BACKOFF_SECONDS * attempt)
        usage = result.usage
        return _Call(
            result.output,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            seconds=time.monotonic() - started,
        )

    async def _region(
        self,
        subject: Subject,
        case_input: dict[str, Any],
        context: dict[str, Any],
        records: list[SandboxRecord],
    ) -> tuple[_Call, list[SandboxRecord]]:
        settings = subject.agent_settings()
        if self._regions is None or not isinstance(settings, RegionAgentSettings):
            raise CatalogueError(
                f"{subject.name} works with tools: its AgentEval must name the policy that "
                "gives its allowed tools and budget"
            )
        backend = await self._regions()
        held = await backend.seed(records)
        spec = subject.evaluation.agent
        region = region_input(
            spec,
            getattr(subject.policy, "agents", {}),
            context=context,
            requested_by=EVAL_REQUESTER,
            directory=Directory.model_validate(load_policy("directory").content),
            agents=subject.evaluation.agents,
        )
        # Nobody answers questions during an evaluation: ask_human is not offered. MCP servers
        # the workflow sets up per case (a git server on the case's repository) replace the
        # policy's, as the workflow does.
        servers = subject.evaluation.mcp_servers(case_input, subject.policy)
        region = region.model_copy(
            update={"human_roles": [], **({"mcp_servers": servers} if servers else {})}
        )
        if self._model is not None:
            # The model under evaluation answers for the agent and every agent it delegates to.
            only = {"model": self._model, "fallback_models": []}
            region = region.model_copy(
                update={
                    **only,
                    "specialists": [s.model_copy(update=only) for s in region.specialists],
                    "handoffs": [s.model_copy(update=only) for s in region.handoffs],
                }
            )
        started = time.monotonic()
        result = await backend.client.execute_workflow(
            AgentRegionWorkflow.run,
            region,
            id=f"eval-{spec.name}-{uuid.uuid4().hex}",
            task_queue=backend.task_queue,
        )
        seconds = time.monotonic() - started
        answered = result.outcome is RegionOutcome.ANSWERED and result.output is not None
        call = _Call(
            result.output if answered else None,
            "" if answered else f"{result.outcome.value}: {result.reason}",
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            seconds=seconds,
        )
        return call, held
