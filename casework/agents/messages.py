"""What a workflow sends to an agent activity and gets back. Free of litellm, so workflows may
import it; the activity itself lives in ``casework.activities.llm``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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


class AgentResult(BaseModel):
    output: dict[str, Any]
    usage: AgentUsage
