"""What the catalogue adds to the ``casework`` command: process demos and verbs of its own.

A process that needs a verb of its own (``casework deliver`` routes a message to a loan case,
``casework resubmit`` sends a vendor's document) declares it as a :class:`Command` in a module of
the demo packages; ``casework demo`` runs the :class:`~casework.cli.seeding.ProcessDemo` those
modules declare. Both are found at run time: every module of the packages ``CASEWORK_DEMOS``
names (comma-separated; default ``demos``) is imported, and one that does not import stops the
command naming it. A module declares ``COMMANDS`` (a sequence of :class:`Command`) and/or
``DEMO`` (a ``ProcessDemo``); the framework imports none of them by name.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any, Generic, TypeVar

from temporalio.client import Client

from casework.config import Settings
from casework.discovery import CatalogueError, import_package, packages_named

DEMOS_ENV = "CASEWORK_DEMOS"
DEFAULT_DEMOS = ("demos",)

InputT = TypeVar("InputT")


@dataclass(frozen=True)
class Command(Generic[InputT]):
    """A ``casework NAME ...`` verb a catalogue module adds for its process."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    """Declare the verb's arguments on its own parser."""
    read: Callable[[argparse.Namespace], InputT]
    """Read and check the arguments before anything is contacted, raising ``CommandError``
    naming what is wrong; what it returns is handed to ``run``."""
    run: Callable[[Client, Settings, InputT], Awaitable[int]]
    """Carry it out, connected to Temporal; the command's exit code."""
    description: str | None = None
    """The verb's ``--help`` text (default: ``help``)."""
    sends: bool = True
    """It sends case data: refused when it would go out unencrypted to a stack that encrypts."""

    def add_to(self, commands: Any) -> None:
        """Register the verb on the CLI's subcommands (``argparse`` subparsers)."""
        if self.name in commands.choices:
            raise CatalogueError(
                f"a catalogue module declares the command {self.name!r}, which casework has "
                "already; give it another name"
            )
        self.add_arguments(
            commands.add_parser(self.name, help=self.help, description=self.description)
        )


def demo_packages() -> tuple[str, ...]:
    return packages_named(DEMOS_ENV, DEFAULT_DEMOS)


def demo_modules() -> tuple[ModuleType, ...]:
    """Every module of the demo packages, imported once per process."""
    return _imported(demo_packages())


@cache
def _imported(packages: tuple[str, ...]) -> tuple[ModuleType, ...]:
    return tuple(module for package in packages for module in import_package(package))


def declared(module: ModuleType, name: str, kind: type) -> list[Any]:
    """What ``module`` declares as ``name``: one ``kind``, a sequence of them, or nothing; any
    other value stops the command naming the module."""
    value = getattr(module, name, None)
    if value is None:
        return []
    values = list(value) if isinstance(value, list | tuple) else [value]
    if wrong := [v for v in values if not isinstance(v, kind)]:
        raise CatalogueError(
            f"{module.__name__}.{name} must be a {kind.__name__} or a sequence of them, "
            f"not {type(wrong[0]).__name__}"
        )
    return values


def catalogue_commands() -> dict[str, Command[Any]]:
    """The verbs the demo packages' modules declare (``COMMANDS``), by name."""
    return _commands(demo_packages())


@cache
def _commands(packages: tuple[str, ...]) -> dict[str, Command[Any]]:
    found: dict[str, Command[Any]] = {}
    declared_by: dict[str, str] = {}
    for module in _imported(packages):
        for command in declared(module, "COMMANDS", Command):
            if command.name in found:
                raise CatalogueError(
                    f"the command {command.name!r} is declared by both "
                    f"{declared_by[command.name]} and {module.__name__}"
                )
            found[command.name] = command
            declared_by[command.name] = module.__name__
    return found
