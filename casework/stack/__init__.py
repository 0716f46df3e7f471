"""The embedded stack: Temporal dev server, sandbox, codec server, worker and review queue.

``casework up`` starts them detached from the terminal and records what it started in
``state_dir/stack.json``; ``casework down`` stops exactly those processes; ``casework status``
probes them. By concern: ``config`` (components, where they listen), ``state`` (the record and
its lock), ``processes`` (launching and stopping), ``health`` (probes and ports) and
``operations`` (up, down, status).
"""

from casework.stack.config import (
    COMPONENTS,
    DEFAULT_TEMPORAL_PORT,
    Component,
    StackConfig,
    StackError,
)
from casework.stack.operations import ComponentStatus, UpResult, stack_down, stack_status, stack_up

__all__ = [
    "COMPONENTS",
    "DEFAULT_TEMPORAL_PORT",
    "Component",
    "ComponentStatus",
    "StackConfig",
    "StackError",
    "UpResult",
    "stack_down",
    "stack_status",
    "stack_up",
]
