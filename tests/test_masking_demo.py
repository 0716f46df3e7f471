"""Nothing sensitive reaches the model provider during a whole ``casework demo``.

One embedded stack whose worker calls a scripted OpenAI-compatible server over HTTP (litellm on
its real path, no mocks). The server answers as the offline stand-ins would, computed from the
masked requests it receives (``casework.testing.stand_in_llm``), so the demo must reach every
outcome it reaches offline while the worker unmasks the model's tokens on the way back.

Then every request body the server captured is scanned for the sensitive values the sandbox
holds after the demo: the value of every field ``policies/masking.yaml`` names (bank accounts,
tax IDs, personal names, e-mail addresses ...) and every free-text match of its patterns, in any
record the sandbox lists. None may appear; their masking tokens must, so the scan cannot pass
on requests that simply carried no case data.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from activities.agents.customer_onboarding import IDENTITY_READER, IDENTITY_READING
from activities.agents.incident_review import INVESTIGATOR, REVIEW_DRAFT
from activities.agents.insurance_claim import CLAIM_PROPOSAL, CLAIMS_COORDINATOR
from activities.agents.insurance_claim import SPECIALISTS as CLAIM_SPECIALISTS
from activities.agents.invoice_exception import INVOICE_ANALYST, INVOICE_PROPOSAL
from activities.agents.lead_routing import LEAD_ANALYST, LEAD_READ
from activities.agents.loan_application import INCOME_READER, INCOME_READING
from activities.agents.refund import REFUND_ANALYST, REFUND_PROPOSAL
from activities.agents.ticket_triage import TRIAGE_AGENT, TRIAGE_PROPOSAL
from activities.agents.vendor_onboarding import DOCUMENT_CHECKER, DOCUMENT_EXTRACTION
from casework.catalogue import discover
from casework.masking import PATTERNS, MaskingPolicy, load_masking_policy
from casework.testing.scripted_llm import (
    SCRIPTED_API_KEY,
    SCRIPTED_MODEL,
    ScriptedLlmServer,
    case_data,
    scripted_llm_server,
)
from casework.testing.stack import Stack, demo_table, embedded_stack
from casework.testing.stand_in_llm import StandInResponder
from demos import invoice_exception as demo_invoice_exception
from demos import lead_routing as demo_lead_routing
from demos import loan_application as demo_loan_application
from demos import vendor_onboarding as demo_vendor_onboarding
from workflows.vendor_onboarding import VendorOnboardingWorkflow

# The agent each demo process asks, and the output it answers with. The test checks that this is
# exactly the set of agents the demo's cases used: a new agent in the demo fails it here first.
AGENT_OUTPUTS = {
    INVOICE_ANALYST: INVOICE_PROPOSAL,
    TRIAGE_AGENT: TRIAGE_PROPOSAL,
    REFUND_ANALYST: REFUND_PROPOSAL,
    INCOME_READER: INCOME_READING,
    LEAD_ANALYST: LEAD_READ,
    DOCUMENT_CHECKER: DOCUMENT_EXTRACTION,
    CLAIMS_COORDINATOR: CLAIM_PROPOSAL,
    IDENTITY_READER: IDENTITY_READING,
    INVESTIGATOR: REVIEW_DRAFT,
}
# Specialists answer through the server too; their spend is their coordinator's.
SPECIALIST_OUTPUTS = {agent.name: agent.output for agent in CLAIM_SPECIALISTS}
TOKEN = re.compile(r"\[\[([A-Z_]+):[0-9a-f]{8}\]\]")
# Kinds whose values are often written with spaces ("DE89 3704 ..."), scanned without them too.
SPACED_KINDS = {"BANK_ACCOUNT", "IBAN", "CARD", "PHONE"}
# The kinds of token the demo's agents are given: the invoice's supplier bank account, the
# vendor documents' IBANs and tax IDs (free text), the lead's contact name.
EXPECTED_TOKEN_KINDS = {"BANK_ACCOUNT", "IBAN", "TAX_ID", "PERSON"}


@dataclass
class MaskedDemo:
    stack: Stack
    server: ScriptedLlmServer
    responder: StandInResponder
    sandbox: dict[str, Any]
    """Every collection the sandbox lists, by path, as it stands after the demo."""
    trails: dict[str, list[dict[str, Any]]]
    """The audit trail of every case the demo ran, and of each case's agent region."""


