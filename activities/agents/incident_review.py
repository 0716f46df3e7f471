"""The incident investigator: reads a severity-1 incident, the affected service's logs, similar
incidents and the service's recent deployments, and drafts the post-incident review.

It only drafts. Every piece of evidence it cites (a log line, a commit, an incident) is looked up
again by the case and must say what the draft cites it for; every owner must be a person in the
directory or a team the policy knows; a claim it cites nothing for is flagged to the incident
manager, who approves, edits or rejects the draft.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from casework.agents.checks import (
    CheckBasis,
    ProposalChecks,
    ValueCheck,
    Verdict,
    on_record,
    one_of,
    opinion,
)
from casework.agents.messages import DATA_BLOCK, ChatMessage, ToolCall
from casework.agents.spec import AgentSpec
from casework.agents.tools import FINAL_ANSWER

INVESTIGATOR = "incident_investigator"
REVIEW_DRAFT = "incident_review_draft"

SYSTEM_PROMPT = (
    "You are an incident investigator writing the post-incident review of a severity-1 incident. "
    "Read the incident, search the affected service's logs around it, find similar past "
    "incidents, and read the service's recent deployments in the deployments repository. Draft "
    "the review: a timeline (each entry with the time and the evidence it rests on), the probable "
    "cause with the evidence for it, and follow-up actions, each with an owner (a person or a "
    "team) and a due date in days. Cite evidence by its ID exactly as the tools returned it: a "
    "log line's entry_id, a commit's SHA, an incident's ticket_id. Cite nothing you did not see."
)
TASK = "Investigate this incident and draft its post-incident review."

CitationKind = Literal["log", "commit", "incident"]
SHA = re.compile(r"^[0-9a-f]{7,40}$")


class Citation(BaseModel):
    kind: CitationKind = Field(description="log (a log line), commit, or incident (a ticket).")
    ref: str = Field(
        min_length=1, max_length=64, description="entry_id, commit SHA, or ticket_id, as returned."
    )

    def label(self) -> str:
        return f"{self.kind} {self.ref}"


class TimelineEntry(BaseModel):
    at: datetime = Field(description="When it happened (ISO 8601, with zone).")
    event: str = Field(min_length=1, max_length=500)
    evidence: list[Citation] = Field(default_factory=list, description="What shows it happened.")


class FollowUpAction(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    owner: str = Field(min_length=1, max_length=200, description="A person or a team.")
    due_in_days: int = Field(14, ge=1, le=365)


class IncidentReviewDraft(BaseModel):
    summary: str = Field(min_length=1, max_length=2000)
    timeline: list[TimelineEntry] = Field(min_length=1)
    probable_cause: str = Field(min_length=1, max_length=2000)
    cause_evidence: list[Citation] = Field(
        default_factory=list, description="The evidence the probable cause rests on."
    )
    follow_ups: list[FollowUpAction] = Field(default_factory=list)
    confidence: float = Field(ge=0, le=1)

    def headline(self) -> str:
        return (
            f"drafts a review: {len(self.timeline)} timeline entries, cause "
            f"{self.probable_cause[:120]!r} ({len(self.cause_evidence)} citations), "
            f"{len(self.follow_ups)} follow-ups, confidence {self.confidence:.2f}"
        )

    def recommended_action(self) -> str:
        # Approving the manager's task adopts the draft.
        return "approve"

    def citations(self) -> list[Citation]:
        cited = [c for entry in self.timeline for c in entry.evidence] + self.cause_evidence
        unique: dict[tuple[str, str], Citation] = {}
        for citation in cited:
            unique.setdefault((citation.kind, citation.ref), citation)
        return list(unique.values())


class CitedLog(BaseModel):
    """A log line as the log store holds it, looked up by the ID the draft cites."""

    entry_id: str
    service: str
    at: datetime
    message: str


class Evidence(BaseModel):
    """What the records hold for the draft's citations, looked up by the case (not the agent)."""

    service: str
    """The affected service: a cited log line must be one of its own."""
    incident_id: str
    logs: dict[str, CitedLog] = {}
    """Cited log lines the log store holds, by entry ID."""
    commits: dict[str, str] = {}
    """Commits of the deployments repository, full SHA -> subject line."""
    commits_read: bool = False
    """Whether the deployments repository could be read at all; if not, no commit verifies."""
    incidents: list[str] = []
    """Cited incidents the service desk holds."""


