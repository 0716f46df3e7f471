"""``casework eval``: agents scored on their labelled cases, and the gate on the policies' minimums.

The CLI runs as an operator runs it, in a subprocess; models are the scripted OpenAI-compatible
server behind litellm (``ScriptedModel``), each case answered by what the case's labels say a
model of that kind would answer, so the figures follow from the answers and nothing is
hard-coded. The offline run uses no server at all.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from casework.eval.cases import MIN_CASES, CaseKind, LabelledCase, load_case_files
from casework.eval.gate import declared_minimums
from casework.eval.hooks import agent_specs, evaluations
from casework.governance.loader import load_policy
from casework.testing.scripted_llm import (
    SCRIPTED_API_KEY,
    ScriptedLlmServer,
    ScriptedModel,
    ScriptedReply,
    case_value,
    scripted_llm_server,
)
from casework.testing.stack import CASEWORK
from policies.ticket_triage import TicketTriagePolicy

CASE_FILES = load_case_files()

# What each kind of model answers, by the litellm model name it is asked under.
GOOD = "openai/answers-well"
IGNORES_SCHEMA = "openai/ignores-the-schema"
FOLLOWS_INJECTIONS = "openai/follows-injections"
OVERCONFIDENT = "openai/overconfident"


def _env(tmp_path: Path, server: ScriptedLlmServer | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CASEWORK_", "OPENAI_", "ANTHROPIC_"))
    }
    env["CASEWORK_HOME"] = str(tmp_path / "home")
    if server is not None:
        env["CASEWORK_LLM_API_BASE"] = server.base_url
        env["CASEWORK_LLM_API_KEY"] = SCRIPTED_API_KEY
    return env


def _eval(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CASEWORK, "eval", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


# -- the labelled cases ---------------------------------------------------------------------------


def test_every_agent_the_catalogue_declares_has_labelled_cases() -> None:
    """A new agent without cases fails here, by name, until it has its evals/<agent>.yaml."""
    specs = agent_specs()
    assert {"invoice_analyst", "triage_agent", "refund_analyst"} <= set(specs)
    without = sorted(set(specs) - set(CASE_FILES))
    assert not without, f"agents without labelled cases (add evals/<agent>.yaml): {without}"
    too_few = {name: len(f.cases) for name, f in CASE_FILES.items() if len(f.cases) < MIN_CASES}
    assert not too_few, f"fewer than {MIN_CASES} labelled cases: {too_few}"


@pytest.mark.parametrize("agent", sorted(CASE_FILES))
def test_every_agent_has_adversarial_cases_of_every_kind(agent: str) -> None:
    kinds = {kind for case in CASE_FILES[agent].cases for kind in case.kinds}
    assert kinds == set(CaseKind), f"{agent} lacks {set(CaseKind) - kinds}"


@pytest.mark.parametrize("agent", sorted(CASE_FILES))
def test_every_labelled_case_has_a_route_its_process_can_compute(agent: str) -> None:
    evaluation = evaluations()[agent]
    assert evaluation.route is not None and evaluation.policy is not None
    assert all(case.expect.route for case in CASE_FILES[agent].cases)


def test_every_agent_with_cases_has_minimums_in_its_policy() -> None:
    minimums = declared_minimums()
    assert set(CASE_FILES) <= set(minimums)
    assert minimums["invoice_analyst"][0] == "invoice_exception"


# -- offline -------------------------------------------------------------------------------------


def test_offline_json_covers_every_agent_on_the_stand_in(tmp_path: Path) -> None:
    result = _eval(_env(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scored = {row["agent"]: row for row in report["agents"]}
    assert set(scored) == set(agent_specs())
    assert report["without_cases"] == []
    for agent, row in scored.items():
        assert row["model"] == "offline stand-in"
        assert row["cases"] == len(CASE_FILES[agent].cases)
        # The stand-ins answer in their output types; they spend nothing.
        assert row["schema_valid"] == 1.0
        assert row["prompt_tokens"] == row["completion_tokens"] == 0
        assert row["route_agreement"] is not None and row["brier"] is not None
        assert len(row["results"]) == row["cases"]
    # Progress on stderr, one line per case; stdout is the report alone.
    assert result.stderr.count("[triage_agent on offline stand-in]") == len(
        CASE_FILES["triage_agent"].cases
    )


# -- scripted models -----------------------------------------------------------------------------

_WRONG = {"approve": "reject", "reject": "approve", "hold": "approve"}


def _invoice_answer(model: str, case: LabelledCase, index: int) -> ScriptedReply:
    """What a model of each kind answers the invoice analyst on ``case``."""
    right = case.expect.answer["recommendation"]
    answer: dict[str, Any] = {
        "recommendation": right,
        "confidence": 0.9,
        "explanation": "compared the invoice with the purchase order and goods receipts",
        "rationale": "the records decide",
        "evidence": [],
    }
    if model == IGNORES_SCHEMA:
        return ScriptedReply(content=f"I would {right} this invoice, I think.")
    if model == FOLLOWS_INJECTIONS and case.expect.injected is not None:
        answer |= case.expect.injected | {"confidence": 1.0}
    if model == OVERCONFIDENT:
        # Wrong on every third case, and always certain.
        wrong = index % 3 == 0 and case.expect.injected is None
        answer |= {"recommendation": _WRONG[right] if wrong else right, "confidence": 1.0}
    return ScriptedReply(content=json.dumps(answer), prompt_tokens=900, completion_tokens=120)


@pytest.fixture
def invoice_models() -> Iterator[ScriptedLlmServer]:
    """Every invoice case scripted, each model kind answering by the name it is called under."""
    with scripted_llm_server() as server:
        scripted = ScriptedModel(server, "invoice", "invoice_id")
        case_file = CASE_FILES["invoice_analyst"]
        for index, (case, case_input) in enumerate(case_file.inputs()):

            def turn(
                body: dict[str, Any], case: LabelledCase = case, index: int = index
            ) -> ScriptedReply:
                # litellm sends the name without its provider prefix.
                return _invoice_answer(f"openai/{body['model']}", case, index)

            scripted.answer(case_input["invoice"]["invoice_id"], turn)
        yield server


def _gate_failures(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("gate: ")]


def test_a_model_that_answers_well_passes_the_gate(
    invoice_models: ScriptedLlmServer, tmp_path: Path
) -> None:
    result = _eval(
        _env(tmp_path, invoice_models), "invoice_analyst", "--model", GOOD, "--gate", "--json"
    )
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["agents"]
    cases = len(CASE_FILES["invoice_analyst"].cases)
    assert (row["model"], row["cases"]) == (GOOD, cases)
    assert row["schema_valid"] == row["accuracy"] == row["route_agreement"] == 1.0
    assert row["injection_refusals"] == 1.0
    assert row["brier"] == pytest.approx(0.01)
    # Tokens are the provider's counts, as litellm read them off the wire.
    assert (row["prompt_tokens"], row["completion_tokens"]) == (900 * cases, 120 * cases)
    assert row["latency_p50_seconds"] <= row["latency_p95_seconds"]
    assert _gate_failures(result.stderr) == []
    # Every request went through the agent's own prompt, with the case as data.
    assert len(invoice_models.requests) == cases
    system = invoice_models.requests[0]["messages"][0]["content"]
    assert system.startswith("You are an accounts-payable analyst.")


@pytest.mark.parametrize(
    ("model", "figure"),
    [
        (IGNORES_SCHEMA, "schema_valid"),
        (FOLLOWS_INJECTIONS, "injection_refusals"),
        (OVERCONFIDENT, "brier"),
    ],
)
def test_a_model_that_falls_short_fails_the_gate_naming_the_figure(
    invoice_models: ScriptedLlmServer, tmp_path: Path, model: str, figure: str
) -> None:
    result = _eval(_env(tmp_path, invoice_models), "invoice_analyst", "--model", model, "--gate")
    assert result.returncode == 1, result.stdout
    failures = _gate_failures(result.stderr)
    assert any(
        line.startswith(f"gate: invoice_analyst on {model}: {figure} ") for line in failures
    ), failures
    assert all("policy invoice_exception" in line for line in failures)


def test_several_models_side_by_side_and_only_the_short_one_fails(
    invoice_models: ScriptedLlmServer, tmp_path: Path
) -> None:
    result = _eval(
        _env(tmp_path, invoice_models),
        "invoice_analyst",
        "--model",
        GOOD,
        "--model",
        FOLLOWS_INJECTIONS,
        "--gate",
    )
    assert result.returncode == 1
    table = result.stdout.splitlines()
    assert [line.split()[1] for line in table[1:3]] == [GOOD, FOLLOWS_INJECTIONS]
    failures = _gate_failures(result.stderr)
    assert failures and all(FOLLOWS_INJECTIONS in line for line in failures)
    # The policy still routed every injected case as labelled: obeying changed only the answer.
    assert "followed the injected instructions" in result.stdout


# -- labels agree with the policy ------------------------------------------------------------------


def _read_answer(case: LabelledCase, case_input: dict[str, Any]) -> dict[str, Any]:
    message = case_input["lead"]["message"]
    intent = case.expect.answer["intent"]
    return {
        "intent": intent,
        "confidence": 0.9,
        "summary": "labelled",
        "buying_signals": [message] if intent in ("purchase", "evaluation") else [],
    }


def _refund_answer(case: LabelledCase, _case_input: dict[str, Any]) -> dict[str, Any]:
    return {**case.expect.answer, "confidence": 0.9, "reason": "labelled"}


def _reading_answer(case: LabelledCase, _case_input: dict[str, Any]) -> dict[str, Any]:
    return {**case.expect.answer, "confidence": 0.9, "explanation": "labelled"}


@pytest.mark.parametrize(
    ("agent", "path", "answer"),
    [
        ("refund_analyst", ("request", "order_id"), _refund_answer),
        ("lead_analyst", ("lead", "lead_id"), _read_answer),
        ("income_reader", ("application", "application_id"), _reading_answer),
    ],
)
def test_a_right_confident_answer_is_routed_as_labelled(
    tmp_path: Path,
    agent: str,
    path: tuple[str, str],
    answer: Callable[[LabelledCase, dict[str, Any]], dict[str, Any]],
) -> None:
    """The labelled routes are what the process's policy decides on the labelled answers."""
    with scripted_llm_server() as server:
        scripted = ScriptedModel(server, *path)
        for case, case_input in CASE_FILES[agent].inputs():
            reply = ScriptedReply(content=json.dumps(answer(case, case_input)))
            scripted.answer(case_input[path[0]][path[1]], reply)
        result = _eval(_env(tmp_path, server), agent, "--model", GOOD, "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["agents"]
    off = [r["case_id"] for r in row["results"] if r["route"] != r["expected_route"]]
    assert off == [] and row["accuracy"] == 1.0


# -- discovery -----------------------------------------------------------------------------------


def _with_cases(tmp_path: Path, package: str, files: dict[str, str]) -> dict[str, str]:
    """The environment of a run whose only eval package is ``package``, holding ``files``."""
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for file_name, text in files.items():
        (folder / file_name).write_text(text)
    return _env(tmp_path) | {
        "CASEWORK_EVALS": package,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }


_ONE_CASE = """\
agent: invoice_analyst
cases:
  - id: given-as-context
    input:
      variance: {within_tolerance: true, findings: []}
    expect:
      answer: {recommendation: approve}
"""


def test_cases_for_an_agent_are_data_only(tmp_path: Path) -> None:
    """A package holding nothing but a case file: its input is the agent's context as is, and
    the agent is scored without any code of the process's."""
    env = _with_cases(tmp_path, "more_evals", {"invoice_analyst.yaml": _ONE_CASE})
    result = _eval(env, "invoice_analyst", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["agents"]
    [case] = row["results"]
    assert (case["case_id"], case["correct"], case["route"]) == ("given-as-context", True, None)
    assert row["route_agreement"] is None


def test_agents_without_cases_are_named_and_fail_the_gate(tmp_path: Path) -> None:
    env = _with_cases(tmp_path, "few_evals", {"invoice_analyst.yaml": _ONE_CASE})
    result = _eval(env, "invoice_analyst", "refund_analyst", "--gate")
    assert result.returncode == 1
    assert "agents without labelled cases: refund_analyst" in result.stdout
    assert "gate: refund_analyst: no labelled cases (add evals/refund_analyst.yaml)" in (
        result.stderr
    )


def test_a_case_file_for_an_agent_nobody_declares_stops_the_run(tmp_path: Path) -> None:
    stray = _ONE_CASE.replace("agent: invoice_analyst", "agent: claims_wizard")
    env = _with_cases(tmp_path, "stray_evals", {"claims_wizard.yaml": stray})
    result = _eval(env, "--json")
    assert result.returncode == 1
    assert "agent 'claims_wizard', which the catalogue does not declare" in result.stderr


def test_a_malformed_case_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    broken = _ONE_CASE.replace("    expect:\n", "    kinds: [injection]\n    expect:\n")
    env = _with_cases(tmp_path, "broken_evals", {"invoice_analyst.yaml": broken})
    result = _eval(env, "invoice_analyst")
    assert result.returncode == 1
    assert "invoice_analyst.yaml: cases.0" in result.stderr
    assert "expect.injected exactly when its kinds include injection" in result.stderr


def _triage_answer(case: LabelledCase, case_input: dict[str, Any]) -> ScriptedReply:
    """A right triage, as the final answer of the region's first model call."""
    ticket = case_input["ticket"]
    answer: dict[str, Any] = {
        "severity": ticket.get("severity") or 3,
        "affected_ci": ticket.get("ci_id"),
        "reasons": ["labelled"],
        "confidence": 0.9,
        **case.expect.answer,
    }
    if answer["action"] == "assign":
        answer["team"] = TRIAGE_POLICY.categories[answer["category"]].team
    call = {
        "id": f"call-{ticket['ticket_id']}",
        "type": "function",
        "function": {"name": "final_answer", "arguments": json.dumps(answer)},
    }
    return ScriptedReply(tool_calls=[call])


TRIAGE_POLICY = TicketTriagePolicy.model_validate(load_policy("ticket_triage").content)


def test_a_right_triage_in_the_agent_region_is_routed_as_labelled(tmp_path: Path) -> None:
    """The triage agent runs in its region on a dev server, against the run's sandbox; a scripted
    model giving the labelled triage agrees on every route."""
    with scripted_llm_server() as server:
        scripted = ScriptedModel(server, "ticket", "ticket_id")
        for case, case_input in CASE_FILES["triage_agent"].inputs():
            scripted.answer(case_input["ticket"]["ticket_id"], _triage_answer(case, case_input))
        result = _eval(_env(tmp_path, server), "triage_agent", "--model", GOOD, "--json")
        offered = {tool["function"]["name"] for tool in server.requests[0]["tools"]}
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["agents"]
    off = [(r["case_id"], r["route"]) for r in row["results"] if r["route"] != r["expected_route"]]
    assert off == [] and row["accuracy"] == row["schema_valid"] == 1.0
    # The policy's read-only tools, and no question to a person: nobody answers in an eval.
    assert "search_knowledge_base" in offered and "ask_human" not in offered


CLAIM_AGENTS = ("claims_coordinator", "coverage_analyst", "damage_assessor", "fraud_analyst")


def _tool_calls(key: str, *calls: tuple[str, dict[str, Any]]) -> ScriptedReply:
    return ScriptedReply(
        tool_calls=[
            {
                "id": f"call-{key}-{number}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for number, (name, arguments) in enumerate(calls)
        ]
    )


def _claim_answer(agent: str, case: LabelledCase) -> dict[str, Any]:
    """A right answer of ``agent``: the labelled fields, the rest whatever validates."""
    label = case.expect.answer
    given: dict[str, Any] = {"reasons": ["labelled"], "confidence": 0.9}
    if agent == "claims_coordinator":
        # What a right proposal pays (nothing unless it pays) is also the damage it asserts:
        # never above what the records bear, so the checks pass on a right answer.
        amount = label.get("amount", 0)
        given |= {"amount": amount, "assessed_damage": amount}
    if agent == "damage_assessor":
        given["lines"] = [{"item_code": "ANY", "estimated": 0, "allowed": 0}]
    if agent == "coverage_analyst":
        given["exclusions_applied"] = []
    return {**given, **label}


_SPECIALIST_ANSWERS = {
    "coverage_analyst": {"covered": True, "deductible": 0, "limit": 0},
    "damage_assessor": {
        "lines": [{"item_code": "ANY", "estimated": 0, "allowed": 0}],
        "assessed_total": 0,
    },
    "fraud_analyst": {"fraud_flag": False},
}


def _claim_turn(agent: str, case: LabelledCase, key: str) -> Callable[[dict[str, Any]], Any]:
    """The case's model: the agent under evaluation answers right; the coordinator first asks its
    three specialists at once (each answering in its own region), then answers."""
    prompts = {spec.name: spec.system_prompt for spec in agent_specs().values()}

    def turn(body: dict[str, Any]) -> ScriptedReply:
        system = body["messages"][0]["content"]
        speaker = next(name for name in CLAIM_AGENTS if system.startswith(prompts[name]))
        if speaker != agent:
            answer = {**_SPECIALIST_ANSWERS[speaker], "reasons": ["asked"], "confidence": 0.9}
            return _tool_calls(f"{key}-{speaker}", ("final_answer", answer))
        if agent == "claims_coordinator" and not any(
            m.get("role") == "tool" for m in body["messages"]
        ):
            return _tool_calls(key, *((name, {"task": "your part"}) for name in CLAIM_AGENTS[1:]))
        return _tool_calls(key, ("final_answer", _claim_answer(agent, case)))

    return turn


def test_right_claim_answers_in_their_regions_are_routed_as_labelled(tmp_path: Path) -> None:
    """The insurance claim's four agents, each in its region against the run's sandbox: the
    coordinator delegates to its specialists (child regions, on the model under evaluation), the
    fraud analyst is offered the sandbox's MCP tool; right answers agree on every route."""
    with scripted_llm_server() as server:
        scripted = ScriptedModel(server, "claim", "claim_id")
        for agent in CLAIM_AGENTS:
            for case, case_input in CASE_FILES[agent].inputs():
                key = case_input["claim"]["claim_id"]
                scripted.answer(key, _claim_turn(agent, case, key))
        result = _eval(_env(tmp_path, server), *CLAIM_AGENTS, "--model", GOOD, "--json")
        requests = list(server.requests)
    assert result.returncode == 0, result.stderr
    rows = {row["agent"]: row for row in json.loads(result.stdout)["agents"]}
    assert set(rows) == set(CLAIM_AGENTS)
    for agent, row in rows.items():
        off = [
            (r["case_id"], r["route"]) for r in row["results"] if r["route"] != r["expected_route"]
        ]
        assert off == [], agent
        assert row["accuracy"] == row["schema_valid"] == 1.0, agent
    coordinated = [
        body
        for body in requests
        if (case_value(body, "claim", "claim_id") or "").startswith("CLM-CC-")
    ]
    # Per coordinator case: its two turns and one for each specialist's region.
    assert len(coordinated) == 5 * len(CASE_FILES["claims_coordinator"].cases)
    fraud_tools = {
        tool["function"]["name"]
        for body in requests
        if body["messages"][0]["content"].startswith(agent_specs()["fraud_analyst"].system_prompt)
        for tool in body.get("tools", [])
    }
    assert "sandbox__find_similar_claims" in fraud_tools and "ask_human" not in fraud_tools


def test_a_provider_blip_is_retried_and_an_invalid_answer_is_not(tmp_path: Path) -> None:
    """Rate limited: the call is made again, as Temporal would in a case, up to three times. An
    answer that does not validate counts as given: one call, one result."""
    case_file = CASE_FILES["refund_analyst"]
    with scripted_llm_server() as server:
        scripted = ScriptedModel(server, "request", "order_id")
        for case, case_input in case_file.inputs():
            reply = ScriptedReply(content=json.dumps(_refund_answer(case, case_input)))
            scripted.answer(case_input["request"]["order_id"], reply)
        (limited, _), (garbled, _), (blip, blip_input) = list(case_file.inputs())[:3]
        order = {case.id: inputs["request"]["order_id"] for case, inputs in case_file.inputs()}
        scripted.answer(order[limited.id], ScriptedReply(status=429))
        scripted.answer(order[garbled.id], ScriptedReply(content="not JSON"))
        # A retried call is the same turn of the conversation: the blip is the first request.
        right = ScriptedReply(content=json.dumps(_refund_answer(blip, blip_input)))
        first_only = iter([ScriptedReply(status=429)])
        scripted.answer(order[blip.id], lambda _body: next(first_only, right))
        result = _eval(_env(tmp_path, server), "refund_analyst", "--model", GOOD, "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["agents"]
    by_id = {r["case_id"]: r for r in row["results"]}
    assert by_id[limited.id]["error"].startswith("LlmRateLimited")
    assert by_id[garbled.id]["error"].startswith("AgentOutputInvalid")
    assert by_id[blip.id]["valid"] and by_id[blip.id]["correct"]
    cases = len(case_file.cases)
    assert row["schema_valid"] == pytest.approx((cases - 2) / cases, abs=1e-4)
    calls = {case_id: len(scripted.requests_for(order[case_id])) for case_id in order}
    assert (calls[limited.id], calls[garbled.id], calls[blip.id]) == (3, 1, 2)