@pytest.fixture(scope="module")
def masked_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MaskedDemo]:
    home = tmp_path_factory.mktemp("masking-demo") / "casework"
    responder = StandInResponder([*AGENT_OUTPUTS.values(), *SPECIALIST_OUTPUTS.values()])
    with scripted_llm_server() as server:
        server.responder = responder
        model_env = {
            "CASEWORK_MODEL": SCRIPTED_MODEL,
            "CASEWORK_LLM_API_BASE": server.base_url,
            "CASEWORK_LLM_API_KEY": SCRIPTED_API_KEY,
        }
        with embedded_stack(home, "casework-masking-demo-test", model_env) as stack:
            # Exit 0 means every case reached the outcome its scenario expects.
            stack.demo_stdout = stack.run("demo", timeout=600).stdout
            yield MaskedDemo(
                stack=stack,
                server=server,
                responder=responder,
                sandbox=_sandbox_collections(stack.sandbox_url),
                trails=_trails(stack),
            )


def _sandbox_collections(base_url: str) -> dict[str, Any]:
    """GET every path of the sandbox's API that lists records without needing a parameter."""
    with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as http:
        spec = http.get("/openapi.json").raise_for_status().json()
        paths = [
            path
            for path, operations in spec["paths"].items()
            if "get" in operations
            and "{" not in path
            and not any(p.get("required") for p in operations["get"].get("parameters", []))
        ]
        return {path: http.get(path).raise_for_status().json() for path in paths}


