"""casework's one Temporal plugin, used alike by the worker, every client and the replayer.

It carries what must be the same on every side of a case:

- the data converter: pydantic, with a payload that fails validation failing the case naming
  the field (``casework.converter``), and every payload and failure message encrypted when a
  key ring is configured (``casework.codec``);
- the workflow runner: in Temporal's sandbox (tests, the replayer, and workers told
  ``CASEWORK_WORKFLOW_SANDBOX=strict``), with the framework and the catalogue's non-workflow
  packages (systems' records, policies, agent specs) passed through, imported once per worker
  instead of once per workflow run, and workflow modules themselves sandboxed, so a wall-clock
  read or I/O in workflow code is caught; or without it (workers by default), where each case
  shares the worker's modules instead of importing its own (``casework.config.workflow_sandbox``
  says why);
- registration, for a worker: the catalogue's workflows and the activities it is given;
- interceptors, when a caller passes them (tracing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from casework.codec import KeyRing
from casework.converter import data_converter, encrypting_converter

PLUGIN_NAME = "casework"
DETERMINISTIC_LIBRARIES = ("pydantic", "pydantic_core", "annotated_types")
"""Third-party modules workflow code uses that are safe to share across runs."""


def sandbox_runner(passthrough: Sequence[str] = ()) -> SandboxedWorkflowRunner:
    """The workflow sandbox with casework's framework, ``passthrough`` and the deterministic
    libraries passed through."""
    modules = ("casework", *passthrough, *DETERMINISTIC_LIBRARIES)
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


class CaseworkPlugin(SimplePlugin):
    def __init__(
        self,
        *,
        key_ring: KeyRing | None = None,
        passthrough: Sequence[str] = (),
        workflows: Sequence[type] | None = None,
        activities: Sequence[Callable[..., Any]] | None = None,
        interceptors: Sequence[Any] | None = None,
        sandboxed: bool = True,
    ) -> None:
        """``key_ring``: encrypt payloads (None: plain). ``passthrough``: the catalogue packages
        workflow code may share (``Catalogue.passthrough_packages``). ``workflows`` and
        ``activities``: what a worker registers; a client or replayer passes neither.
        ``sandboxed``: run workflow code in the sandbox (the replayer and tests always do)."""
        converter: DataConverter = encrypting_converter(key_ring) if key_ring else data_converter
        runner = sandbox_runner(passthrough) if sandboxed else UnsandboxedWorkflowRunner()
        super().__init__(
            PLUGIN_NAME,
            data_converter=converter,
            workflow_runner=runner,
            workflows=workflows,
            activities=activities,
            interceptors=interceptors,
        )
