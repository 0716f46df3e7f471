"""``python -m bench [--quick]``: run the five rows on a fresh dev server, print the table and
write the same figures to ``bench/results/latest.json``; with ``--default-cache-only``, row 3's
batch C alone, to ``bench/results/default-cache.json``.

Every figure is computed here from runs made now; nothing is carried over from earlier runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.agent_history import AgentHistory, measure_agent_history
from bench.agent_history import row as agent_history_row
from bench.economy import Economy, measure_economy
from bench.infra import TEMPORAL, bench_stack, progress
from bench.overhead import Latency, Overhead, bare_worker, measure_latency, measure_overhead
from bench.waiting import DefaultCacheBatch, Waiting, default_cache_batch, measure_waiting
from casework.config import Settings
from casework.testing.scripted_llm import scripted_llm_server
from casework.testing.temporal import scripted_settings
from casework.worker import running_worker

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Sizes:
    straight_through: int
    approvals: int
    waiting: int
    cache: int
    """Batch C's worker cache: the SDK's default in a full run; in a quick one a quarter of the
    batch, so that cases are evicted and replayed there too."""


# Quick mode fits in two minutes on a 2-core machine: the dev server starts about 8 waiting
# cases a second there, and row 3 starts (and approves) two batches of this size.
QUICK = Sizes(straight_through=50, approvals=30, waiting=120, cache=30)
FULL = Sizes(straight_through=1000, approvals=200, waiting=10_000, cache=1000)


def filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (``tmpfs``, ``ext4`` ...), from /proc/mounts."""
    resolved, found, kind = path.resolve(), "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        mount_point, fs_type = line.split()[1:3]
        if resolved.is_relative_to(mount_point) and len(mount_point) > len(found):
            found, kind = mount_point, fs_type
    return kind


def machine(mode: str, work_root: Path) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    temporal_cli = subprocess.run(
        [str(TEMPORAL), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "mode": mode,
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": temporal_cli,
        "litellm": version("litellm"),
        "work_dir": str(work_root),
        "work_filesystem": filesystem(work_root),
    }


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024 / 1024:.1f} MiB"


def table(rows: list[list[str]]) -> str:
    headers = ["row", "casework", "baseline", "casework / baseline"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def default_cache_row(c: DefaultCacheBatch) -> list[str]:
    return [
        f"  worker caching {c.cache}: RSS all {c.cases:,} waiting / approved until all paid",
        f"{mib(c.worker_rss_waiting)} (idle {mib(c.worker_rss_before)}, "
        f"+{mib(c.worker_rss_waiting - c.worker_rss_before)}) / {c.finish_seconds:.1f} s",
        f"{mib(c.worker_rss_finished)} after",
        "-",
    ]


def rows(
    overhead: Overhead,
    latency: Latency,
    waiting: Waiting,
    economy: Economy,
    agent_history: AgentHistory,
) -> list[list[str]]:
    lat = latency.summary()
    a, b, bare, c = (
        waiting.before_restart,
        waiting.after_restart,
        waiting.bare,
        waiting.default_cache,
    )
    return [
        [
            f"1 overhead: straight-through cases/s (n={overhead.cases})",
            f"{overhead.casework_per_second:.1f}/s",
            f"{overhead.bare_per_second:.1f}/s bare "
            f"({overhead.activities_per_case} no-op activities)",
            f"{overhead.ratio:.2f}",
        ],
        [
            f"2 approval latency p50 / p95 (n={latency.samples})",
            f"{lat['casework_p50_ms']:.0f} / {lat['casework_p95_ms']:.0f} ms",
            f"{lat['bare_p50_ms']:.0f} / {lat['bare_p95_ms']:.0f} ms bare signal+activity",
            f"{lat['ratio_p50']:.2f} / {lat['ratio_p95']:.2f}",
        ],
        [
            f"3 waiting at scale (n={a.cases}): start until all waiting",
            f"{a.start_seconds:.1f} s ({a.cases / a.start_seconds:.1f} cases/s)",
            f"{bare.start_seconds:.1f} s ({bare.cases / bare.start_seconds:.1f}/s) bare "
            f"({bare.activities} activities, then a wait)",
            f"{bare.start_seconds / a.start_seconds:.2f}",
        ],
        [
            "  per waiting case (cached)",
            f"{waiting.casework_kib_per_case:.0f} KiB",
            f"{waiting.bare_kib_per_case:.0f} KiB bare",
            f"{waiting.casework_kib_per_case / waiting.bare_kib_per_case:.2f}",
        ],
        [
            "  worker RSS with all waiting / server DB growth",
            f"{mib(a.worker_rss_waiting)} / +{mib(a.db_growth_bytes)}",
            f"fresh worker {mib(a.worker_rss_before)}; DB {mib(a.db_bytes_waiting)} in all",
            "-",
        ],
        [
            "  approved in bulk until all paid: same worker / restarted",
            f"{a.finish_seconds:.1f} s / {b.finish_seconds:.1f} s",
            f"RSS restarted worker {mib(b.worker_rss_at_approval)} idle, "
            f"{mib(b.worker_rss_finished)} after",
            f"{b.finish_seconds / a.finish_seconds:.2f} restarted / same",
        ],
        default_cache_row(c),
        [
            f"4 model calls per case (demo mix, n={economy.cases})",
            f"{economy.casework['calls_per_case']:.2f}",
            f"{economy.baseline['calls_per_case']:.2f} agent decides every step",
            f"{economy.calls_ratio:.2f}",
        ],
        [
            "  model tokens per case (chars/4)",
            f"{economy.casework['tokens_per_case']:.0f}",
            f"{economy.baseline['tokens_per_case']:.0f}",
            f"{economy.tokens_ratio:.2f}",
        ],
        agent_history_row(agent_history),
    ]


async def run(sizes: Sizes, work_root: Path) -> dict[str, Any]:
    async with bench_stack(work_root) as stack:
        client, sandbox, sandbox_url = stack.client, stack.sandbox, stack.sandbox_url
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        settings = Settings(task_queue=queue, sandbox_url=sandbox_url)
        async with running_worker(client, settings), bare_worker(client):
            progress("row 1: overhead")
            overhead = await measure_overhead(client, sandbox, queue, sizes.straight_through)
            progress("row 2: approval latency")
            latency = await measure_latency(client, sandbox, queue, sizes.approvals)
        progress("row 3: waiting at scale (worker as a separate process)")
        waiting = await measure_waiting(
            client,
            sandbox,
            stack.address,
            sandbox_url,
            sizes.waiting,
            stack.db_file,
            stack.work,
            sizes.cache,
        )
        progress("row 4: model economy")
        with scripted_llm_server() as llm:
            queue = f"bench-llm-{uuid.uuid4().hex[:6]}"
            async with running_worker(client, scripted_settings(queue, sandbox_url, llm)):
                economy = await measure_economy(client, sandbox_url, queue, llm)
                progress("row 5: agent region history")
                agent_history = await measure_agent_history(client, sandbox_url, queue, llm)
    return {
        "overhead": overhead,
        "latency": latency,
        "waiting": waiting,
        "economy": economy,
        "agent_history": agent_history,
    }


async def run_default_cache(sizes: Sizes, work_root: Path) -> DefaultCacheBatch:
    """Row 3's batch C alone, on a fresh server: ``sizes.waiting`` cases on a worker that
    caches ``sizes.cache``."""
    async with bench_stack(work_root) as stack:
        progress(f"row 3, batch C alone: {sizes.waiting:,} cases, a worker caching {sizes.cache:,}")
        return await default_cache_batch(
            stack.client,
            stack.sandbox,
            stack.address,
            stack.sandbox_url,
            sizes.waiting,
            sizes.cache,
            stack.db_file,
            stack.work,
        )


def report(info: dict[str, Any], wall: float, figures: dict[str, Any]) -> dict[str, Any]:
    """What a results file holds: when and where the run was made, then its figures."""
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(wall, 1),
        "machine": info,
        **figures,
    }


