"""The incident-review part of ``casework demo``: a severity-1 outage of the checkout API, its
logs, a similar past incident, and a deployments repository with real commits, reviewed twice:
once approved as drafted, once edited by the incident manager.

The deployments repository is a git repository where the worker looks for it
(``activities.deployments.repository_path``: ``deployments/`` under casework's home unless
``CASEWORK_DEPLOYMENTS_REPOSITORY`` says otherwise): each batch commits the release that broke
checkout, and the investigator reads it through the git MCP server, as it would read a real one.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from activities.deployments import repository_path
from casework.case.tasks import TaskDecision
from casework.cli.seeding import (
    DemoRun,
    DemoScenario,
    Numbered,
    ProcessDemo,
    create_once,
    sandbox_request,
)
from workflows.incident_review import IncidentReviewInput

SERVICE = "checkout-api"
CONFIGURATION_ITEM = {
    "ci_id": SERVICE,
    "name": "checkout API",
    "kind": "service",
    "owner_team": "payments-ops",
    "oncall": "ivy",
    "criticality": "critical",
}


def git(repository: Path, *args: str, when: datetime | None = None) -> str:
    """Run git in ``repository`` as the demo's release bot, dated ``when`` if given."""
    env = os.environ | {
        "GIT_AUTHOR_NAME": "release-bot",
        "GIT_AUTHOR_EMAIL": "release-bot@example.com",
        "GIT_COMMITTER_NAME": "release-bot",
        "GIT_COMMITTER_EMAIL": "release-bot@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if when is not None:
        env |= {"GIT_AUTHOR_DATE": when.isoformat(), "GIT_COMMITTER_DATE": when.isoformat()}
    done = subprocess.run(
        ["git", *args], cwd=repository, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def deploy(repository: Path, service: str, version: str, change: str, when: datetime) -> str:
    """Commit a release of ``service`` to the deployments repository (made if missing); its SHA."""
    if not (repository / ".git").is_dir():
        repository.mkdir(parents=True, exist_ok=True)
        git(repository, "init", "--quiet", "--initial-branch=main")
    manifest = repository / "services" / service / "release.yaml"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(f"service: {service}\nversion: {version}\nchange: {change}\n")
    git(repository, "add", str(manifest.relative_to(repository)))
    git(repository, "commit", "--quiet", "-m", f"deploy {service} {version}: {change}", when=when)
    return git(repository, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Outage:
    version: str
    change: str


# Numbered past ticket triage's scenarios: both processes' incidents are INC-<batch><suffix>.
SCENARIOS = [
    DemoScenario(
        11,
        "severity-1 checkout outage: the review is approved with follow-ups",
        "follow_ups_created",
        Outage("4.2.0", "format amounts with the new CurrencyFormatter"),
        decisions={
            "incident_manager": TaskDecision(
                approver="grace", action="approve", comment="clear timeline; agreed"
            )
        },
    ),
    DemoScenario(
        12,
        "severity-1 checkout outage: the incident manager edits the review",
        "follow_ups_created",
        Outage("4.3.0", "drop the default currency"),
        decisions={
            "incident_manager": TaskDecision(
                approver="grace",
                action="approve",
                comment="cause: orders without a currency reached the new formatter\n"
                "follow-up: Reject orders without a currency at the API | payments-ops | 5\n"
                "follow-up: Canary every checkout release for 30 minutes | platform-ops | 14",
            )
        },
    ),
]


async def reference(run: DemoRun) -> None:
    await create_once(run.sandbox, f"/itsm/cis/{SERVICE}", "/itsm/cis", CONFIGURATION_ITEM)


async def seed(run: DemoRun, scenario: DemoScenario[Outage]) -> IncidentReviewInput:
    number = scenario.number(run.batch)
    incident_id = f"INC-{number}"
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    # A past incident like this one, resolved: what the investigator's search finds.
    await sandbox_request(
        run.sandbox,
        "POST",
        "/itsm/tickets",
        {
            "ticket_id": f"INC-{number}-PREV",
            "title": "Checkout API errors after a release: payments failing",
            "description": "Checkout returned 500 after a release; rolled back.",
            "requester": "erin",
            "ci_id": SERVICE,
            "category": "software",
            "severity": 2,
        },
    )
    deploy(
        repository_path(),
        SERVICE,
        scenario.facts.version,
        scenario.facts.change,
        began - timedelta(minutes=12),
    )
    lines = [
        (-12, "INFO", f"deployed {SERVICE} {scenario.facts.version}"),
        (-1, "WARN", "payment gateway latency 2400ms"),
        (0, "ERROR", "NullPointerException in CurrencyFormatter.format: currency is null"),
        (2, "ERROR", "500 on POST /checkout: CurrencyFormatter failed"),
    ]
    await sandbox_request(
        run.sandbox,
        "POST",
        "/logs/entries",
        [
            {
                "service": SERVICE,
                "at": (began + timedelta(minutes=minutes)).isoformat(),
                "level": level,
                "message": f"{message} [batch {number}]",
            }
            for minutes, level, message in lines
        ],
    )
    await sandbox_request(
        run.sandbox,
        "POST",
        "/itsm/tickets",
        {
            "ticket_id": incident_id,
            "title": "Checkout API down: all payments failing",
            "description": f"Every checkout since {began:%H:%M} UTC fails with a 500.",
            "requester": "erin",
            "ci_id": SERVICE,
            "category": "software",
            "severity": 1,
        },
    )
    return IncidentReviewInput(incident_id=incident_id, submitted_by="erin")


DEMO = ProcessDemo(
    process="incident-review",
    order=25,
    scenarios=SCENARIOS,
    numbered=Numbered("/itsm/tickets", "ticket_id", "INC-"),
    seed=seed,
    reference=reference,
)