TIMELINE_TOLERANCE_SECONDS = 300
"""A timeline entry citing a log line must be dated within this of the line."""


def _commit(evidence: Evidence, ref: str) -> str | None:
    """The full SHA a cited (possibly abbreviated) SHA names unambiguously, or None."""
    ref = ref.lower()
    if not SHA.match(ref):
        return None
    matches = [sha for sha in evidence.commits if sha.startswith(ref)]
    return matches[0] if len(matches) == 1 else None


def check_citation(field: str, citation: Citation, evidence: Evidence) -> ValueCheck:
    if citation.kind == "log":
        line = evidence.logs.get(citation.ref)
        if line is not None and line.service != evidence.service:
            return ValueCheck(
                field=field,
                value=citation.label(),
                basis=CheckBasis.RECORD,
                verdict=Verdict.UNVERIFIED,
                finding=f"the line is {line.service}'s, not the affected {evidence.service}'s",
            )
        return on_record(field, citation.label(), line is not None, "the log store")
    if citation.kind == "commit":
        source = "the deployments repository" + ("" if evidence.commits_read else " (unread)")
        return on_record(
            field, citation.label(), _commit(evidence, citation.ref) is not None, source
        )
    if citation.ref == evidence.incident_id:
        return on_record(field, citation.label(), True, "the service desk (this incident)")
    return on_record(
        field, citation.label(), citation.ref in evidence.incidents, "the service desk"
    )


def _timeline_checks(index: int, entry: TimelineEntry, evidence: Evidence) -> list[ValueCheck]:
    field = f"timeline[{index}]"
    if not entry.evidence:
        return [
            ValueCheck(
                field=field,
                value=entry.event,
                basis=CheckBasis.RECORD,
                verdict=Verdict.UNVERIFIED,
                finding="uncited: the draft names no evidence for it",
            )
        ]
    checks = [check_citation(field, citation, evidence) for citation in entry.evidence]
    for citation in entry.evidence:
        line = evidence.logs.get(citation.ref) if citation.kind == "log" else None
        if line is None:
            continue
        apart = abs((line.at - entry.at).total_seconds())
        checks.append(
            ValueCheck(
                field=field,
                value=entry.at.isoformat(),
                basis=CheckBasis.RECORD,
                verdict=Verdict.VERIFIED
                if apart <= TIMELINE_TOLERANCE_SECONDS
                else Verdict.UNVERIFIED,
                finding=f"log {line.entry_id} is dated {line.at.isoformat()}"
                + ("" if apart <= TIMELINE_TOLERANCE_SECONDS else ": the time contradicts it"),
            )
        )
    return checks


def check_draft(
    draft: IncidentReviewDraft, evidence: Evidence, owners: Mapping[str, str]
) -> ProposalChecks:
    """How each piece of the draft is checked. ``owners`` maps every person of the directory and
    every team the policy knows to what it is (for the finding).

    Every citation must name a record that exists (a log line of the affected service, a commit
    of the deployments repository, an incident the service desk holds); a timeline entry citing a
    log line must carry that line's time; an entry or a cause citing nothing is flagged as
    uncited. Owners must be real. The cause's wording, the summary and the confidence are the
    investigator's judgement, which the incident manager reads.
    """
    checks: list[ValueCheck] = []
    for index, entry in enumerate(draft.timeline):
        checks += _timeline_checks(index, entry, evidence)
    if draft.cause_evidence:
        checks += [check_citation("probable_cause", c, evidence) for c in draft.cause_evidence]
    else:
        checks.append(
            ValueCheck(
                field="probable_cause",
                value=draft.probable_cause,
                basis=CheckBasis.RECORD,
                verdict=Verdict.UNVERIFIED,
                finding="uncited: the draft names no evidence for it",
            )
        )
    for index, action in enumerate(draft.follow_ups):
        checks.append(
            one_of(
                f"follow_ups[{index}].owner",
                action.owner,
                owners,
                "the directory's people and the policy's teams",
            )
        )
    checks.append(opinion("probable_cause", draft.probable_cause, "the manager judges it"))
    checks.append(opinion("confidence", draft.confidence, "the manager reads it"))
    return ProposalChecks(agent=INVESTIGATOR, checks=checks)


