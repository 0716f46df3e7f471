"""The case drivers: one per process the reliability suite runs, found, not listed.

Every module in this package that defines ``DRIVER`` (a ``CaseDriver`` instance) is one: adding
a process's driver is adding its module, with no list to edit. ``reliability/drivers/base.py``
says what a driver provides, ``docs/reliability.md`` walks through writing one.
"""

from __future__ import annotations

import importlib
import pkgutil

from reliability.drivers.base import CaseDriver


def discover_drivers() -> dict[str, CaseDriver]:
    """Each driver module's ``DRIVER``, by process name; loudly wrong when two drive the same
    process or a ``DRIVER`` is not a driver."""
    found: dict[str, CaseDriver] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        driver = getattr(module, "DRIVER", None)
        if driver is None:
            continue
        if not isinstance(driver, CaseDriver):
            raise TypeError(f"{module.__name__}.DRIVER is {driver!r}, not a CaseDriver")
        if driver.process in found:
            raise ValueError(
                f"{module.__name__} and {type(found[driver.process]).__module__} both drive "
                f"{driver.process!r}"
            )
        found[driver.process] = driver
    return found


DRIVERS: dict[str, CaseDriver] = discover_drivers()
