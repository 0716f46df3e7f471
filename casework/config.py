"""Settings shared by the CLI, the worker and the sandbox, read from the environment.

Temporal connection settings are deliberately not here: they come from
``temporalio.envconfig`` (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS ...), so
pointing casework at a cluster or Temporal Cloud works the way it does for every Temporal tool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

TASK_QUEUE = "casework"
DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_UI_PORT = 8233
DEFAULT_SANDBOX_HOST = "127.0.0.1"
DEFAULT_SANDBOX_PORT = 8787
DEFAULT_CODEC_PORT = 8789
DEFAULT_REVIEW_PORT = 8790
DEFAULT_METRICS_PORT = 9464
DEFAULT_INTAKE_PORT = 8791
HOME_DIR_NAME = ".casework"


SANDBOX_URL_ENV = "CASEWORK_SANDBOX_URL"


class SettingsError(ValueError):
    """A setting is present but unusable; the message names the variable."""


def secret_from_env(env: Mapping[str, str], name: str) -> SecretStr | None:
    """A secret from ``NAME``, or from the file ``NAME_FILE`` names (a mounted secret)."""
    if value := env.get(name):
        return SecretStr(value)
    if path := env.get(f"{name}_FILE"):
        try:
            return SecretStr(Path(path).read_text().strip())
        except OSError as error:
            raise SettingsError(f"{name}_FILE names {path}: {error.strerror}") from error
    return None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name) or str(default)
    if not text.isdigit() or int(text) == 0:
        raise SettingsError(f"{name} must be a positive whole number, got {text!r}")
    return int(text)


WORKFLOW_SANDBOX_MODES = ("off", "strict")


def workflow_sandbox(env: Mapping[str, str] = os.environ) -> bool:
    """Whether workers run workflow code in Temporal's sandbox: ``CASEWORK_WORKFLOW_SANDBOX`` is
    ``strict`` (yes) or ``off`` (no, the default). The sandbox re-imports a workflow's module for
    every case it runs, pydantic models and all, which is most of what a cached case costs a
    worker; casework keeps it for tests and the replayer (``casework.testing``, where a
    wall-clock read or I/O in workflow code fails at once) and checks workflow modules
    statically when a worker starts (``casework.determinism``)."""
    mode = env.get("CASEWORK_WORKFLOW_SANDBOX") or "off"
    if mode not in WORKFLOW_SANDBOX_MODES:
        raise SettingsError(
            f"CASEWORK_WORKFLOW_SANDBOX must be one of {', '.join(WORKFLOW_SANDBOX_MODES)}, "
            f"got {mode!r}"
        )
    return mode == "strict"


def find_home(env: Mapping[str, str] = os.environ, cwd: Path | None = None) -> tuple[Path, str]:
    """casework's home (the embedded stack's state, the payload key ring, decision keys, the
    review queue's sign-in) and how it was found, the same way from any directory:

    1. ``CASEWORK_HOME``, when set;
    2. else the nearest ``.casework`` folder in the working directory or above it (as git finds
       ``.git``), so a project can keep a home of its own;
    3. else ``.casework`` in the user's home directory, where ``casework up`` creates it.

    Always an absolute path: a process started elsewhere (the worker, the review queue) or a
    command run from another folder finds the same home, never a new empty one beside it.
    """
    if named := env.get("CASEWORK_HOME"):
        return (Path.cwd() / Path(named).expanduser()).resolve(), "CASEWORK_HOME"
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / HOME_DIR_NAME).is_dir():
            return folder / HOME_DIR_NAME, f"the nearest {HOME_DIR_NAME} above {start}"
    user_home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return user_home / HOME_DIR_NAME, "the per-user default"


class Settings(BaseModel):
    """What a casework process needs to know about its surroundings."""

    task_queue: str = TASK_QUEUE
    sandbox_url: str = f"http://{DEFAULT_SANDBOX_HOST}:{DEFAULT_SANDBOX_PORT}"
    ui_url: str = f"http://localhost:{DEFAULT_UI_PORT}"
    """The Temporal Web UI, for links to cases."""
    codec_url: str = f"http://{DEFAULT_SANDBOX_HOST}:{DEFAULT_CODEC_PORT}"
    """The codec server the Web UI decrypts payloads through (see casework.codec_server)."""
    review_url: str = f"http://127.0.0.1:{DEFAULT_REVIEW_PORT}"
    """casework's review queue (``casework ui``); it only ever listens on loopback."""
    intake_url: str = f"http://127.0.0.1:{DEFAULT_INTAKE_PORT}"
    """The intake service that starts cases from signed webhooks (``casework.intake``)."""
    metrics_address: str | None = None
    """``host:port`` where the worker serves Prometheus metrics; None: no endpoint."""
    state_dir: Path = Path(HOME_DIR_NAME)
    """casework's home; :meth:`from_env` finds it with :func:`find_home`."""
    home_found_by: str = "given"
    """How ``state_dir`` was found, for messages that name it."""
    model: str | None = None
    """litellm model name; None means the offline stand-in model answers."""
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    """Never in payloads, prompts, logs or the audit trail: SecretStr prints as ``**********``."""
    llm_timeout_seconds: float = 60.0
    max_cached_workflows: int = 1000
    """Cases a worker keeps in memory between steps (the SDK's default). A case not cached is
    replayed from its history on its next step: with many cases moving at once, size it to
    them, at the memory it costs (``make bench`` row 3 measures both)."""
    sandboxed_workflows: bool = Field(default_factory=workflow_sandbox)
    """Run workflow code in Temporal's sandbox (see :func:`workflow_sandbox`)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        home, found_by = find_home(env)
        return cls(
            task_queue=env.get("CASEWORK_TASK_QUEUE", TASK_QUEUE),
            sandbox_url=env.get(
                SANDBOX_URL_ENV, f"http://{DEFAULT_SANDBOX_HOST}:{DEFAULT_SANDBOX_PORT}"
            ),
            ui_url=env.get("CASEWORK_UI_URL", f"http://localhost:{DEFAULT_UI_PORT}"),
            codec_url=env.get(
                "CASEWORK_CODEC_URL", f"http://{DEFAULT_SANDBOX_HOST}:{DEFAULT_CODEC_PORT}"
            ),
            review_url=env.get("CASEWORK_REVIEW_URL", f"http://127.0.0.1:{DEFAULT_REVIEW_PORT}"),
            intake_url=env.get("CASEWORK_INTAKE_URL", f"http://127.0.0.1:{DEFAULT_INTAKE_PORT}"),
            metrics_address=env.get("CASEWORK_METRICS_ADDRESS") or None,
            state_dir=home,
            home_found_by=found_by,
            model=env.get("CASEWORK_MODEL") or None,
            llm_api_base=env.get("CASEWORK_LLM_API_BASE") or None,
            llm_api_key=secret_from_env(env, "CASEWORK_LLM_API_KEY"),
            llm_timeout_seconds=float(env.get("CASEWORK_LLM_TIMEOUT", "60")),
            max_cached_workflows=_positive_int(env, "CASEWORK_MAX_CACHED_WORKFLOWS", 1000),
            sandboxed_workflows=workflow_sandbox(env),
        )