def to_json(figures: dict[str, Any]) -> dict[str, Any]:
    overhead: Overhead = figures["overhead"]
    latency: Latency = figures["latency"]
    waiting: Waiting = figures["waiting"]
    economy: Economy = figures["economy"]
    return {
        "overhead": {
            **asdict(overhead),
            "casework_cases_per_second": overhead.casework_per_second,
            "bare_cases_per_second": overhead.bare_per_second,
            "ratio": overhead.ratio,
        },
        "approval_latency": {"samples": latency.samples, **latency.summary()},
        "waiting": waiting.as_dict(),
        "economy": {
            **asdict(economy),
            "calls_ratio": economy.calls_ratio,
            "tokens_ratio": economy.tokens_ratio,
            "tokens_are": "ceil(characters / 4) of the JSON sent and received",
        },
        "agent_history": figures["agent_history"].as_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under two minutes")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the dev server's SQLite file and the sandbox's database go (default: the "
        "system temp dir). On a slow disk the server's fsyncs dominate row 3; a tmpfs such as "
        "/dev/shm takes the disk out of the figures (the output and the JSON say which)",
    )
    parser.add_argument(
        "--waiting",
        type=int,
        help="row 3's batch size instead of the mode's (full: 10,000); the output says so",
    )
    parser.add_argument(
        "--default-cache-only",
        action="store_true",
        help="run only row 3's batch C on a fresh server (a worker caching the SDK's default "
        "1,000 cases; quick: a quarter of the batch): the memory figure at 10,000 waiting "
        "cases without the hours of the whole run; writes bench/results/default-cache.json",
    )
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    sizes = QUICK if args.quick else FULL
    if args.waiting:
        mode = f"{mode}, row 3 at {args.waiting:,}"
        sizes = replace(sizes, waiting=args.waiting)
    if args.default_cache_only:
        mode = f"{mode}, batch C only"
    # The demo mix's ERP fault makes activities fail on purpose; the SDK's warnings about that
    # (with tracebacks) would bury the progress lines.
    logging.basicConfig(level=logging.ERROR)
    info = machine(mode, args.work_dir)
    print(f"casework benchmark, {mode} mode: {sizes}", flush=True)
    started = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    if args.default_cache_only:
        batch = asyncio.run(run_default_cache(sizes, args.work_dir))
        wall = time.monotonic() - started
        results = RESULTS / "default-cache.json"
        contents = report(info, wall, {"default_cache": asdict(batch)})
        lines = [default_cache_row(batch)]
    else:
        figures = asyncio.run(run(sizes, args.work_dir))
        wall = time.monotonic() - started
        results = RESULTS / "latest.json"
        contents = report(info, wall, to_json(figures))
        lines = rows(**figures)
    results.write_text(json.dumps(contents, indent=2) + "\n")
    print()
    print(table(lines))
    print()
    print(
        f"machine: {info['cpus']} x {info['cpu_model']}, {info['memory_gib']} GiB; Python "
        f"{info['python']}, temporalio {info['temporalio']}, {info['temporal_cli'].splitlines()[0]}"
    )
    print(f"server and sandbox databases in {info['work_dir']} ({info['work_filesystem']})")
    print(f"wall time {wall:.0f}s; figures in {results}")


if __name__ == "__main__":
    sys.exit(main())
