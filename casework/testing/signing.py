"""Decision keys for a test session or a harness run, and decisions signed like `casework approve`
signs them.

``install_test_keys`` generates a key for every directory user and points
``CASEWORK_DECISION_KEYS_FILE`` (workers, and the ``policies.load`` activity in-process) and
``CASEWORK_SIGNING_KEYS_DIR`` (the CLI and these helpers) at them, so the processes started
afterwards inherit the same keys. A harness that keeps keys of its own passes ``keys``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import WorkflowHandle

from casework.case.tasks import DecisionReceipt, TaskDecision
from casework.signing import sign_act, sign_decision
from casework.signing_keys import keys_environment, load_signing_key, signed_by_approver
from casework.testing.temporal import BIN


def install_test_keys(directory: Path) -> None:
    os.environ.update(keys_environment(directory))


def _keys(keys: Path | None) -> Path:
    return keys or Path(os.environ["CASEWORK_SIGNING_KEYS_DIR"])


def signed(
    case_id: str, decision: TaskDecision | None = None, *, keys: Path | None = None, **fields: Any
) -> TaskDecision:
    """``decision`` (or ``TaskDecision(**fields)``) signed by its approver for ``case_id``."""
    return signed_by_approver(decision or TaskDecision(**fields), case_id, _keys(keys))


A = TypeVar("A", bound=BaseModel)


def signed_act(case_id: str, act_name: str, act: A, signer: str, *, keys: Path | None = None) -> A:
    """``act`` (an answer, acknowledgement, reassignment ...) signed by ``signer`` for the
    ``act_name`` step of ``case_id``, as the CLI and the review queue sign it."""
    return sign_act(act_name, act, case_id, load_signing_key(signer, _keys(keys)))


def signed_as_sent(
    case_id: str, approver: str, amount: str, *, keys: Path | None = None
) -> dict[str, Any]:
    """An approval of any ``amount`` signed by ``approver``, as ``casework sign`` once signed
    ``1e400``: the decision model's own check on amounts is skipped. The payload as JSON data."""
    decision = TaskDecision.model_construct(
        approver=approver, action="approve", amount=Decimal(amount), comment=None, task_id=None
    )
    key = load_signing_key(approver, _keys(keys))
    return sign_decision(decision, case_id, key).model_dump(mode="json", exclude_none=True)


async def decide(handle: WorkflowHandle, **fields: Any) -> DecisionReceipt:
    """Send ``TaskDecision(**fields)``, signed by its approver, as the ``decide`` update (a
    refusal raises ``WorkflowUpdateFailedError``, as the update does)."""
    return await handle.execute_update(
        "decide", signed(handle.id, **fields), result_type=DecisionReceipt
    )


async def casework_sign(case_id: str, approver: str, action: str, *options: str) -> str:
    """The payload ``casework sign`` prints, as the README has people pass it to
    ``temporal workflow signal --input``."""
    command = [str(BIN / "casework"), "sign", case_id, "--as", approver]
    # In a thread: a worker serving the case may run on this event loop.
    completed = await asyncio.to_thread(
        subprocess.run,
        [*command, "--action", action, *options],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, f"casework sign failed:\n{completed.stderr}"
    return completed.stdout.strip()
