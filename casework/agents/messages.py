"""What a workflow sends to an agent activity and gets back. Free of litellm, so workflows may
import it; the activity itself lives in ``casework.agents.llm``."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel

from casework.governance.models import McpServerSettings

CASE_DATA = "case_data"
"""Tag of the block case data reaches a model in: ``<case_data>...</case_data>``."""
TOOL_RESULT = "tool_result"
"""Tag of the block a tool's result reaches a model in."""
DATA_BLOCK = re.compile(rf"<({CASE_DATA}|{TOOL_RESULT})>\n(.*?)\n</\1>", re.DOTALL)
"""A block written by ``as_data``: group 1 is its tag, group 2 its content (JSON, unless the
content was text or was cut)."""


def as_data(tag: str, value: Any, limit: int | None = None) -> str:
    """Wrap untrusted content in a delimited block the model is told to treat as data."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f" ... [cut: {len(text) - limit} more characters]"
    # "</" is escaped so the content cannot close the block early and pose as instructions.
    escaped = text.replace("</", "<\\/")
    return f"<{tag}>\n{escaped}\n</{tag}>"


class AgentRequest(BaseModel):
    agent: str
    """Which agent is speaking, e.g. ``invoice_analyst``: for logs and the audit trail."""
    output: str
    """Registered agent output name the answer is validated against."""
    system_prompt: str
    """Trusted instructions, from code or policy."""
    task: str
    """Trusted instructions for this call."""
    context: dict[str, Any]
    """Untrusted case data (documents, records, ticket text): delivered as data, never as
    instructions."""
    model: str | None = None
    """Per-agent override from the policy; otherwise ``CASEWORK_MODEL``."""
    fallback_models: list[str] = []
    max_tokens: int | None = None


class AgentUsage(BaseModel):
    model: str
    stand_in: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    attempt: int
    masked: dict[str, int] = {}
    """Sensitive values masked before the call, counted by kind (never the values)."""

    @property
    def label(self) -> str:
        """The model as people read it in the trail and the case's facts."""
        return f"{self.model} (offline stand-in)" if self.stand_in else self.model


class AgentResult(BaseModel):
    output: dict[str, Any]
    usage: AgentUsage


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: str
    """The arguments exactly as the model wrote them: JSON text that may well be malformed."""

    def wire(self) -> dict[str, Any]:
        """The call as OpenAI-compatible APIs write it."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class ChatMessage(BaseModel):
    """One turn of a tool-calling conversation, in the shape OpenAI-compatible APIs use."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None


class ToolSchema(BaseModel):
    """A tool as the model sees it: a name, what it does, and a JSON schema for arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class ChatRequest(BaseModel):
    agent: str
    output: str
    """Registered agent output; its offline stand-in answers when no model is configured."""
    messages: list[ChatMessage]
    """The conversation; with ``continues``, only the messages added since that model call
    (its own messages and its reply are read back from the region's history)."""
    tools: list[ToolSchema]
    """Empty with ``tools_as_before``: the tools of the call this one continues."""
    continues: str | None = None
    """The activity ID of the region's previous model call, whose conversation this one goes on
    with (``casework.agents.llm`` rebuilds it from the history); None: ``messages`` is all."""
    tools_as_before: bool = False
    model: str | None = None
    fallback_models: list[str] = []
    max_tokens: int | None = None


class ChatResult(BaseModel):
    message: ChatMessage
    usage: AgentUsage


# -- MCP tools (the activities are in casework.agents.mcp) ---------------------------------------


class McpToolsRequest(BaseModel):
    server: str
    """The policy's name for the server."""
    settings: McpServerSettings


class McpToolInfo(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only_hint: bool | None
    """What the server says (``readOnlyHint``); None when it says nothing."""


class McpToolList(BaseModel):
    server: str
    tools: list[McpToolInfo]


class McpCallRequest(BaseModel):
    server: str
    settings: McpServerSettings
    tool: str
    arguments: dict[str, Any]


class McpCallResult(BaseModel):
    is_error: bool
    """The server ran the tool and reports it failed (information for the model, as a failed
    lookup is)."""
    content: Any
    """The tool's structured result, or its text (parsed when it is JSON)."""