def _trails(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    case_ids = [row["case"] for row in demo_table(stack.demo_stdout)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        trails = dict(zip(case_ids, pool.map(stack.audit, case_ids), strict=True))
    regions = [
        f"{case_id}-agent"
        for case_id, trail in trails.items()
        if any(event["kind"] == "agent_region_ended" for event in trail)
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        trails |= dict(zip(regions, pool.map(stack.audit, regions), strict=True))
    return trails


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value: keys, values, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def sensitive_values(records: Any, policy: MaskingPolicy) -> set[tuple[str, str]]:
    """(kind, value) of every value the masking policy says must not reach a model: those of the
    fields it names, and the matches of its free-text patterns, anywhere in ``records``."""
    kind_of_field = {
        field.lower(): kind for kind, fields in policy.fields.items() for field in fields
    }
    found: set[tuple[str, str]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                kind = kind_of_field.get(str(key).lower())
                text = str(item).strip() if isinstance(item, str | int) else ""
                if kind and not isinstance(item, bool) and len(text) >= policy.min_length:
                    found.add((kind, text))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            for name in policy.patterns:
                kind, pattern, valid = PATTERNS[name]
                found.update(
                    (kind, m.group(0)) for m in pattern.finditer(value) if valid(m.group(0))
                )

    walk(records)
    return found


def _model_usages(trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event["data"]["model_usage"] for event in trail if event["data"].get("model_usage")]


def test_every_agent_of_the_demo_answers_through_the_scripted_server(
    masked_demo: MaskedDemo,
) -> None:
    stack, responder = masked_demo.stack, masked_demo.responder
    report = json.loads(stack.run("report", "--json").stdout)
    assert set(report["cases_by_process"]) == set(discover().processes), report["cases_by_process"]
    assert responder.unmatched == []

    # Every model call the cases paid for went to the scripted model, none to the stand-in...
    models: dict[str, set[str]] = defaultdict(set)
    for case_id, trail in masked_demo.trails.items():
        if case_id.endswith("-agent"):
            continue  # the region's calls are in its parent's agent_region_ended
        for usage in _model_usages(trail):
            models[usage["agent"]] |= set(usage["models"])
    assert models == {agent: {SCRIPTED_MODEL} for agent in AGENT_OUTPUTS}
    # ... the server answered each agent's output, and every request it got was such a call.
    assert {answer.output for answer in responder.answers} == {
        *AGENT_OUTPUTS.values(),
        *SPECIALIST_OUTPUTS.values(),
    }
    requests = masked_demo.server.requests
    assert len(responder.answers) == len(requests) == report["model_usage"]["model_calls"]
    assert {request["model"] for request in requests} == {SCRIPTED_MODEL.split("/", 1)[1]}


def test_no_request_to_the_model_carries_a_sensitive_value(masked_demo: MaskedDemo) -> None:
    policy = load_masking_policy()
    sensitive = sensitive_values(masked_demo.sandbox, policy)
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, value in sensitive:
        by_kind[kind].add(value)
    # The scan looks for what the demo seeded (a check on the collection, not on masking).
    seeded = {
        demo_invoice_exception.SUPPLIER["bank_account"],
        *(scenario.facts.iban for scenario in demo_vendor_onboarding.SCENARIOS),
        *(scenario.facts.full_name for scenario in demo_loan_application.SCENARIOS),
        *(scenario.facts.contact for scenario in demo_lead_routing.SCENARIOS),
    }
    assert seeded <= {value for _, value in sensitive}, seeded - {v for _, v in sensitive}
    assert {"BANK_ACCOUNT", "TAX_ID", "PERSON", "EMAIL"} <= set(by_kind), sorted(by_kind)

    requests = masked_demo.server.requests
    assert requests
    leaks = []
    for index, body in enumerate(requests):
        texts = [text.casefold() for text in _strings(body)]
        compact = [re.sub(r"\s+", "", text) for text in texts]
        for kind, value in sorted(sensitive):
            folded = value.casefold()
            if any(folded in text for text in texts) or (
                kind in SPACED_KINDS and any(re.sub(r"\s+", "", folded) in text for text in compact)
            ):
                leaks.append((index, kind, value))
    assert leaks == [], f"sensitive values sent to the model (request, kind, value): {leaks}"

    # Not vacuous: the values were in the requests, as tokens.
    sent = {match.group(1) for match in TOKEN.finditer(json.dumps(requests))}
    assert sent >= EXPECTED_TOKEN_KINDS, sorted(sent)


def test_tokens_the_model_answers_with_reach_the_cases_as_real_values(
    masked_demo: MaskedDemo,
) -> None:
    # The document checker reads IBANs and tax IDs as tokens and answers with them; the vendor
    # case gets the real values, which its policy compares with the application.
    applications = {
        application["application_id"]: application
        for application in masked_demo.sandbox["/vendors/applications"]
    }
    checked = 0
    for answer in masked_demo.responder.answers:
        if answer.output != DOCUMENT_EXTRACTION:
            continue
        document_id = case_data(answer.body)["document"]["document_id"]
        (application_id,) = [a for a in applications if document_id.startswith(f"{a}-")]
        application = applications[application_id]
        extraction = json.loads(answer.reply.content or "")
        (proposal,) = [
            event["data"]["proposal"]
            for event in masked_demo.trails[VendorOnboardingWorkflow.case_id(application_id)]
            if event["kind"] == "agent_proposal" and event["data"]["document_id"] == document_id
        ]
        for field, applied in (("iban", "bank_account"), ("tax_id", "tax_id")):
            if extraction[field] is None:
                continue
            assert TOKEN.fullmatch(extraction[field]), (document_id, extraction)
            assert application[applied] not in json.dumps(answer.body)
            assert proposal[field] == application[applied], (document_id, proposal)
            checked += 1
    assert checked >= 2 * len(demo_vendor_onboarding.SCENARIOS)

    # No token was left in what the cases recorded or wrote to the systems they work on.
    assert not TOKEN.search(json.dumps(masked_demo.trails))
    assert not TOKEN.search(json.dumps(masked_demo.sandbox))
