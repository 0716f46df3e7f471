"""The sandbox finds its systems at run time: a new system's stand-in is a module of its own.

Each test writes a package of stand-ins to a temporary folder, names it in
``CASEWORK_SANDBOX_SYSTEMS`` and serves the sandbox over real HTTP (or fails to build it), so what
is checked is what an organisation adding a system would see.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import httpx
import pytest

from casework.discovery import CatalogueError
from casework.sandbox.app import SYSTEMS_ENV, create_app
from casework.sandbox.server import running_sandbox

# A system of record the catalogue does not have: its own table, a read and an idempotent write
# through the framework's apply-once machinery.
PARCELS = '''
"""The parcel-locker stand-in: lockers that take one parcel each."""

import sqlite3

from fastapi import APIRouter, Response

from casework.sandbox.models import RecordId, StrictModel
from casework.sandbox.store import Db, IdempotencyKey, apply_once, insert, next_id

router = APIRouter(prefix="/lockers", tags=["Lockers"])

SCHEMA = """
CREATE TABLE IF NOT EXISTS lockers (
    seq INTEGER PRIMARY KEY,
    locker_id TEXT NOT NULL UNIQUE,
    parcel_id TEXT NOT NULL
);
"""


class Deposit(StrictModel):
    parcel_id: RecordId


class Locker(Deposit):
    locker_id: str


@router.post("", status_code=201)
def deposit(request: Deposit, key: IdempotencyKey, response: Response, db: Db) -> Locker:
    def apply(conn: sqlite3.Connection) -> Locker:
        seq, locker_id = next_id(conn, "lockers", "LCK")
        locker = Locker(locker_id=locker_id, parcel_id=request.parcel_id)
        insert(conn, "lockers", {"seq": seq, **locker.model_dump()})
        return locker

    return apply_once(
        db,
        response,
        operation="locker deposit",
        key=key,
        request=request,
        result_type=Locker,
        apply=apply,
    )


@router.get("")
def list_lockers(db: Db) -> list[Locker]:
    with db.transaction() as conn:
        rows = conn.execute("SELECT locker_id, parcel_id FROM lockers ORDER BY seq").fetchall()
    return [Locker.model_validate(dict(row)) for row in rows]
'''


def write_package(root: Path, modules: dict[str, str]) -> str:
    """A package of ``modules`` (name -> source) under ``root``, with a name no test shares."""
    name = f"systems_{uuid.uuid4().hex[:8]}"
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text('"""Stand-ins of an organisation\'s own systems."""\n')
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))
    return name


@pytest.fixture
def systems_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def test_a_system_in_a_package_of_its_own_is_served_beside_the_catalogues(
    systems_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_package(systems_root, {"parcels": PARCELS, "helpers": "LIMIT = 3\n"})
    monkeypatch.setenv(SYSTEMS_ENV, f"sandbox,{package}")

    with (
        running_sandbox(tmp_path / "sandbox.db") as url,
        httpx.Client(base_url=url, trust_env=False, timeout=10.0) as client,
    ):
        headers = {"Idempotency-Key": "case-1:deposit"}
        first = client.post("/lockers", json={"parcel_id": "PCL-1"}, headers=headers)
        retry = client.post("/lockers", json={"parcel_id": "PCL-1"}, headers=headers)
        reused = client.post("/lockers", json={"parcel_id": "PCL-2"}, headers=headers)
        lockers = client.get("/lockers").json()
        openapi = client.get("/openapi.json").json()
        catalogue = client.get("/erp/invoices")

    assert (first.status_code, first.json()) == (
        201,
        {"parcel_id": "PCL-1", "locker_id": "LCK-000001"},
    )
    assert (retry.status_code, retry.json()) == (200, first.json())
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert reused.status_code == 409
    assert "already used for a different locker deposit request" in reused.json()["detail"]
    assert lockers == [first.json()]
    assert (
        "The parcel-locker stand-in: lockers that take one parcel each."
        in (openapi["info"]["description"])
    )
    assert catalogue.status_code == 200


def test_the_outbox_and_faults_are_served_whatever_the_catalogue_holds(
    systems_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SYSTEMS_ENV, write_package(systems_root, {}))

    with (
        running_sandbox(tmp_path / "sandbox.db") as url,
        httpx.Client(base_url=url, trust_env=False, timeout=10.0) as client,
    ):
        sent = client.post("/notifications", json={"to": "bob", "subject": "s", "body": "b"})
        fault = client.post("/_faults", json={"method": "GET", "path": "/notifications"})
        faulted = client.get("/notifications")
        erp = client.get("/erp/invoices")

    assert sent.status_code == 201
    assert fault.status_code == 201
    assert faulted.status_code == 503
    assert erp.status_code == 404


def test_a_module_that_does_not_import_stops_the_sandbox_naming_it(
    systems_root: Path, tmp_path: Path
) -> None:
    package = write_package(systems_root, {"ledger": "from fastapi import NoSuchThing\n"})

    with pytest.raises(CatalogueError, match=rf"{package}\.ledger does not import: ImportError"):
        create_app(tmp_path / "sandbox.db", [package])


def test_tables_without_a_router_are_refused_naming_the_module(
    systems_root: Path, tmp_path: Path
) -> None:
    package = write_package(
        systems_root, {"ledger": 'SCHEMA = "CREATE TABLE IF NOT EXISTS ledger (x TEXT);"\n'}
    )

    with pytest.raises(CatalogueError, match=rf"{package}\.ledger must declare `router`"):
        create_app(tmp_path / "sandbox.db", [package])
