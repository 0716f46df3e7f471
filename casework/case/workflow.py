"""``CaseWorkflow``: the class a process's workflow subclasses.

A process declares what it is (case type, business key, input model, policy, statuses of its
own); the ``decide`` and ``answer`` updates and signals and the ``audit``, ``open_task``,
``open_tasks`` and ``state`` queries come with the base, so every process is approved and
inspected the same way.
"""

from __future__ import annotations

from casework.case.agents import AgentSteps
from casework.case.endings import CaseEndings
from casework.case.human import HumanTasks


class CaseWorkflow(HumanTasks, AgentSteps, CaseEndings):
    """A governed business process: subclass it and decorate with ``@workflow.defn``."""
