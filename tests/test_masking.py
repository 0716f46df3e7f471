"""Masking before the model: nothing sensitive reaches the provider; tools get real values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from casework.activities.llm import LlmActivities
from casework.agents.messages import AgentRequest, ChatMessage, ChatRequest, ToolCall, ToolSchema
from casework.config import Settings
from casework.masking import Masker, MaskingPolicy, load_masking_policy
from tests.scripted_llm import (
    SCRIPTED_API_KEY,
    SCRIPTED_MODEL,
    ScriptedLlmServer,
    ScriptedReply,
    scripted_llm_server,
)
from tests.test_llm_activity import Verdict  # noqa: F401 - registers the test.verdict output

IBAN = "DE89 3704 0044 0532 0130 00"
CARD = "4111 1111 1111 1111"
SENSITIVE = {
    "supplier": {
        "name": "Acme Widgets",
        "bank_account": "NL91ABNA0417164300",
        "tax_id": "DE123456789",
    },
    "contact_name": "Maria Schmidt",
    "note": f"Maria Schmidt asks to pay to {IBAN}, card {CARD}, mail maria@acme.example",
}
VALUES = ["NL91ABNA0417164300", "DE123456789", "Maria Schmidt", IBAN, CARD, "maria@acme.example"]


def masker() -> Masker:
    return Masker(load_masking_policy(), b"test-key")


def test_fields_and_free_text_are_masked_with_stable_tokens() -> None:
    m = masker()
    masked = json.dumps(m.mask_data(SENSITIVE))
    for value in VALUES:
        assert value not in masked, value
    assert "Acme Widgets" in masked  # a company name is not a person's
    again = masker().mask_data(SENSITIVE)
    assert json.dumps(again) == masked  # same key, same tokens: stable across calls
    assert m.report().masked == {
        "BANK_ACCOUNT": 1,
        "CARD": 1,
        "EMAIL": 1,
        "IBAN": 1,
        "PERSON": 2,
        "TAX_ID": 1,
    }
    assert m.unmask_data(json.loads(masked)) == SENSITIVE


def test_checksums_keep_ordinary_numbers_readable() -> None:
    m = masker()
    text = "PO 4111 1111 1111 1112, IBAN-like DE00 1234 5678 9012, 25.00 EUR"
    assert m.mask_text(text) == text
    assert m.report().masked == {}


def test_unmasking_json_arguments_keeps_them_valid() -> None:
    m = masker()
    m.learn({"customer_name": 'Anna "Annie" Berg'})
    token = m.mask_text('Anna "Annie" Berg')
    arguments = json.dumps({"name": token})
    assert json.loads(m.unmask_json_text(arguments)) == {"name": 'Anna "Annie" Berg'}


def test_a_masking_policy_with_an_unknown_pattern_is_refused() -> None:
    policy = load_masking_policy().model_copy(update={"patterns": ["iban", "passport"]})
    with pytest.raises(ValueError, match="unknown patterns: \\['passport'\\]"):
        Masker(policy, b"k")
    assert isinstance(policy, MaskingPolicy)


@pytest.fixture
def server() -> Iterator[ScriptedLlmServer]:
    with scripted_llm_server() as server:
        yield server


@pytest.fixture
def llm(server: ScriptedLlmServer, tmp_path: Path) -> LlmActivities:
    settings = Settings(
        model=SCRIPTED_MODEL,
        llm_api_base=server.base_url,
        llm_api_key=SCRIPTED_API_KEY,
        llm_timeout_seconds=5,
        state_dir=tmp_path,
    )
    return LlmActivities(settings)


async def test_the_provider_never_sees_the_values_and_the_answer_gets_them_back(
    server: ScriptedLlmServer, llm: LlmActivities
) -> None:
    def answer(body: dict) -> ScriptedReply:
        # The model refers to the person by the token it was given.
        token = re.search(r"\[\[PERSON:[0-9a-f]{8}\]\]", json.dumps(body))
        assert token is not None
        return ScriptedReply(
            content=json.dumps({"decision": "reject", "reason": f"{token.group(0)} unverified"})
        )

    server.responder = answer
    request = AgentRequest(
        agent="invoice_analyst",
        output="test.verdict",
        system_prompt="You review supplier invoices.",
        task="Decide.",
        context=SENSITIVE,
    )
    result = await ActivityEnvironment().run(llm.propose, request)

    sent = json.dumps(server.requests)
    for value in VALUES:
        assert value not in sent, value
    assert result.output["reason"] == "Maria Schmidt unverified"
    assert result.usage.masked["PERSON"] >= 1 and result.usage.masked["IBAN"] == 1


async def test_a_tool_called_with_a_token_receives_the_real_value(
    server: ScriptedLlmServer, llm: LlmActivities
) -> None:
    def answer(body: dict) -> ScriptedReply:
        tool_result = body["messages"][-1]["content"]
        token = json.loads(tool_result)["bank_account"]
        assert token.startswith("[[BANK_ACCOUNT:")
        call = {
            "id": "call-1",
            "type": "function",
            "function": {"name": "check_account", "arguments": json.dumps({"account": token})},
        }
        return ScriptedReply(tool_calls=[call])

    server.responder = answer
    request = ChatRequest(
        agent="triage",
        output="test.verdict",
        messages=[
            ChatMessage(role="system", content="Check the supplier's bank account."),
            ChatMessage(
                role="assistant",
                tool_calls=[ToolCall(id="call-0", name="get_supplier", arguments='{"id": "S1"}')],
            ),
            ChatMessage(
                role="tool",
                tool_call_id="call-0",
                content=json.dumps({"supplier_id": "S1", "bank_account": "NL91ABNA0417164300"}),
            ),
        ],
        tools=[ToolSchema(name="check_account", description="-", parameters={"type": "object"})],
    )
    result = await ActivityEnvironment().run(llm.chat, request)

    assert "NL91ABNA0417164300" not in json.dumps(server.requests)
    (call,) = result.message.tool_calls
    assert json.loads(call.arguments) == {"account": "NL91ABNA0417164300"}
