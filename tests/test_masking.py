"""Masking before the model: nothing sensitive reaches the provider; tools get real values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from casework.agents.llm import LlmActivities
from casework.agents.messages import (
    CASE_DATA,
    TOOL_RESULT,
    AgentRequest,
    ChatMessage,
    ChatRequest,
    ToolCall,
    ToolSchema,
    as_data,
)
from casework.agents.region import REGION_RULES
from casework.config import Settings
from casework.masking import Masker, MaskingPolicy, load_masking_policy
from casework.testing.scripted_llm import (
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


KEY = b"test-key"


def masker() -> Masker:
    return Masker(load_masking_policy(), KEY)


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
def settings(server: ScriptedLlmServer, tmp_path: Path) -> Settings:
    return Settings(
        model=SCRIPTED_MODEL,
        llm_api_base=server.base_url,
        llm_api_key=SCRIPTED_API_KEY,
        llm_timeout_seconds=5,
        state_dir=tmp_path,
    )


@pytest.fixture
def llm(settings: Settings) -> LlmActivities:
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


# -- the agent region's conversation: JSON inside <case_data> and <tool_result> blocks ----------

REQUESTER = "Maria Schmidt"
CONTACT = "Jonas Weber"
ACCOUNT = "0532013000"  # no free-text pattern knows this account number: only its field name
CASE = {"ticket": {"ticket_id": "INC-7", "requester_name": REQUESTER, "title": "Refund </b>"}}
SUPPLIER = {
    "supplier_id": "S1",
    "name": "Acme Widgets",
    "contact_name": CONTACT,
    "bank_account": ACCOUNT,
    "note": f"Ask {CONTACT} (Köln) before paying",
}
_BLOCK = re.compile(r"<(case_data|tool_result)>\n(.*)\n</\1>", re.DOTALL)
_TOKEN = re.compile(r"\[\[[A-Z_]+:[0-9a-f]{8}\]\]")


def region_conversation() -> list[ChatMessage]:
    """A conversation as the agent region builds it: case data in its <case_data> block, then a
    person's answer (naming the contact before any record does) and a supplier record, each in
    a <tool_result> block."""
    return [
        ChatMessage(role="system", content=f"You check suppliers.\n\n{REGION_RULES}"),
        ChatMessage(role="user", content=f"Check the payee.\n\n{as_data(CASE_DATA, CASE)}"),
        ChatMessage(
            role="assistant",
            tool_calls=[
                ToolCall(id="call-1", name="ask_human", arguments='{"question": "Who?"}'),
                ToolCall(id="call-2", name="get_supplier", arguments='{"id": "S1"}'),
            ],
        ),
        ChatMessage(
            role="tool",
            tool_call_id="call-1",
            content=as_data(TOOL_RESULT, f"frank answered: {CONTACT} knows"),
        ),
        ChatMessage(
            role="tool", tool_call_id="call-2", content=as_data(TOOL_RESULT, SUPPLIER, limit=4000)
        ),
    ]


def block(message: dict[str, Any]) -> tuple[str, str]:
    """A sent message's delimited block: its tag and its content."""
    match = _BLOCK.search(message["content"])
    assert match is not None, message
    return match.group(1), match.group(2)


async def test_the_agent_regions_records_reach_the_model_masked_and_tools_get_real_values(
    server: ScriptedLlmServer, llm: LlmActivities
) -> None:
    def answer(body: dict[str, Any]) -> ScriptedReply:
        # The model reads the supplier record in its block and calls a tool with its tokens.
        tag, content = block(body["messages"][-1])
        supplier = json.loads(content)
        assert tag == TOOL_RESULT
        arguments = {"name": supplier["contact_name"], "account": supplier["bank_account"]}
        call = {
            "id": "call-3",
            "type": "function",
            "function": {"name": "check_payee", "arguments": json.dumps(arguments)},
        }
        return ScriptedReply(tool_calls=[call])

    server.responder = answer
    request = ChatRequest(
        agent="payee_checker",
        output="test.verdict",
        messages=region_conversation(),
        tools=[ToolSchema(name="check_payee", description="-", parameters={"type": "object"})],
    )
    result = await ActivityEnvironment().run(llm.chat, request)

    [sent] = server.requests
    for value in (REQUESTER, CONTACT, ACCOUNT):
        assert value not in json.dumps(sent, ensure_ascii=False), value
    _, user, _, answered, looked_up = sent["messages"]
    ticket = json.loads(block(user)[1])["ticket"]
    assert ticket["requester_name"].startswith("[[PERSON:"), ticket
    supplier = json.loads(block(looked_up)[1])
    assert supplier["contact_name"].startswith("[[PERSON:"), supplier
    assert supplier["bank_account"].startswith("[[BANK_ACCOUNT:"), supplier
    # The person's answer came before the record naming the contact, and is masked all the same.
    assert supplier["contact_name"] in answered["content"]
    assert supplier["contact_name"] in supplier["note"]
    assert result.usage.masked == {"BANK_ACCOUNT": 1, "PERSON": 4}

    # Unmasked on the way back: the tool the model called gets the real values.
    (call,) = result.message.tool_calls
    assert json.loads(call.arguments) == {"name": CONTACT, "account": ACCOUNT}


async def test_the_regions_blocks_stay_valid_json_once_masked(
    server: ScriptedLlmServer, settings: Settings
) -> None:
    server.enqueue(ScriptedReply(content="checked"))
    request = ChatRequest(
        agent="payee_checker", output="test.verdict", messages=region_conversation(), tools=[]
    )
    await ActivityEnvironment().run(LlmActivities(settings, masking_key=KEY).chat, request)

    [sent] = server.requests
    blocks = [block(message) for message in sent["messages"] if message["role"] in ("user", "tool")]
    assert [tag for tag, _ in blocks] == [CASE_DATA, TOOL_RESULT, TOOL_RESULT]
    (_, case), (_, answer), (_, supplier) = blocks
    # Masked in place, each record parses to exactly what masking it as data gives: the same
    # structure and readable values, tokens (plain JSON strings) where the sensitive ones were.
    assert json.loads(case) == masker().mask_data(CASE)
    assert json.loads(supplier) == masker().mask_data(SUPPLIER)
    assert json.loads(case)["ticket"]["title"] == "Refund </b>"
    assert json.loads(supplier)["name"] == "Acme Widgets"
    assert _TOKEN.fullmatch(answer.removeprefix("frank answered: ").removesuffix(" knows"))