# -- offline stand-in ---------------------------------------------------------------------------


def _data(content: str | None) -> Any:
    match = DATA_BLOCK.search(content or "")
    if match is None:
        return None
    try:
        return json.loads(match.group(2))
    except json.JSONDecodeError:
        return match.group(2)


def stand_in_turn(messages: list[ChatMessage]) -> ChatMessage:
    """A deterministic investigator: look things up first, then draft from what the tools said.

    Rules, not judgement: the draft says plainly that the stand-in wrote it, and cites only what
    the tools returned, so the case's checks pass on what they should.
    """
    context = _data(messages[1].content) if len(messages) > 1 else None
    context = context if isinstance(context, dict) else {}
    incident: dict[str, Any] = context.get("incident", {})
    asked = [call for m in messages if m.role == "assistant" for call in m.tool_calls]
    if not asked:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("find_similar_tickets", {"ticket_id": incident.get("ticket_id", "")}),
        ]
        if incident.get("ci_id"):
            calls.append(("search_logs", {"service": incident["ci_id"], "min_level": "WARN"}))
            calls.append(("get_configuration_item", {"ci_id": incident["ci_id"]}))
        deployments = context.get("deployments")
        if isinstance(deployments, dict) and deployments.get("read_with"):
            calls.append(
                (
                    deployments["read_with"][0],
                    {
                        "repo_path": deployments.get("repo_path", ""),
                        "max_count": deployments.get("max_commits", 20),
                    },
                )
            )
        return ChatMessage(
            role="assistant",
            tool_calls=[
                ToolCall(id=f"standin-{i}", name=name, arguments=json.dumps(args))
                for i, (name, args) in enumerate(calls, start=1)
            ],
        )
    results = {m.tool_call_id: _data(m.content) for m in messages if m.role == "tool"}
    by_tool = {call.name: results.get(call.id) for call in asked}
    return ChatMessage(
        role="assistant",
        tool_calls=[
            ToolCall(
                id=f"standin-{len(asked) + 1}",
                name=FINAL_ANSWER,
                arguments=_draft(incident, by_tool).model_dump_json(),
            )
        ],
    )


LOGGED_COMMIT = re.compile(r"^Commit: ([0-9a-f]{40})$", re.MULTILINE)
LOGGED_MESSAGE = re.compile(r"^Message: (.*)$", re.MULTILINE)


SHOWN_COMMIT = re.compile(r"^commit ([0-9a-f]{40})\n(?:.*\n)*?\n    (.*)$", re.MULTILINE)


def shown_commit(text: Any) -> tuple[str, str] | None:
    """(SHA, subject) of the commit the git MCP server's ``git_show`` text shows, if any."""
    match = SHOWN_COMMIT.search(text) if isinstance(text, str) else None
    return (match.group(1), match.group(2).strip()) if match else None


def logged_commits(text: Any) -> list[tuple[str, str]]:
    """(SHA, subject) of each commit in the git MCP server's ``git_log`` text, newest first."""
    if not isinstance(text, str):
        return []
    found = []
    for block in re.split(r"(?=^Commit: )", text, flags=re.MULTILINE):
        sha = LOGGED_COMMIT.search(block)
        if sha is None:
            continue
        message = LOGGED_MESSAGE.search(block)
        found.append((sha.group(1), message.group(1).strip() if message else ""))
    return found


