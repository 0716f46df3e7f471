"""What the embedded stack is made of and where it listens: its components and configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel
from temporalio.envconfig import ClientConfigProfile

from casework.codec import KEY_RING_FILE
from casework.config import (
    DEFAULT_CODEC_PORT,
    DEFAULT_INTAKE_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_NAMESPACE,
    DEFAULT_REVIEW_PORT,
    DEFAULT_SANDBOX_PORT,
    DEFAULT_UI_PORT,
    TASK_QUEUE,
    Settings,
)
from casework.intake_signing import SECRET_FILE

Component = Literal["codec", "temporal", "sandbox", "worker", "intake", "ui"]
COMPONENTS: tuple[Component, ...] = ("codec", "temporal", "sandbox", "worker", "intake", "ui")
"""Start order (the Web UI calls the codec server; the worker needs Temporal and the sandbox;
the intake service starts cases the worker runs; the review queue needs the worker); ``down``
stops them in reverse."""

DEFAULT_TEMPORAL_PORT = 7233

LABELS: dict[Component, str] = {
    "codec": "codec server",
    "temporal": "Temporal dev server",
    "sandbox": "sandbox",
    "worker": "worker",
    "intake": "intake service",
    "ui": "review queue",
}
"""What progress messages call each component."""

# Settings that decide where the stack listens; an `up` asking for different ones than the
# running stack has must not silently report success.
_ADDRESS_FIELDS = {
    "host",
    "temporal_port",
    "ui_port",
    "sandbox_port",
    "codec_port",
    "review_port",
    "metrics_port",
    "intake_port",
    "namespace",
    "task_queue",
}


class StackError(Exception):
    """Starting or stopping the stack failed; the message is shown to the user as-is."""


class StackConfig(BaseModel):
    """Where the embedded stack keeps its state and what it listens on."""

    state_dir: Path = Path(".casework")
    host: str = "127.0.0.1"
    temporal_port: int = DEFAULT_TEMPORAL_PORT
    ui_port: int = DEFAULT_UI_PORT
    sandbox_port: int = DEFAULT_SANDBOX_PORT
    codec_port: int = DEFAULT_CODEC_PORT
    review_port: int = DEFAULT_REVIEW_PORT
    """casework's review queue (``casework ui``)."""
    metrics_port: int = DEFAULT_METRICS_PORT
    """Where the worker serves Prometheus metrics."""
    intake_port: int = DEFAULT_INTAKE_PORT
    """The intake service (signed webhooks that start cases)."""
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = TASK_QUEUE
    components: tuple[Component, ...] = COMPONENTS
    """Which components ``up`` runs; tests run subsets."""
    worker_command: list[str] | None = None
    """Replaces ``python -m workers``, e.g. with a stub worker in tests."""

    @classmethod
    def from_settings(cls, settings: Settings) -> StackConfig:
        # The Temporal side comes from the envconfig profile (TEMPORAL_ADDRESS, ...) that the
        # CLI's client also connects with, so `up` starts the server where the client looks.
        profile = ClientConfigProfile.load()
        return cls(
            state_dir=settings.state_dir,
            temporal_port=_port(f"//{profile.address or ''}", DEFAULT_TEMPORAL_PORT),
            ui_port=_port(settings.ui_url, DEFAULT_UI_PORT),
            sandbox_port=_port(settings.sandbox_url, DEFAULT_SANDBOX_PORT),
            codec_port=_port(settings.codec_url, DEFAULT_CODEC_PORT),
            review_port=_port(settings.review_url, DEFAULT_REVIEW_PORT),
            metrics_port=_port(f"//{settings.metrics_address or ''}", DEFAULT_METRICS_PORT),
            intake_port=_port(settings.intake_url, DEFAULT_INTAKE_PORT),
            namespace=profile.namespace or DEFAULT_NAMESPACE,
            task_queue=settings.task_queue,
        )

    @property
    def temporal_address(self) -> str:
        return f"{self.host}:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    @property
    def codec_url(self) -> str:
        return f"http://{self.host}:{self.codec_port}"

    @property
    def key_ring(self) -> Path:
        return self.state_dir / KEY_RING_FILE

    @property
    def review_url(self) -> str:
        return f"http://{self.host}:{self.review_port}"

    @property
    def intake_url(self) -> str:
        return f"http://{self.host}:{self.intake_port}"

    @property
    def intake_secret(self) -> Path:
        return self.state_dir / SECRET_FILE

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"


def listen_port(config: StackConfig, name: Component) -> int | None:
    """The port a component listens on (the worker: its metrics endpoint, when it is ours)."""
    match name:
        case "codec":
            return config.codec_port
        case "temporal":
            return config.temporal_port
        case "sandbox":
            return config.sandbox_port
        case "worker":
            return config.metrics_port if config.worker_command is None else None
        case "intake":
            return config.intake_port
        case "ui":
            return config.review_port


def addresses(config: StackConfig) -> dict[str, Any]:
    return config.model_dump(include=_ADDRESS_FIELDS)


def summary(config: StackConfig, names: list[Component]) -> str:
    parts = {
        "temporal": f"Temporal {config.temporal_address}, Web UI {config.ui_url}",
        "sandbox": f"sandbox {config.sandbox_url}",
        "worker": f"worker on task queue {config.task_queue!r}",
        "codec": f"codec server {config.codec_url}",
        "intake": f"intake {config.intake_url}",
        "ui": f"review queue {config.review_url}",
    }
    return ", ".join(part for name, part in parts.items() if name in names)


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default
