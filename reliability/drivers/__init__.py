"""The case drivers: one per process the reliability suite runs. Add a process with one entry.

See ``reliability/drivers/base.py`` for what a driver provides and ``docs/reliability.md`` for a
walk-through.
"""

from __future__ import annotations

from reliability.drivers.base import CaseDriver
from reliability.drivers.invoice_exception import InvoiceExceptionDriver
from reliability.drivers.ticket_triage import TicketTriageDriver

DRIVERS: dict[str, CaseDriver] = {
    driver.process: driver
    for driver in [
        InvoiceExceptionDriver(),
        TicketTriageDriver(),
    ]
}
