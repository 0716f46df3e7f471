"""Finding what an installation adds at run time: every module of a named package, imported.

The catalogue's processes (``casework.catalogue``), the sandbox's systems
(``casework.sandbox.app``), and the demos and CLI commands (``casework.cli.extensions``) are all
found this way, so adding one is a new module and never an edit of a shared file. Each reads its
package names from an environment variable (comma-separated), so an organisation can keep its
own in packages of its own. Light on purpose: the sandbox uses it without loading Temporal.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from types import ModuleType


class CatalogueError(RuntimeError):
    """The catalogue cannot be served as it is; the message names the module and what is wrong."""


def packages_named(env: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """The packages the environment variable ``env`` names (comma-separated), else ``default``."""
    configured = os.environ.get(env, "")
    names = tuple(name.strip() for name in configured.split(",") if name.strip())
    return names or default


def import_package(package: str) -> list[ModuleType]:
    """Every module of ``package``, imported; a module that does not import stops discovery,
    named, rather than leaving what it declares silently missing."""
    try:
        root = importlib.import_module(package)
    except ImportError as error:
        raise CatalogueError(f"catalogue package {package!r} does not import: {error}") from error
    modules = [root]
    for info in pkgutil.walk_packages(getattr(root, "__path__", []), f"{package}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as error:
            raise CatalogueError(
                f"catalogue module {info.name} does not import: {type(error).__name__}: {error}"
            ) from error
    return modules


def import_packages(packages: tuple[str, ...]) -> list[ModuleType]:
    """Every module of each of ``packages``, in order."""
    return [module for package in packages for module in import_package(package)]
