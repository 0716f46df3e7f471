"""Service desk (ITSM) tools: tickets, the configuration database and the knowledge base.

The read-only activities are the tools an agent may call while triaging a ticket; their input
models become the tool schemas, so every field is described and unexpected arguments are refused.
The writes change a ticket and are for workflows only, never offered to agents: each carries an
idempotency key, so a retried write changes the ticket once.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from temporalio import activity

from casework.systems.base import SystemActivities, read_only_tool
from casework.systems.http import call
from casework.systems.records import Record


class TicketComment(Record):
    author: str
    body: str
    at: str


class TicketHistoryEntry(Record):
    action: str
    detail: str = ""
    at: str


class Ticket(Record):
    ticket_id: str
    title: str
    description: str = ""
    requester: str
    ci_id: str | None = None
    category: str | None = None
    severity: int | None = None  # 1 is the most severe, 4 the least
    status: str  # "new", "assigned" or "resolved"
    team: str | None = None
    assignee: str | None = None
    resolution: str | None = None
    kb_article_id: str | None = None
    comments: list[TicketComment] = Field(default_factory=list)
    history: list[TicketHistoryEntry] = Field(default_factory=list)
    created_at: str | None = None


class SimilarTicket(Record):
    ticket_id: str
    title: str
    status: str
    category: str | None = None
    resolution: str | None = None
    kb_article_id: str | None = None
    score: float


class ConfigurationItem(Record):
    ci_id: str
    name: str
    kind: str
    owner_team: str
    oncall: str  # directory user id of the on-call owner
    criticality: str  # "low", "medium", "high" or "critical"


class KbArticle(Record):
    article_id: str
    title: str
    body: str
    category: str
    tags: list[str] = Field(default_factory=list)


class KbHit(Record):
    article_id: str
    title: str
    category: str
    snippet: str = ""
    score: float


# --- read-only tool inputs -------------------------------------------------------------------


class TicketLookup(BaseModel):
    """Fetch one service desk ticket with its comments and history."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(description="Id of the ticket, e.g. INC-1042.")


class ConfigurationItemLookup(BaseModel):
    """Fetch a configuration item (service, server, database...) with its owner team and on-call."""

    model_config = ConfigDict(extra="forbid")

    ci_id: str = Field(description="Id of the configuration item, e.g. the ci_id on a ticket.")


class KnowledgeSearch(BaseModel):
    """Search the knowledge base for articles sharing words with a query, best match first."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=2,
        max_length=200,
        description="Keywords describing the problem, e.g. 'vpn login timeout'.",
    )
    limit: int = Field(5, ge=1, le=10, description="Maximum number of articles to return.")


class KbArticleLookup(BaseModel):
    """Fetch the full text of one knowledge base article."""

    model_config = ConfigDict(extra="forbid")

    article_id: str = Field(description="Id of the article, e.g. from a knowledge base search.")


class SimilarTicketSearch(BaseModel):
    """Find other tickets whose title and description share words with this ticket's."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: str = Field(description="Id of the ticket to find similar tickets for.")
    limit: int = Field(5, ge=1, le=10, description="Maximum number of tickets to return.")


# --- write inputs (workflow only) ------------------------------------------------------------


class TicketClassification(BaseModel):
    ticket_id: str = Field(description="Id of the ticket to classify.")
    category: str = Field(description="Category, e.g. 'network', 'access', 'hardware'.")
    severity: int = Field(ge=1, le=4, description="1 is the most severe, 4 the least.")
    idempotency_key: str = Field(description="Retries with the same key classify once.")


class TicketAssignment(BaseModel):
    ticket_id: str = Field(description="Id of the ticket to assign.")
    team: str = Field(description="Team that takes the ticket over.")
    assignee: str | None = Field(None, description="Person in the team, if one is chosen.")
    note: str | None = Field(None, description="Why the ticket goes to this team.")
    idempotency_key: str = Field(description="Retries with the same key assign once.")


