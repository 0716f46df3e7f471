"""The incident investigator on labelled incidents, in its agent region: each case's incident,
past incidents, configuration item and log lines are created in the run's sandbox, its releases
are committed to a deployments repository of its own (as the demo commits them, with
``demos.incident_review.deploy``), and the investigator reads that repository through the
policy's git MCP server, confined to it as the workflow confines it (``confined_deployments``).

Its draft is checked by ``check_draft`` against what the records hold for its citations and
routed by ``decide_review``, as the workflow routes it: ``review:<role>`` when every citation and
owner is on record, ``review:<role>+flagged`` when the manager is told of an unverified or
uncited one, ``write:<role>`` without a draft. A draft is free text around facts, so the labels
name the facts: ``cause_commit``, the subject of the deployment the probable cause cites (None
when it cites none), and ``on_record``, whether every citation and owner checks out.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from activities.agents.incident_review import (
    INVESTIGATOR_AGENT,
    CitedLog,
    Evidence,
    IncidentReviewDraft,
    check_draft,
)
from activities.deployments import DeploymentsRepository, resolved_command
from activities.itsm import Ticket
from casework.agents.checks import ProposalChecks
from casework.eval.hooks import AgentEval, RouteQuestion, SandboxRecord
from casework.governance.loader import load_policy
from casework.governance.models import Directory, McpServerSettings
from demos.incident_review import deploy, git
from policies.incident_review import IncidentReviewPolicy, decide_review, known_owners
from workflows.incident_review import Deployments, confined_deployments, investigator_context

CIS = "/itsm/cis"
LOGS = "/logs/entries"
TICKETS = "/itsm/tickets"
TICKET_FIELDS = ("ticket_id", "title", "description", "requester", "ci_id", "category", "severity")
"""What the service desk takes when a ticket is created (it dates the ticket itself)."""


class Release(BaseModel):
    service: str
    version: str
    change: str
    at: datetime


class LogLine(BaseModel):
    at: datetime
    level: str
    message: str
    service: str | None = None
    """Another service's line; by default the incident's service's."""


class IncidentCase(BaseModel):
    incident: dict[str, Any]
    """The incident ticket as the service desk holds it (``created_at`` as the case reads it)."""
    configuration_item: dict[str, Any]
    logs: list[LogLine] = []
    similar: list[dict[str, Any]] = []
    """Past incidents the service desk holds."""
    deployments: list[Release] | None = []
    """Releases committed to the case's deployments repository, oldest first; None: the worker
    has no repository, and the review goes without deployments."""

    def ticket(self) -> Ticket:
        return Ticket.model_validate({"status": "new", **self.incident})


