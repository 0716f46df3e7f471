"""``python -m reliability [faults|matrix|waiting|all]``: run the suite, print the tables.

Exits non-zero when any invariant fails or any bad-input row does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument(
        "part",
        nargs="?",
        default="all",
        choices=["all", "faults", "matrix", "waiting"],
        help="all (default): the fault suite, then the bad-input matrix",
    )
    parser.add_argument(
        "--size",
        default="full",
        choices=["ci", "full", "load"],
        help="fault suite size, in cases per process: ci (9), full (150), load (500); default full",
    )
    parser.add_argument(
        "--cases",
        type=int,
        default=10_000,
        help="waiting: how many cases wait for approval across the restarts (default 10,000)",
    )
    args = parser.parse_args(argv)
    # Activities fail on purpose here; the SDK's warnings about that would bury the progress.
    logging.basicConfig(level=logging.ERROR)
    ok = True
    if args.part in ("all", "faults"):
        from reliability.suite import SIZES, render, run_suite

        report = asyncio.run(run_suite(SIZES[args.size]))
        print()
        print(render(report), flush=True)
        ok &= report.ok
    if args.part in ("all", "matrix"):
        from reliability.matrix import render_matrix, run_matrix

        rows = asyncio.run(run_matrix())
        print()
        print(render_matrix(rows), flush=True)
        ok &= all(row.passed for row in rows)
    if args.part == "waiting":
        from reliability.waiting import render_waiting, run_waiting

        result = asyncio.run(run_waiting(args.cases))
        print()
        print(render_waiting(result), flush=True)
        ok &= result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
