"""Running the review queue: ``casework ui`` in the foreground, or as part of ``casework up``."""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

import uvicorn
from temporalio.client import Client

from casework import telemetry
from casework.client import connect
from casework.config import Settings
from casework.governance.loader import load_policy
from casework.governance.models import Directory
from casework.web.app import create_app
from casework.web.auth import Credentials

log = logging.getLogger("casework.ui")


class NotLoopback(ValueError):
    pass


def listen_address(review_url: str) -> tuple[str, int]:
    """Host and port from ``CASEWORK_REVIEW_URL``; the host must be a loopback address."""
    parts = urlsplit(review_url)
    host = parts.hostname or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopback(
            f"the review queue only listens on loopback, not {host!r} (CASEWORK_REVIEW_URL); "
            "put a reverse proxy with its own authentication in front of it to reach it "
            "from elsewhere"
        )
    return host, parts.port or 8790


def ensure_demo_credentials(settings: Settings) -> dict[str, str]:
    """Passwords for directory users who have none yet; returns the new ones."""
    directory = Directory.model_validate(load_policy("directory").content)
    return Credentials(settings.state_dir).ensure(sorted(directory.users))


def serve(settings: Settings) -> None:
    host, port = listen_address(settings.review_url)
    created = ensure_demo_credentials(settings)
    if created:
        log.info(
            "created review-queue passwords for %d directory users; see %s",
            len(created),
            Credentials(settings.state_dir).handout_file,
        )

    async def client() -> Client:
        return await connect(interceptors=telemetry.tracing_interceptors("casework-ui"))

    app = create_app(settings, client)
    log.info("review queue on http://%s:%d", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
