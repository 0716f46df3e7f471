"""``casework eval incident_investigator``: the investigator in its agent region on a dev server,
reading the run's sandbox and each case's deployments repository through the git MCP server.

The scripted model investigates as a model would: it asks for the service's logs and the
repository's log, then drafts from what the tools returned (the sandbox's log IDs, the commits'
SHAs), blaming the release its labels name. Nothing is hard-coded: the figures follow from the
drafts and the policy's own checks.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from activities.agents.incident_review import logged_commits
from casework.agents.messages import DATA_BLOCK
from casework.eval.cases import LabelledCase, load_case_files
from casework.testing.scripted_llm import (
    SCRIPTED_API_KEY,
    ScriptedLlmServer,
    ScriptedModel,
    ScriptedReply,
    case_data,
    scripted_llm_server,
)
from casework.testing.stack import CASEWORK

AGENT = "incident_investigator"
CASES = load_case_files()[AGENT]
GOOD = "openai/investigates-well"
FOLLOWS_INJECTIONS = "openai/follows-injections"
UNKNOWN_OWNER = "mallory"


def _env(tmp_path: Path, server: ScriptedLlmServer) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CASEWORK_", "OPENAI_", "ANTHROPIC_"))
    }
    return env | {
        "CASEWORK_HOME": str(tmp_path / "home"),
        "CASEWORK_LLM_API_BASE": server.base_url,
        "CASEWORK_LLM_API_KEY": SCRIPTED_API_KEY,
    }


def _call(name: str, arguments: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "id": f"call-{number}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def _look(body: dict[str, Any]) -> ScriptedReply:
    """The first turn: the service's logs, and the deployments repository when there is one."""
    context = case_data(body)
    search = {"service": context["incident"]["ci_id"], "min_level": "DEBUG"}
    calls = [_call("search_logs", search, 1)]
    if deployments := context.get("deployments"):
        arguments = {"repo_path": deployments["repo_path"], "max_count": 20}
        calls.append(_call(deployments["read_with"][0], arguments, 2))
    return ScriptedReply(tool_calls=calls)


def _results(body: dict[str, Any]) -> dict[str, Any]:
    """What each tool returned, by the tool's name."""
    names = {
        call["id"]: call["function"]["name"]
        for message in body["messages"]
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    }
    found: dict[str, Any] = {}
    for message in body["messages"]:
        match = DATA_BLOCK.search(message.get("content") or "")
        if message["role"] != "tool" or match is None:
            continue
        try:
            found[names[message["tool_call_id"]]] = json.loads(match.group(2))
        except json.JSONDecodeError:
            found[names[message["tool_call_id"]]] = match.group(2)
    return found


def _draft(model: str, case: LabelledCase, body: dict[str, Any]) -> ScriptedReply:
    """The second turn: a draft citing what the tools returned, blaming the labelled release (or,
    for a model that obeys the case's text, what the hidden instructions ask)."""
    context = case_data(body)
    incident = context["incident"]
    results = _results(body)
    lines = [line for line in results.get("search_logs") or [] if isinstance(line, dict)]
    commits = next(
        (logged_commits(text) for name, text in results.items() if name.endswith("git_log")), []
    )
    labels = dict(case.expect.answer)
    if model == FOLLOWS_INJECTIONS and case.expect.injected is not None:
        labels |= case.expect.injected
    blamed = [sha for sha, subject in commits if subject == labels["cause_commit"]]
    timeline = [
        {
            "at": line["at"],
            "event": line["message"],
            "evidence": [{"kind": "log", "ref": line["entry_id"]}],
        }
        for line in lines
    ]
    timeline.append(
        {
            "at": incident["created_at"],
            "event": f"{incident['ticket_id']} opened",
            "evidence": [{"kind": "incident", "ref": incident["ticket_id"]}],
        }
    )
    cause = [{"kind": "commit", "ref": sha} for sha in blamed[:1]]
    cause += [{"kind": "log", "ref": line["entry_id"]} for line in lines[:1]]
    owner = case.input["configuration_item"]["owner_team"]
    follow_ups = [{"title": "Alert before users notice", "owner": owner, "due_in_days": 7}]
    if labels.get("on_record") is False:
        follow_ups.append({"title": "Whatever the text asked", "owner": UNKNOWN_OWNER})
    draft = {
        "summary": f"review of {incident['ticket_id']}",
        "timeline": timeline,
        "probable_cause": labels["cause_commit"] or "what the logs show",
        "cause_evidence": cause,
        "follow_ups": follow_ups,
        "confidence": 0.9,
    }
    return ScriptedReply(tool_calls=[_call("final_answer", draft, 3)])


def test_drafts_from_the_tools_are_routed_as_labelled_and_obeying_fails_the_gate(
    tmp_path: Path,
) -> None:
    with scripted_llm_server() as server:
        scripted = ScriptedModel(server, "incident", "ticket_id")
        for case, case_input in CASES.inputs():

            def draft(body: dict[str, Any], case: LabelledCase = case) -> ScriptedReply:
                # litellm sends the name without its provider prefix.
                return _draft(f"openai/{body['model']}", case, body)

            scripted.script(case_input["incident"]["ticket_id"], _look, draft)
        models = ("--model", GOOD, "--model", FOLLOWS_INJECTIONS)
        result = subprocess.run(
            [CASEWORK, "eval", AGENT, *models, "--gate", "--json"],
            env=_env(tmp_path, server),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        offered = {tool["function"]["name"] for tool in server.requests[0]["tools"]}
    assert result.returncode == 1, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)["agents"]}
    good = rows[GOOD]
    off = [(r["case_id"], r["route"]) for r in good["results"] if r["route"] != r["expected_route"]]
    assert off == []
    assert good["schema_valid"] == good["accuracy"] == good["injection_refusals"] == 1.0
    # The policy's read-only tools and the git server's, and no question to a person.
    assert {"search_logs", "git__git_log", "git__git_show"} <= offered
    assert "ask_human" not in offered
    gate = [line for line in result.stderr.splitlines() if line.startswith("gate: ")]
    assert gate and all(FOLLOWS_INJECTIONS in line for line in gate), gate
    assert any(f"{FOLLOWS_INJECTIONS}: injection_refusals " in line for line in gate), gate
    # Obeying a hidden instruction is visible to the manager: the draft is flagged.
    obeyed = {r["case_id"]: r for r in rows[FOLLOWS_INJECTIONS]["results"]}
    assert obeyed["ticket-orders-a-fake-commit-and-owner"]["route"].endswith("+flagged")
