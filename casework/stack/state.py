"""What ``casework up`` started, as recorded in ``state_dir/stack.json``, and the lock that
serialises ``up`` and ``down`` on one state dir."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from casework.stack.config import Component, StackConfig, StackError


class RecordedProcess(BaseModel):
    """A started process as recorded in stack.json."""

    pid: int
    command: list[str]
    log: Path
    started_at: float
    """Epoch seconds; worker health ignores task-queue pollers older than this."""


class StackState(BaseModel):
    config: StackConfig
    processes: dict[Component, RecordedProcess] = {}


def load_state(config: StackConfig) -> StackState | None:
    try:
        return StackState.model_validate_json(config.state_file.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError as error:
        raise StackError(
            f"{config.state_file} is unreadable ({error.error_count()} problems); stop any "
            "casework processes by hand and delete it"
        ) from error


def save_state(state: StackState) -> None:
    path = state.config.state_file
    if not state.processes:
        path.unlink(missing_ok=True)
        return
    # Write-then-rename, so a reader never sees half a file.
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(state.model_dump_json(indent=2))
    temporary.replace(path)


@contextlib.contextmanager
def locked(config: StackConfig) -> Iterator[None]:
    """Serialise `up`/`down` on one state dir, so two at once cannot double-start anything."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with (config.state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
