"""Where this worker finds the deployments repository and the git MCP server that reads it.

Not a system of record but the worker's own surroundings, which a workflow may not read itself:
the repository is ``CASEWORK_DEPLOYMENTS_REPOSITORY`` or ``deployments/`` under casework's home
(where the demo commits its releases), and a policy's bare MCP command is resolved on the
worker's ``PATH``, then beside its Python interpreter (a virtualenv's ``bin/``). The case records
the answer in its history and confines the git MCP server to that repository.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pydantic import BaseModel, Field
from temporalio import activity

from casework.config import Settings
from casework.systems.base import SystemActivities

REPOSITORY_ENV = "CASEWORK_DEPLOYMENTS_REPOSITORY"
DEFAULT_FOLDER = "deployments"


class DeploymentsLookup(BaseModel):
    command: str | None = Field(
        None, description="The MCP server's command, as the policy says (None: not over stdio)."
    )


class DeploymentsRepository(BaseModel):
    path: str
    """Absolute path of the deployments repository (it may not exist yet)."""
    exists: bool
    command: str | None
    """The MCP server's command as this worker runs it."""


def repository_path(env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    named = env.get(REPOSITORY_ENV)
    if named:
        return Path(named).expanduser().resolve()
    return Settings.from_env(env).state_dir / DEFAULT_FOLDER


def resolved_command(command: str) -> str:
    if os.sep in command:
        return command
    beside_python = Path(sys.executable).parent / command
    return shutil.which(command) or (str(beside_python) if beside_python.exists() else command)


class DeploymentActivities(SystemActivities):
    system = "deployments"
    of_record = False

    @activity.defn(name="deployments.locate")
    async def locate(self, lookup: DeploymentsLookup) -> DeploymentsRepository:
        path = repository_path()
        return DeploymentsRepository(
            path=str(path),
            exists=(path / ".git").exists(),
            command=resolved_command(lookup.command) if lookup.command else None,
        )
