"""The ITSM stand-in: a service desk with tickets, a configuration database and a knowledge base.

It is a dumb system of record: titles, descriptions, comments and article bodies are stored and
returned exactly as sent, whatever they say. Similar tickets and knowledge-base hits are ranked
by plain word overlap, so results are deterministic and easy to reason about in tests.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import Field, StringConstraints

from casework.sandbox.models import RecordId, StrictModel, Text
from casework.sandbox.store import (
    Db,
    IdempotencyKey,
    RecordTable,
    columns,
    insert,
    refuse_duplicate,
    utc_now,
)

router = APIRouter(prefix="/itsm", tags=["ITSM"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS itsm_configuration_items (
    ci_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner_team TEXT NOT NULL,
    oncall TEXT NOT NULL,
    criticality TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS itsm_kb_articles (
    article_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS itsm_tickets (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    requester TEXT NOT NULL,
    ci_id TEXT REFERENCES itsm_configuration_items (ci_id),
    category TEXT,
    severity INTEGER,
    status TEXT NOT NULL,
    team TEXT,
    assignee TEXT,
    resolution TEXT,
    kb_article_id TEXT REFERENCES itsm_kb_articles (article_id),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS itsm_tickets_status ON itsm_tickets (status);
CREATE TABLE IF NOT EXISTS itsm_ticket_comments (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES itsm_tickets (ticket_id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS itsm_ticket_comments_ticket ON itsm_ticket_comments (ticket_id);
CREATE TABLE IF NOT EXISTS itsm_ticket_history (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES itsm_tickets (ticket_id),
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS itsm_ticket_history_ticket ON itsm_ticket_history (ticket_id);
"""

TicketStatus = Literal["new", "assigned", "resolved"]
Criticality = Literal["low", "medium", "high", "critical"]
Severity = Annotated[int, Field(ge=1, le=4, description="1 is the most severe, 4 the least.")]
# Descriptions, comments and articles run longer than the one-line fields `Text` is meant for.
LongText = Annotated[str, StringConstraints(min_length=1, max_length=20000)]
Limit = Annotated[int, Query(ge=1, le=50, description="At most this many results.")]

SNIPPET_CHARS = 200


# --- configuration items ---------------------------------------------------------------------


class ConfigurationItem(StrictModel):
    ci_id: RecordId
    name: Text
    kind: Text = Field(description='What it is, e.g. "service", "server", "database".')
    owner_team: Text
    oncall: Text = Field(description="Directory user id of the on-call owner.")
    criticality: Criticality


# --- knowledge base --------------------------------------------------------------------------


class KbArticle(StrictModel):
    article_id: RecordId
    title: Text
    body: LongText
    category: Text
    tags: list[Text] = Field(default_factory=list)


class KbHit(StrictModel):
    article_id: str
    title: str
    category: str
    snippet: str = Field(description=f"The first {SNIPPET_CHARS} characters of the body.")
    score: float


# --- tickets ---------------------------------------------------------------------------------


class NewTicket(StrictModel):
    ticket_id: RecordId
    title: Text
    description: LongText
    requester: Text
    ci_id: RecordId | None = None
    category: Text | None = None
    severity: Severity | None = None


class Classification(StrictModel):
    category: Text
    severity: Severity


class Assignment(StrictModel):
    team: Text
    assignee: Text | None = None
    note: Text | None = None


class Resolution(StrictModel):
    resolution: LongText
    kb_article_id: RecordId | None = None


class CommentRequest(StrictModel):
    author: Text
    body: LongText


class Comment(StrictModel):
    author: str
    body: str
    at: datetime


class HistoryEntry(StrictModel):
    action: Literal["created", "classified", "assigned", "resolved", "commented"]
    detail: str
    at: datetime


class TicketRow(StrictModel):
    """The columns of a ticket; comments and history live in their own tables."""

    ticket_id: str
    title: str
    description: str
    requester: str
    ci_id: str | None
    category: str | None
    severity: int | None
    status: TicketStatus
    team: str | None
    assignee: str | None
    resolution: str | None
    kb_article_id: str | None
    created_at: datetime


class Ticket(TicketRow):
    comments: list[Comment]
    history: list[HistoryEntry]


