"""``casework eval``: run agents on their labelled cases, report, and gate on the minimums."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from casework.config import Settings
from casework.discovery import CatalogueError
from casework.eval.cases import load_case_files
from casework.eval.gate import declared_minimums
from casework.eval.hooks import AgentEval, agent_specs, evaluations
from casework.eval.runner import RegionBackend, Runner, Subject, region_backend
from casework.eval.scores import Scores, score, shortfalls


@dataclass(frozen=True)
class Plan:
    subjects: list[Subject]
    without_cases: list[str]
    """Agents the catalogue declares that have no labelled cases: never silently skipped."""


def plan(agents: list[str]) -> Plan:
    specs = agent_specs()
    declared = evaluations()
    case_files = load_case_files()
    for name in [*declared, *case_files]:
        if name not in specs:
            raise CatalogueError(
                f"labelled cases or an evaluation name agent {name!r}, which the catalogue does "
                f"not declare; it declares: {', '.join(sorted(specs))}"
            )
    unknown = [name for name in agents if name not in specs]
    if unknown:
        raise CatalogueError(
            f"unknown agent(s) {', '.join(unknown)}; the catalogue declares: "
            + ", ".join(sorted(specs))
        )
    chosen = agents or sorted(specs)
    subjects = [
        Subject.of(declared.get(name) or AgentEval(agent=specs[name]), case_files[name])
        for name in chosen
        if name in case_files
    ]
    return Plan(subjects, [name for name in chosen if name not in case_files])


async def evaluate(
    plan: Plan, models: list[str | None], settings: Settings, progress: Callable[[str], None]
) -> list[Scores]:
    async with AsyncExitStack() as stack:
        backend: RegionBackend | None = None

        async def regions() -> RegionBackend:
            # Started on first use, and once: a run without tool-using agents needs no Temporal.
            nonlocal backend
            if backend is None:
                progress("starting a Temporal dev server, a sandbox and a worker for tool agents")
                backend = await stack.enter_async_context(region_backend(settings))
            return backend

        found: list[Scores] = []
        for model in models:
            runner = Runner(settings, model, progress, regions)
            for subject in plan.subjects:
                results = await runner.run(subject)
                found.append(score(subject.name, runner.label(subject), results))
        return found


def gate(scores: list[Scores], plan: Plan) -> list[str]:
    """What falls short, each naming the agent (and model) and the figure."""
    minimums = declared_minimums()
    failures = [f"{name}: no labelled cases (add evals/{name}.yaml)" for name in plan.without_cases]
    for result in scores:
        declared = minimums.get(result.agent)
        if declared is None:
            continue
        policy_id, bounds = declared
        failures += [
            f"{result.agent} on {result.model}: {problem} (policy {policy_id})"
            for problem in shortfalls(result, bounds)
        ]
    return failures


def _figure(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(scores: list[Scores], plan: Plan) -> str:
    lines = [
        f"{'agent':<18} {'model':<34} {'cases':>5} {'valid':>6} {'acc':>6} {'route':>6} "
        f"{'inject':>7} {'brier':>6} {'tokens':>8} {'cost $':>9} {'p50 s':>6} {'p95 s':>6}"
    ]
    for s in sorted(scores, key=lambda s: (s.agent, s.model)):
        lines.append(
            f"{s.agent:<18} {s.model[:34]:<34} {s.cases:>5} {_figure(s.schema_valid):>6} "
            f"{_figure(s.accuracy):>6} {_figure(s.route_agreement):>6} "
            f"{_figure(s.injection_refusals):>7} {_figure(s.brier):>6} "
            f"{s.prompt_tokens + s.completion_tokens:>8} {_figure(s.cost_usd, 4):>9} "
            f"{s.latency_p50_seconds:>6.2f} {s.latency_p95_seconds:>6.2f}"
        )
    lines.append("")
    lines.append("reliability (confidence band: answers, mean confidence, share right)")
    for s in sorted(scores, key=lambda s: (s.agent, s.model)):
        bands = "  ".join(
            f"[{band.low:.1f},{band.high:.1f}] {band.cases} {_figure(band.mean_confidence, 2)} "
            f"{_figure(band.accuracy, 2)}"
            for band in s.reliability
            if band.cases
        )
        lines.append(f"  {s.agent} on {s.model}: {bands or 'no confidences'}")
    wrong = [
        f"  {s.agent} on {s.model}: {r.case_id}: {', '.join(r.misses())}"
        for s in scores
        for r in s.results
        if r.misses()
    ]
    if wrong:
        lines += ["", "cases to look at", *wrong]
    if plan.without_cases:
        lines += ["", "agents without labelled cases: " + ", ".join(plan.without_cases)]
    return "\n".join(lines)


def run_eval(
    agents: list[str], models: list[str], as_json: bool, with_gate: bool, settings: Settings
) -> int:
    """``casework eval``: the exit code is 1 when ``with_gate`` and something falls short."""
    chosen = plan(agents)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    scores = asyncio.run(evaluate(chosen, list(models) or [None], settings, progress))
    failures = gate(scores, chosen) if with_gate else []
    if as_json:
        print(
            json.dumps(
                {
                    "agents": [s.model_dump(mode="json") for s in scores],
                    "without_cases": chosen.without_cases,
                    "gate": {"checked": with_gate, "failures": failures},
                },
                indent=2,
            )
        )
    else:
        print(render(scores, chosen))
    for failure in failures:
        print(f"gate: {failure}", file=sys.stderr)
    return 1 if failures else 0
