"""``python -m casework.sandbox``: serve the systems-of-record sandbox until interrupted."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from casework.config import DEFAULT_SANDBOX_HOST, DEFAULT_SANDBOX_PORT, Settings
from casework.sandbox.app import DEFAULT_SYSTEMS, SYSTEMS_ENV, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m casework.sandbox",
        description="Run the casework systems-of-record sandbox: a local HTTP service standing "
        "in for the systems of record (ERP, payments, service desk, ...), backed by one SQLite "
        "file. It serves every module with a FastAPI router in the packages "
        f"{SYSTEMS_ENV} names (comma-separated; default: {','.join(DEFAULT_SYSTEMS)}), plus "
        "a notification outbox and fault injection. Interactive API docs are served at /docs.",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_SANDBOX_HOST,
        help="interface to listen on (default: %(default)s, loopback only)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_SANDBOX_PORT, help="port (default: %(default)s)"
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=Settings.from_env().state_dir / "sandbox.db",
        help="SQLite file holding the records, created with its directory if missing "
        "(default: %(default)s, under $CASEWORK_HOME when set)",
    )
    args = parser.parse_args(argv)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    uvicorn.run(create_app(args.db), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