class SimilarTicket(StrictModel):
    ticket_id: str
    title: str
    status: TicketStatus
    category: str | None
    resolution: str | None
    kb_article_id: str | None
    score: float


# --- word overlap ----------------------------------------------------------------------------

_STOP_WORDS = """
    a about after again all also am an and any are as at be been before but by can cannot could
    did do does doing for from get gets got had has have having he her here hi hello his how i if
    in into is it its just me my no not of on or our out please she so some than thanks that the
    their them then there these they this those to too up us was we were what when where which
    while who why will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def _words(*texts: str) -> frozenset[str]:
    """Lowercased words of the texts, without stop words and single characters."""
    return frozenset(
        word
        for text in texts
        for word in re.findall(r"\w+", text.casefold())
        if len(word) > 1 and word not in STOP_WORDS
    )


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0


# --- storage helpers -------------------------------------------------------------------------


def _get_ci(conn: sqlite3.Connection, ci_id: str) -> ConfigurationItem:
    row = conn.execute(
        "SELECT * FROM itsm_configuration_items WHERE ci_id = ?", (ci_id,)
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"configuration item {ci_id} not found")
    return ConfigurationItem.model_validate(dict(row))


def _article_from_row(row: sqlite3.Row) -> KbArticle:
    return KbArticle.model_validate(dict(row) | {"tags": json.loads(row["tags"])})


def _get_article(conn: sqlite3.Connection, article_id: str) -> KbArticle:
    row = conn.execute(
        "SELECT * FROM itsm_kb_articles WHERE article_id = ?", (article_id,)
    ).fetchone()
    if row is None:
        raise HTTPException(404, f"knowledge base article {article_id} not found")
    return _article_from_row(row)


_SELECT_TICKETS = f"SELECT {columns(TicketRow)} FROM itsm_tickets"


def _ticket_from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Ticket:
    ticket_id = row["ticket_id"]
    comments = conn.execute(
        "SELECT author, body, at FROM itsm_ticket_comments WHERE ticket_id = ? ORDER BY seq",
        (ticket_id,),
    ).fetchall()
    history = conn.execute(
        "SELECT action, detail, at FROM itsm_ticket_history WHERE ticket_id = ? ORDER BY seq",
        (ticket_id,),
    ).fetchall()
    return Ticket.model_validate(
        dict(row) | {"comments": [dict(c) for c in comments], "history": [dict(h) for h in history]}
    )


def _get_ticket(conn: sqlite3.Connection, ticket_id: str) -> Ticket:
    row = conn.execute(f"{_SELECT_TICKETS} WHERE ticket_id = ?", (ticket_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"ticket {ticket_id} not found")
    return _ticket_from_row(conn, row)


def _record(conn: sqlite3.Connection, ticket_id: str, action: str, detail: str) -> None:
    insert(
        conn,
        "itsm_ticket_history",
        {"ticket_id": ticket_id, "action": action, "detail": detail, "at": utc_now().isoformat()},
    )


def _update(conn: sqlite3.Connection, ticket_id: str, **values: object) -> None:
    assignments = ", ".join(f'"{column}" = :{column}' for column in values)
    conn.execute(
        f"UPDATE itsm_tickets SET {assignments} WHERE ticket_id = :ticket_id",
        values | {"ticket_id": ticket_id},
    )


TICKETS = RecordTable(Ticket, "itsm_tickets", "ticket_id", _get_ticket)


# --- configuration item routes ---------------------------------------------------------------


@router.post("/cis", status_code=201)
def create_configuration_item(item: ConfigurationItem, db: Db) -> ConfigurationItem:
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "configuration item", "itsm_configuration_items", "ci_id", item.ci_id
        )
        insert(conn, "itsm_configuration_items", item.model_dump())
    return item


@router.get("/cis")
def list_configuration_items(
    db: Db,
    q: Annotated[
        str | None,
        Query(description="Case-insensitive substring of the name or ci_id.", max_length=200),
    ] = None,
) -> list[ConfigurationItem]:
    """Configuration items in the order they were created, optionally matching `q`."""
    with db.transaction() as conn:
        rows = conn.execute("SELECT * FROM itsm_configuration_items ORDER BY rowid").fetchall()
    items = [ConfigurationItem.model_validate(dict(row)) for row in rows]
    if not q:
        return items
    needle = q.casefold()
    return [i for i in items if needle in i.name.casefold() or needle in i.ci_id.casefold()]


@router.get("/cis/{ci_id}")
def get_configuration_item(ci_id: str, db: Db) -> ConfigurationItem:
    with db.transaction() as conn:
        return _get_ci(conn, ci_id)


# --- knowledge base routes -------------------------------------------------------------------


@router.post("/kb", status_code=201)
def create_kb_article(article: KbArticle, db: Db) -> KbArticle:
    with db.transaction() as conn:
        refuse_duplicate(
            conn, "knowledge base article", "itsm_kb_articles", "article_id", article.article_id
        )
        insert(conn, "itsm_kb_articles", article.model_dump() | {"tags": json.dumps(article.tags)})
    return article


# Declared before /kb/{article_id}, which would otherwise take "search" for an article id.
@router.get("/kb/search")
def search_knowledge_base(
    db: Db,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to look for.")],
    limit: Limit = 5,
) -> list[KbHit]:
    """Articles sharing words with `q` (in title, body or tags), best first.

    The score is the share of the query's words an article contains, ignoring stop words; ties go
    to the more focused article (higher Jaccard similarity), then to the older one.
    """
    query = _words(q)
    if not query:
        return []
    with db.transaction() as conn:
        rows = conn.execute("SELECT * FROM itsm_kb_articles ORDER BY rowid").fetchall()
    ranked = []
    for position, row in enumerate(rows):
        article = _article_from_row(row)
        words = _words(article.title, article.body, *article.tags)
        matched = len(query & words)
        if matched:
            score = round(matched / len(query), 4)
            ranked.append((-score, -_jaccard(query, words), position, article, score))
    ranked.sort(key=lambda hit: hit[:3])
    return [
        KbHit(
            article_id=article.article_id,
            title=article.title,
            category=article.category,
            snippet=article.body[:SNIPPET_CHARS],
            score=score,
        )
        for *_, article, score in ranked[:limit]
    ]


@router.get("/kb/{article_id}")
def get_kb_article(article_id: str, db: Db) -> KbArticle:
    with db.transaction() as conn:
        return _get_article(conn, article_id)


# --- ticket routes ---------------------------------------------------------------------------


@router.post("/tickets", status_code=201)
def create_ticket(ticket: NewTicket, db: Db) -> Ticket:
    """Open a ticket with status "new"."""
    with db.transaction() as conn:
        if ticket.ci_id is not None:
            _get_ci(conn, ticket.ci_id)
        refuse_duplicate(conn, "ticket", "itsm_tickets", "ticket_id", ticket.ticket_id)
        insert(
            conn,
            "itsm_tickets",
            ticket.model_dump() | {"status": "new", "created_at": utc_now().isoformat()},
        )
        _record(conn, ticket.ticket_id, "created", f"opened by {ticket.requester}")
        return _get_ticket(conn, ticket.ticket_id)


@router.get("/tickets")
def list_tickets(
    db: Db, status: TicketStatus | None = None, team: str | None = None
) -> list[Ticket]:
    """Tickets, oldest first, optionally filtered by status and/or team."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"""{_SELECT_TICKETS} WHERE (:status IS NULL OR status = :status)
                AND (:team IS NULL OR team = :team) ORDER BY seq""",
            {"status": status, "team": team},
        ).fetchall()
        return [_ticket_from_row(conn, row) for row in rows]


@router.get("/tickets/{ticket_id}")
def get_ticket(ticket_id: str, db: Db) -> Ticket:
    with db.transaction() as conn:
        return _get_ticket(conn, ticket_id)


@router.get("/tickets/{ticket_id}/similar")
def find_similar_tickets(ticket_id: str, db: Db, limit: Limit = 5) -> list[SimilarTicket]:
    """Other tickets sharing words with this one's title and description, best first.

    The score is the Jaccard similarity of the two tickets' word sets, ignoring stop words;
    tickets sharing no word are left out, ties go to the older ticket.
    """
    with db.transaction() as conn:
        ticket = _get_ticket(conn, ticket_id)
        rows = conn.execute(
            f"{_SELECT_TICKETS} WHERE ticket_id != ? ORDER BY seq", (ticket_id,)
        ).fetchall()
    words = _words(ticket.title, ticket.description)
    ranked = []
    for row in rows:
        other = TicketRow.model_validate(dict(row))
        score = round(_jaccard(words, _words(other.title, other.description)), 4)
        if score > 0:
            fields = other.model_dump(include=set(SimilarTicket.model_fields))
            ranked.append(SimilarTicket(**fields, score=score))
    # sort is stable, so equal scores keep the oldest-first order of the query.
    ranked.sort(key=lambda similar: -similar.score)
    return ranked[:limit]


@router.post("/tickets/{ticket_id}/classify")
def classify_ticket(
    ticket_id: str, classification: Classification, key: IdempotencyKey, response: Response, db: Db
) -> Ticket:
    """Set the ticket's category and severity, at most once per Idempotency-Key."""

    def change(conn: sqlite3.Connection, _ticket: Ticket) -> None:
        _update(conn, ticket_id, **classification.model_dump())
        _record(
            conn,
            ticket_id,
            "classified",
            f"category {classification.category}, severity {classification.severity}",
        )

    return TICKETS.write_once(
        db,
        response,
        operation="ticket classification",
        key=key,
        record_id=ticket_id,
        request=classification,
        change=change,
    )