def _draft(incident: dict[str, Any], by_tool: dict[str, Any]) -> IncidentReviewDraft:
    service = incident.get("ci_id") or "the service"
    lines = by_tool.get("search_logs")
    lines = [line for line in lines if isinstance(line, dict)] if isinstance(lines, list) else []
    similar = by_tool.get("find_similar_tickets")
    similar = [t for t in similar if isinstance(t, dict)] if isinstance(similar, list) else []
    ci = by_tool.get("get_configuration_item")
    ci = ci if isinstance(ci, dict) else {}
    logged = [
        logged_commits(result) for name, result in by_tool.items() if name.endswith("git_log")
    ]
    commits = [c for c in (logged[0] if logged else []) if service in c[1]] or (
        logged[0] if logged else []
    )
    incident_id = str(incident.get("ticket_id", ""))
    timeline: list[TimelineEntry] = []
    errors = [line for line in lines if line.get("level") in ("ERROR", "FATAL")]
    for line in (lines[:1] + errors[:2]) if lines else []:
        timeline.append(
            TimelineEntry(
                at=line["at"],
                event=f"{line['level']} in {service}: {line['message']}"[:500],
                evidence=[Citation(kind="log", ref=line["entry_id"])],
            )
        )
    if incident.get("created_at"):
        timeline.append(
            TimelineEntry(
                at=incident["created_at"],
                event=f"incident {incident_id} opened: {incident.get('title', '')}"[:500],
                evidence=[Citation(kind="incident", ref=incident_id)],
            )
        )
    timeline.sort(key=lambda entry: entry.at)
    cause_evidence = [Citation(kind="log", ref=line["entry_id"]) for line in errors[:1]]
    if commits:
        sha, subject = commits[0]
        cause = f"the latest deployment of {service}, {sha[:12]} ({subject}), preceded the errors"
        cause_evidence.insert(0, Citation(kind="commit", ref=sha))
    elif errors:
        cause = f"{service} logged {errors[0]['message']!r} when the incident began"
    else:
        cause = "not established from the evidence the tools returned"
    cause_evidence += [Citation(kind="incident", ref=t["ticket_id"]) for t in similar[:1]]
    team = ci.get("owner_team")
    follow_ups = []
    if team:
        follow_ups.append(
            FollowUpAction(
                title=f"Add an alert on {service} errors before users notice", owner=team
            )
        )
        if commits:
            follow_ups.append(
                FollowUpAction(
                    title=f"Add a regression test for {commits[0][0][:12]} and a rollback check",
                    owner=team,
                    due_in_days=7,
                )
            )
    if ci.get("oncall"):
        follow_ups.append(
            FollowUpAction(
                title=f"Update the {service} runbook", owner=ci["oncall"], due_in_days=21
            )
        )
    return IncidentReviewDraft(
        summary=f"Offline stand-in rule: draft of the review of {incident_id} from "
        f"{len(lines)} log lines, {len(commits)} commits and {len(similar)} similar incidents.",
        timeline=timeline
        or [
            TimelineEntry(
                at=incident.get("created_at") or "1970-01-01T00:00:00Z",
                event=f"incident {incident_id} opened",
                evidence=[Citation(kind="incident", ref=incident_id)],
            )
        ],
        probable_cause=cause,
        cause_evidence=cause_evidence,
        follow_ups=follow_ups,
        confidence=0.7 if commits and errors else 0.4,
    )


INVESTIGATOR_AGENT = AgentSpec(
    name=INVESTIGATOR,
    output=REVIEW_DRAFT,
    model=IncidentReviewDraft,
    system_prompt=SYSTEM_PROMPT,
    task=TASK,
    stand_in=lambda context: _draft(context.get("incident", {}), {}),
    stand_in_turn=stand_in_turn,
)