@cache
def _repositories() -> Path:
    """One folder for the run's deployments repositories, removed when the run ends."""
    root = Path(tempfile.mkdtemp(prefix="casework-eval-deployments-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def _deployments(case: IncidentCase, policy: IncidentReviewPolicy) -> Deployments | None:
    """The case's deployments repository, committed the first time it is asked for, and the
    policy's git server confined to it; None when the case has none."""
    if case.deployments is None or policy.deployments.mcp_server is None:
        return None
    repository = _repositories() / case.ticket().ticket_id
    if not (repository / ".git").is_dir():
        repository.mkdir(parents=True)
        git(repository, "init", "--quiet", "--initial-branch=main")
        for release in case.deployments:
            deploy(repository, release.service, release.version, release.change, release.at)
    settings = policy.agents[INVESTIGATOR_AGENT.name].mcp_servers[policy.deployments.mcp_server]
    found = DeploymentsRepository(
        path=str(repository),
        exists=True,
        command=resolved_command(settings.command) if settings.command else None,
    )
    return confined_deployments(policy, found)


def _context(case: dict[str, Any], policy: IncidentReviewPolicy | None) -> dict[str, Any]:
    assert policy is not None
    incident = IncidentCase.model_validate(case)
    return investigator_context(incident.ticket(), _deployments(incident, policy))


def _mcp_servers(
    case: dict[str, Any], policy: IncidentReviewPolicy | None
) -> dict[str, McpServerSettings]:
    assert policy is not None
    deployments = _deployments(IncidentCase.model_validate(case), policy)
    return {deployments.server: deployments.settings} if deployments is not None else {}


_TICKETS_SEEDED: set[str] = set()
"""Every ticket this run has created in the sandbox: a cited past incident is on record when the
service desk holds it, whichever case brought it, as the workflow finds it there."""


def _seed(case: dict[str, Any]) -> list[SandboxRecord]:
    incident = IncidentCase.model_validate(case)
    service = incident.configuration_item["ci_id"]
    records = [SandboxRecord(path=CIS, body=incident.configuration_item)]
    records += [
        SandboxRecord(path=TICKETS, body={"requester": "erin", **ticket})
        for ticket in incident.similar
    ]
    if incident.logs:
        lines = [
            {"service": service, **line.model_dump(mode="json", exclude_none=True)}
            for line in incident.logs
        ]
        records.append(SandboxRecord(path=LOGS, body=lines))
    ticket = {name: incident.incident[name] for name in TICKET_FIELDS if name in incident.incident}
    records.append(SandboxRecord(path=TICKETS, body=ticket))
    _TICKETS_SEEDED.update(
        record.body["ticket_id"]
        for record in records
        if record.path == TICKETS and isinstance(record.body, dict)
    )
    return records


@cache
def _people() -> dict[str, str]:
    directory = Directory.model_validate(load_policy("directory").content)
    return {user: person.name for user, person in directory.users.items()}


def _evidence(
    question: RouteQuestion[IncidentReviewPolicy, IncidentReviewDraft],
) -> tuple[IncidentCase, Evidence, Deployments | None]:
    """What the records hold for the case, as the workflow looks its draft's citations up."""
    incident = IncidentCase.model_validate(question.input)
    ticket = incident.ticket()
    deployments = _deployments(incident, question.policy)
    evidence = Evidence(
        service=ticket.ci_id or "",
        incident_id=ticket.ticket_id,
        commits_read=deployments is not None,
    )
    for record in question.records:
        if record.path == LOGS and isinstance(record.body, list):
            for line in record.body:
                evidence.logs[line["entry_id"]] = CitedLog.model_validate(line)
    evidence.incidents = sorted(_TICKETS_SEEDED)
    if deployments is not None and incident.deployments:
        logged = git(Path(deployments.path), "log", "--format=%H %s")
        for line in logged.splitlines():
            sha, _, subject = line.partition(" ")
            evidence.commits[sha] = subject
    return incident, evidence, deployments


def _checks(
    question: RouteQuestion[IncidentReviewPolicy, IncidentReviewDraft],
) -> tuple[Evidence, ProposalChecks | None]:
    _, evidence, _ = _evidence(question)
    draft = question.answer
    if draft is None:
        return evidence, None
    owners = known_owners(question.policy, _people())
    return evidence, check_draft(draft, evidence, owners)


def _route(question: RouteQuestion[IncidentReviewPolicy, IncidentReviewDraft]) -> str:
    _, checks = _checks(question)
    decision = decide_review(
        question.policy,
        question.ref,
        question.answer,
        checks,
        no_draft_reason="no valid draft",
    )
    flagged = "+flagged" if checks is not None and checks.reasons() else ""
    return f"{decision.route.value}:{decision.role}{flagged}"


def _facts(question: RouteQuestion[IncidentReviewPolicy, IncidentReviewDraft]) -> dict[str, Any]:
    evidence, checks = _checks(question)
    draft = question.answer
    assert draft is not None and checks is not None
    blamed = [
        evidence.commits[sha]
        for citation in draft.cause_evidence
        if citation.kind == "commit"
        for sha in evidence.commits
        if sha.startswith(citation.ref.lower()) and len(citation.ref) >= 7
    ]
    return {"cause_commit": blamed[0] if blamed else None, "on_record": not checks.reasons()}


INVESTIGATOR_EVAL = AgentEval(
    agent=INVESTIGATOR_AGENT,
    policy=IncidentReviewPolicy,
    context=_context,
    route=_route,
    tools=True,
    seed=_seed,
    mcp_servers=_mcp_servers,
    facts=_facts,
)
