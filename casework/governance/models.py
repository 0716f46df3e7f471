"""Typed policy documents. Pure pydantic: safe to import from workflow code."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, NamedTuple, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """Accept policy-friendly durations such as ``30m``, ``24h`` or ``2d``."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class PolicyModel(BaseModel):
    # A typo in a policy key must fail loudly rather than silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_id: ClassVar[str]
    """Set on a policy *document's* model: the document (``<policy_id>.yaml``) it validates. A
    case loads it by its model (``CaseWorkflow.load_governance``), and the worker checks every
    document against its model before it starts."""


PolicyT = TypeVar("PolicyT", bound=PolicyModel)

_PARSED: dict[tuple[type[PolicyModel], str], PolicyModel] = {}
_PARSED_LOCK = threading.Lock()
"""Workflow activations run on several threads of the worker."""
PARSED_LIMIT = 256
"""Distinct documents a worker keeps parsed; far more than the versions in use at once."""


def parsed_once(model: type[PolicyT], content: dict[str, Any]) -> PolicyT:
    """``content`` as ``model``, parsed once per worker and shared by every case deciding under
    the same document: a waiting case then holds a reference to its policy and directory
    instead of a copy of each (the directory, with its users' public keys, is ~26 KiB). Safe
    to share because policy models are frozen and identical content parses identically."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    key = (model, digest)
    with _PARSED_LOCK:
        found = _PARSED.get(key)
    if found is not None:
        return found  # type: ignore[return-value]
    document = model.model_validate(content)
    with _PARSED_LOCK:
        if len(_PARSED) >= PARSED_LIMIT:
            _PARSED.pop(next(iter(_PARSED)))
        return _PARSED.setdefault(key, document)  # type: ignore[return-value]


class PolicyRef(PolicyModel):
    """Identifies exactly which policy text a decision was made under."""

    id: str
    version: int
    sha256: str

    def __str__(self) -> str:
        return f"{self.id} v{self.version} ({self.sha256[:12]})"


class ApprovalTier(PolicyModel):
    role: str
    max_amount: Decimal | None
    """None: no upper bound."""
    sla: Duration


class Escalation(PolicyModel):
    to_next_tier_on_sla: bool = True


class FinalTimeout(PolicyModel):
    """What happens when no tier decided in time: the case goes on hold and these roles hear."""

    notify_roles: list[str] = []


class SegregationOfDuties(PolicyModel):
    submitter_may_approve: bool = False


CURRENCY_CODE = r"^[A-Z]{3}$"


class TierLadder(NamedTuple):
    """Approval tiers that route by amount, where a policy holds them."""

    field: str
    """Where in the policy, e.g. ``approval_tiers``: problems name it."""
    tiers: list[ApprovalTier]
    ceiling: Decimal | None = None
    """No case reaches these tiers above this (the policy rejects larger amounts)."""


class ApprovalPolicy(PolicyModel):
    """A policy whose cases open approval tasks: it says whether a case's submitter may decide
    them (``CaseWorkflow.load_governance`` applies it) and which currency its amounts are in."""

    segregation_of_duties: SegregationOfDuties = SegregationOfDuties()
    currency: str | None = Field(default=None, pattern=CURRENCY_CODE)
    """The currency of every amount the policy states (thresholds, ceilings, tiers). Nothing is
    converted: a case in another currency goes to a person (``evaluator.foreign_currency``).
    None only in documents written before policies named one, which running cases replay: their
    amounts then apply in any currency, as they did. The worker refuses to start on a policy
    with amount tiers that names none (``registry.policy_problems``)."""

    def amount_ladders(self) -> list[TierLadder]:
        """The policy's tiers that route by amount: the worker refuses a policy under which some
        amount reaches only people whose approval limits do not cover it."""
        return []


class TieredApprovalPolicy(ApprovalPolicy):
    """A policy whose cases go, by amount, to approval tiers that escalate when their SLA
    passes, and finally time out (``CaseWorkflow.request_approval``, ``put_on_hold``)."""

    approval_tiers: list[ApprovalTier] = Field(min_length=1)
    escalation: Escalation = Escalation()
    final_timeout: FinalTimeout = FinalTimeout()

    def amount_ladders(self) -> list[TierLadder]:
        return [TierLadder("approval_tiers", self.approval_tiers)]


class AgentSettings(PolicyModel):
    model: str | None = None
    fallback_models: list[str] = []
    max_tokens: int | None = None


class AgentBudget(PolicyModel):
    """Hard limits for one agent region; reaching any ends it as ``budget_exhausted``."""

    max_model_calls: int = Field(default=10, ge=1)
    max_tool_calls: int = Field(default=20, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    off_rail_repeats: int = Field(default=2, ge=2)
    """The same tool call (tool and arguments) asked for this many times ends the region
    ``off_rail``, before the repeat runs."""
    off_rail_no_news: int = Field(default=3, ge=2)
    """This many tool calls in a row that return only results already seen end it ``off_rail``."""


class McpServerSettings(PolicyModel):
    """An MCP server an agent's tools may come from (``casework.agents.mcp``): a command the
    worker runs over stdio, or a streamable-HTTP URL. Only tools the server marks read-only
    (``readOnlyHint``), or that ``read_only`` declares so, may be allowed."""

    command: str | None = None
    args: list[str] = []
    url: str | None = None
    """``${NAME}`` is replaced by the worker's environment variable NAME (its sandbox URL, say):
    where a server lives is the deployment's business, not the policy's."""
    headers_from_env: dict[str, str] = {}
    """HTTP header -> the worker's environment variable holding its value (a token never sits
    in a policy)."""
    allowed_tools: list[str] = Field(min_length=1)
    """The server's tools this agent may call, by the server's names for them."""
    read_only: list[str] = []
    """Tools the policy vouches are read-only although the server does not say so."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give an MCP server either command (stdio) or url (streamable HTTP)")
        return self


