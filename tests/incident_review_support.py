"""Helpers for the incident-review tests and histories.

``FakeIncidentSystems`` fakes the service desk (tickets, CMDB, follow-ups), the log store, the
outbox and the investigator's model by activity name (``casework.testing.fakes``), for the
workflow tests on the time-skipping server and for recording replay histories; the integration
tests run the real activities against the real sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.exceptions import ApplicationError

from activities.deployments import DeploymentsLookup, DeploymentsRepository
from activities.itsm import ConfigurationItem, SimilarTicket, SimilarTicketSearch, Ticket
from activities.itsm_followups import FollowUpCancellation, FollowUpRequest, FollowUpTask
from activities.logs import LogEntry, LogEntryLookup, LogSearch
from casework.agents.messages import (
    McpCallRequest,
    McpCallResult,
    McpToolInfo,
    McpToolList,
    McpToolsRequest,
)
from casework.testing.fakes import Ledger, fake, not_found
from tests.triage_support import FakeItsm

INCIDENT_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CHECKOUT = ConfigurationItem(
    ci_id="checkout-api",
    name="checkout API",
    kind="service",
    owner_team="payments-ops",
    oncall="ivy",
    criticality="critical",
)


def incident(ticket_id: str, **fields: object) -> Ticket:
    return Ticket(
        ticket_id=ticket_id,
        title="Checkout API down: all payments failing",
        description="Every checkout since 09:00 fails with a 500.",
        requester="erin",
        ci_id=CHECKOUT.ci_id,
        category="software",
        severity=1,
        status="assigned",
        team="major-incidents",
        created_at=(INCIDENT_AT + timedelta(minutes=4)).isoformat(),
        **fields,
    )


def checkout_logs() -> list[LogEntry]:
    lines = [
        (-30, "INFO", "deployed checkout-api 4.2.0"),
        (-1, "WARN", "payment gateway latency 2400ms"),
        (0, "ERROR", "NullPointerException in CurrencyFormatter.format: currency is null"),
        (2, "ERROR", "500 on POST /checkout: CurrencyFormatter failed"),
    ]
    return [
        LogEntry(
            entry_id=f"LOG-{index:06d}",
            service=CHECKOUT.ci_id,
            at=INCIDENT_AT + timedelta(minutes=minutes),
            level=level,
            message=message,
        )
        for index, (minutes, level, message) in enumerate(lines, start=1)
    ] + [
        LogEntry(
            entry_id="LOG-000099",
            service="search-api",
            at=INCIDENT_AT,
            level="ERROR",
            message="index shard unavailable",
        )
    ]


DEPLOY_SHA = "4f1c2e9a7b3d5c6e8f0a1b2c3d4e5f60718293a4"
DEPLOYMENTS = "/srv/deployments"
REPO_PATH = {"repo_path": {"type": "string"}}
GIT_TOOLS = [
    McpToolInfo(
        name="git_log",
        description="Shows the commit logs",
        input_schema={
            "type": "object",
            "properties": REPO_PATH | {"max_count": {"type": "integer"}},
            "required": ["repo_path"],
        },
        read_only_hint=True,
    ),
    McpToolInfo(
        name="git_show",
        description="Shows the contents of a commit",
        input_schema={
            "type": "object",
            "properties": REPO_PATH | {"revision": {"type": "string"}},
            "required": ["repo_path", "revision"],
        },
        read_only_hint=True,
    ),
    McpToolInfo(
        name="git_commit",
        description="Records changes to the repository",
        input_schema={"type": "object", "properties": REPO_PATH},
        read_only_hint=False,
    ),
]


def deploy_commits() -> dict[str, str]:
    """The deployments repository, in memory, as the git MCP server would read it: SHA ->
    subject, newest first."""
    return {DEPLOY_SHA: "deploy checkout-api 4.2.0: format amounts with CurrencyFormatter"}


@dataclass
class FakeIncidentSystems(FakeItsm):
    """The service desk with follow-ups, the log store, the outbox and the model, in memory."""

    logs: list[LogEntry] = field(default_factory=checkout_logs)
    similar: list[SimilarTicket] = field(default_factory=list)
    follow_ups: Ledger[FollowUpTask] = field(default_factory=Ledger)
    cancelled: list[str] = field(default_factory=list)
    commits: dict[str, str] = field(default_factory=deploy_commits)

    @fake("deployments.locate")
    async def locate(self, lookup: DeploymentsLookup) -> DeploymentsRepository:
        return DeploymentsRepository(path=DEPLOYMENTS, exists=True, command=lookup.command)

    @fake("mcp.list_tools")
    async def list_tools(self, request: McpToolsRequest) -> McpToolList:
        return McpToolList(server="git", tools=GIT_TOOLS)

    @fake("mcp.call_tool")
    async def call_tool(self, request: McpCallRequest) -> McpCallResult:
        """The git MCP server's git_log and git_show, in their own text formats."""
        if request.arguments.get("repo_path") != DEPLOYMENTS:
            return McpCallResult(is_error=True, content="outside the allowed repository")
        if request.tool == "git_log":
            return McpCallResult(
                is_error=False,
                content="Commit history:\n"
                + "\n".join(
                    f"Commit: {sha}\nAuthor: release-bot\nDate: 2026-11-30\nMessage: {subject}\n"
                    for sha, subject in self.commits.items()
                ),
            )
        revision = str(request.arguments.get("revision", ""))
        matches = [sha for sha in self.commits if sha.startswith(revision)]
        if request.tool != "git_show" or len(matches) != 1:
            return McpCallResult(is_error=True, content=f"unknown revision {revision}")
        return McpCallResult(
            is_error=False,
            content=f"commit {matches[0]}\nAuthor: release-bot <r@example.com>\n"
            f"Date:   2026-11-30 08:48:00 +0000\n\n    {self.commits[matches[0]]}\n",
        )

    @fake("logs.search")
    async def search_logs(self, search: LogSearch) -> list[LogEntry]:
        levels = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        wanted = levels[levels.index(search.min_level) :]
        return [
            line for line in self.logs if line.service == search.service and line.level in wanted
        ][: search.limit]

    @fake("logs.get_entry")
    async def get_log_entry(self, lookup: LogEntryLookup) -> LogEntry:
        for line in self.logs:
            if line.entry_id == lookup.entry_id:
                return line
        raise not_found(f"log entry {lookup.entry_id}")

    @fake("itsm.find_similar_tickets")
    async def find_similar_tickets(self, search: SimilarTicketSearch) -> list[SimilarTicket]:
        return self.similar[: search.limit]

    @fake("itsm.create_follow_up")
    async def create_follow_up(self, request: FollowUpRequest) -> FollowUpTask:
        if request.incident_id not in self.tickets:
            raise not_found(f"incident {request.incident_id}")
        return self.follow_ups.once(
            request.idempotency_key,
            lambda number: FollowUpTask(
                task_id=f"FUP-{number:06d}",
                incident_id=request.incident_id,
                title=request.title,
                owner=request.owner,
                due_in_days=request.due_in_days,
                status="open",
            ),
        )

    @fake("itsm.cancel_follow_up")
    async def cancel_follow_up(self, cancellation: FollowUpCancellation) -> FollowUpTask:
        for key, task in self.follow_ups.items():
            if task.task_id == cancellation.task_id:
                self.cancelled.append(task.task_id)
                self.follow_ups[key] = task.model_copy(update={"status": "cancelled"})
                return self.follow_ups[key]
        raise not_found(f"follow-up task {cancellation.task_id}")

    def open_follow_ups(self) -> list[FollowUpTask]:
        return [task for task in self.follow_ups.values() if task.status == "open"]


def linking_fails() -> ApplicationError:
    return ApplicationError("the incident is locked", type="RequestRejected", non_retryable=True)