class TicketResolution(BaseModel):
    ticket_id: str = Field(description="Id of the ticket to resolve.")
    resolution: str = Field(description="What was done to resolve the ticket.")
    kb_article_id: str | None = Field(
        None, description="Knowledge base article the resolution follows, if any."
    )
    idempotency_key: str = Field(description="Retries with the same key resolve once.")


class TicketCommentRequest(BaseModel):
    ticket_id: str = Field(description="Id of the ticket to comment on.")
    author: str = Field(description="Who the comment is from.")
    body: str = Field(description="Text of the comment.")
    idempotency_key: str = Field(description="Retries with the same key comment once.")


_kb_hits = TypeAdapter(list[KbHit])
_similar_tickets = TypeAdapter(list[SimilarTicket])


def _segment(record_id: str) -> str:
    # Ids may come from an agent: keep "/", "?" and ".." from steering the request elsewhere.
    return quote(record_id, safe="")


class ItsmActivities(SystemActivities):
    system = "ITSM"

    # --- read-only tools ---------------------------------------------------------------------

    @read_only_tool
    @activity.defn(name="itsm.get_ticket")
    async def get_ticket(self, lookup: TicketLookup) -> Ticket:
        return Ticket.model_validate(
            await call(self._client, "GET", f"/itsm/tickets/{_segment(lookup.ticket_id)}")
        )

    @read_only_tool
    @activity.defn(name="itsm.get_configuration_item")
    async def get_configuration_item(self, lookup: ConfigurationItemLookup) -> ConfigurationItem:
        return ConfigurationItem.model_validate(
            await call(self._client, "GET", f"/itsm/cis/{_segment(lookup.ci_id)}")
        )

    @read_only_tool
    @activity.defn(name="itsm.search_knowledge_base")
    async def search_knowledge_base(self, search: KnowledgeSearch) -> list[KbHit]:
        return _kb_hits.validate_python(
            await call(
                self._client,
                "GET",
                "/itsm/kb/search",
                params={"q": search.query, "limit": str(search.limit)},
            )
        )

    @read_only_tool
    @activity.defn(name="itsm.get_kb_article")
    async def get_kb_article(self, lookup: KbArticleLookup) -> KbArticle:
        return KbArticle.model_validate(
            await call(self._client, "GET", f"/itsm/kb/{_segment(lookup.article_id)}")
        )

    @read_only_tool
    @activity.defn(name="itsm.find_similar_tickets")
    async def find_similar_tickets(self, search: SimilarTicketSearch) -> list[SimilarTicket]:
        return _similar_tickets.validate_python(
            await call(
                self._client,
                "GET",
                f"/itsm/tickets/{_segment(search.ticket_id)}/similar",
                params={"limit": str(search.limit)},
            )
        )

    # --- writes (workflow only) --------------------------------------------------------------

    async def _write(self, path: str, ticket_id: str, request: BaseModel, key: str) -> Ticket:
        return Ticket.model_validate(
            await call(
                self._client,
                "POST",
                f"/itsm/tickets/{_segment(ticket_id)}/{path}",
                json=request.model_dump(mode="json", exclude={"ticket_id", "idempotency_key"}),
                idempotency_key=key,
            )
        )

    @activity.defn(name="itsm.classify_ticket")
    async def classify_ticket(self, change: TicketClassification) -> Ticket:
        return await self._write("classify", change.ticket_id, change, change.idempotency_key)

    @activity.defn(name="itsm.assign_ticket")
    async def assign_ticket(self, change: TicketAssignment) -> Ticket:
        return await self._write("assign", change.ticket_id, change, change.idempotency_key)

    @activity.defn(name="itsm.resolve_ticket")
    async def resolve_ticket(self, change: TicketResolution) -> Ticket:
        return await self._write("resolve", change.ticket_id, change, change.idempotency_key)

    @activity.defn(name="itsm.comment_on_ticket")
    async def comment_on_ticket(self, comment: TicketCommentRequest) -> Ticket:
        return await self._write("comments", comment.ticket_id, comment, comment.idempotency_key)
