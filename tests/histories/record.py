"""Record the stored histories that ``tests/test_replay.py`` replays.

    .venv/bin/python -m tests.histories.record

Each process's scenarios are declared in a module of this package named after it
(``invoice_exception.py``, ``ticket_triage.py`` ...) and found by discovery; the recorder is
``casework.testing.recorder``, which also says when (re)recording is legitimate: only with a
``workflow.patched()`` change, never to make a replay failure go away.

Name scenarios to record only those (re-recording changes timestamps in every file):

    .venv/bin/python -m tests.histories.record severity_1_paged
"""

from __future__ import annotations

import sys

from casework.testing.recorder import discover_histories

PACKAGE = "tests.histories"


def main() -> None:
    discover_histories(PACKAGE).main(sys.argv[1:])


if __name__ == "__main__":
    main()