@router.post("/tickets/{ticket_id}/assign")
def assign_ticket(
    ticket_id: str, assignment: Assignment, key: IdempotencyKey, response: Response, db: Db
) -> Ticket:
    """Hand the ticket to a team (and optionally a person); its status becomes "assigned".

    Assigning a resolved ticket reopens it. At most once per Idempotency-Key.
    """

    def change(conn: sqlite3.Connection, _ticket: Ticket) -> None:
        _update(
            conn,
            ticket_id,
            status="assigned",
            team=assignment.team,
            assignee=assignment.assignee,
        )
        detail = f"team {assignment.team}"
        if assignment.assignee is not None:
            detail += f", assignee {assignment.assignee}"
        if assignment.note is not None:
            detail += f": {assignment.note}"
        _record(conn, ticket_id, "assigned", detail)

    return TICKETS.write_once(
        db,
        response,
        operation="ticket assignment",
        key=key,
        record_id=ticket_id,
        request=assignment,
        change=change,
    )


@router.post("/tickets/{ticket_id}/resolve")
def resolve_ticket(
    ticket_id: str, resolution: Resolution, key: IdempotencyKey, response: Response, db: Db
) -> Ticket:
    """Resolve the ticket, optionally citing a knowledge-base article; at most once per key."""

    def change(conn: sqlite3.Connection, _ticket: Ticket) -> None:
        if resolution.kb_article_id is not None:
            _get_article(conn, resolution.kb_article_id)
        _update(conn, ticket_id, status="resolved", **resolution.model_dump())
        detail = resolution.resolution
        if resolution.kb_article_id is not None:
            detail = f"knowledge base article {resolution.kb_article_id}: {detail}"
        _record(conn, ticket_id, "resolved", detail)

    return TICKETS.write_once(
        db,
        response,
        operation="ticket resolution",
        key=key,
        record_id=ticket_id,
        request=resolution,
        change=change,
    )


@router.post("/tickets/{ticket_id}/comments")
def comment_on_ticket(
    ticket_id: str, comment: CommentRequest, key: IdempotencyKey, response: Response, db: Db
) -> Ticket:
    """Add a comment to the ticket, at most once per Idempotency-Key."""

    def change(conn: sqlite3.Connection, _ticket: Ticket) -> None:
        insert(
            conn,
            "itsm_ticket_comments",
            {"ticket_id": ticket_id, **comment.model_dump(), "at": utc_now().isoformat()},
        )
        _record(conn, ticket_id, "commented", f"comment by {comment.author}")

    return TICKETS.write_once(
        db,
        response,
        operation="ticket comment",
        key=key,
        record_id=ticket_id,
        request=comment,
        change=change,
    )