class RegionAgentSettings(PolicyModel):
    """A tool-calling agent: which model, which read-only tools, who answers it, its budget."""

    model: str | None = None
    fallback_models: list[str] = []
    allowed_tools: list[str]
    human_roles: list[str] = []
    human_sla: Duration = timedelta(hours=4)
    budget: AgentBudget = AgentBudget()
    max_tokens_per_call: int | None = None
    specialists: list[str] = []
    """Other agents of this policy this one may delegate to (each with its own settings)."""
    handoffs: list[str] = []
    """Other agents of this policy this one may hand the whole task over to."""
    mcp_servers: dict[str, McpServerSettings] = {}
    """MCP servers, by a name of the policy's choosing, whose allowed tools this agent gets."""


class Role(PolicyModel):
    approval_limit: Decimal | None
    """None: no limit."""
    reads_every_case: bool = False
    """An auditor's role: may read every case in the review queue and the report, though it
    takes part in none (``casework.visibility``). Masking still applies to it."""


class User(PolicyModel):
    name: str
    role: str
    email: str


DIRECTORY_ID = "directory"


class Directory(PolicyModel):
    policy_id: ClassVar[str] = DIRECTORY_ID

    id: str
    version: int
    currency: str | None = Field(default=None, pattern=CURRENCY_CODE)
    """The currency of the approval limits; a limit covers no amount in another one. None only
    in directories written before (their limits cover any currency, as they did); the worker
    refuses to start on one."""
    roles: dict[str, Role]
    users: dict[str, User]
    public_keys: dict[str, str] = {}
    """Each user's Ed25519 decision key (base64). Not written in the document: the
    ``policies.load`` activity adds them from the worker's key file (casework.signing_keys)."""


class PolicyDocument(BaseModel):
    """A policy as loaded from disk: its raw content and the reference that pins it."""

    ref: PolicyRef
    content: dict[str, Any]
