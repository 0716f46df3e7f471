"""What the report page shows beyond the KPI charts: where cases stall, and the process maps.

The maps are drawn server-side (casework.processmap, matplotlib's SVG backend) off the event
loop, one drawing at a time: matplotlib's settings are process-wide.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from markupsafe import Markup

from casework.processmap import duration, svg
from casework.report import Report
from casework.web import charts

_drawing = threading.Lock()


def _maps(kpis: Report) -> dict[str, Markup]:
    with _drawing:
        # svg() returns matplotlib's own SVG: its text is escaped by matplotlib.
        return {
            process: Markup(svg(process_map, process))
            for process, process_map in kpis.flow.process_maps.items()
        }


async def figures(kpis: Report) -> dict[str, Any]:
    """The template context for the flow section of report.html."""
    flow = kpis.flow
    return {
        "maps": await asyncio.to_thread(_maps, kpis),
        "duration": duration,
        # Each process's slowest steps first: where its cases stall.
        "step_rows": [
            (process, step, times)
            for process, steps in flow.step_times.items()
            for step, times in sorted(steps.items(), key=lambda item: -(item[1].p90_seconds or 0.0))
        ],
        "flow_charts": {
            "throughput": charts.bar_chart(
                "Cases closed per day", list(flow.throughput_per_day.items())
            ),
            "sla_attainment": charts.bar_chart(
                "SLA attainment of closed human tasks",
                [
                    (process, rate.rate)
                    for process, rate in flow.sla_attainment_by_process.items()
                    if rate.rate is not None
                ],
                fmt=charts.percent,
                maximum=1.0,
            ),
        },
    }
