"""A process map drawn as SVG, server-side: the report page's picture of the paths cases take.

The directly-follows graph (:class:`casework.report.ProcessMap`) is held as a networkx graph,
laid out in rows in the order cases go through the activities (loops set aside, see
:func:`_layers`), and drawn by networkx with matplotlib's SVG backend (text kept as text, so
the map is searchable and small). Arrows are as
thick as the transition is frequent and as dark as its median wait is long; each is labelled
with both. No system binary is needed, unlike Graphviz.
"""

from __future__ import annotations

import io
import re

import networkx as nx
from matplotlib import colormaps, rc_context
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from casework.report import ProcessMap

NODE_COLOR = "#dfe7fb"
INCH_PER_ROW = 1.6
INCH_PER_COLUMN = 2.3


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def graph(process_map: ProcessMap) -> nx.DiGraph:
    """The map as a networkx graph: nodes carry ``count`` and ``layer``, edges ``count`` and
    ``wait`` (median seconds)."""
    g = nx.DiGraph()
    for activity, count in process_map.activities.items():
        g.add_node(activity, count=count)
    for edge in process_map.edges:
        g.add_edge(edge.source, edge.target, count=edge.count, wait=edge.median_wait_seconds)
    for node, row in _layers(g, process_map).items():
        g.nodes[node]["layer"] = row
    return _ordered(g)


def _layers(g: nx.DiGraph, process_map: ProcessMap) -> dict[str, int]:
    """A row per activity, Sugiyama style: loops are set aside by a depth-first walk from the
    activities cases start with, most frequent transitions first (an edge back to an activity
    on the current path closes a loop); the rest is acyclic, and each activity goes one row
    below its lowest predecessor (networkx's topological generations). Activities nothing
    follows (how cases end) go to the bottom row."""
    forward = nx.DiGraph()
    forward.add_nodes_from(g)
    on_path: set[str] = set()
    seen: set[str] = set()

    def walk(node: str) -> None:
        seen.add(node)
        on_path.add(node)
        for following in sorted(g.successors(node), key=lambda n: -g.edges[node, n]["count"]):
            if following == node or following in on_path:
                continue
            forward.add_edge(node, following)
            if following not in seen:
                walk(following)
        on_path.discard(node)

    roots = sorted(process_map.starts, key=lambda n: -process_map.starts[n]) + sorted(g.nodes)
    for root in roots:
        if root in g and root not in seen:
            walk(root)
    rows = {
        node: row
        for row, generation in enumerate(nx.topological_generations(forward))
        for node in generation
    }
    bottom = max(rows.values(), default=0)
    for node in g.nodes:
        if all(following == node for following in g.successors(node)):
            rows[node] = bottom
    return rows


def _ordered(g: nx.DiGraph) -> nx.DiGraph:
    """The same graph with each activity's ``column`` in its layer, in the order of its
    predecessors' average place (the barycenter heuristic), so fewer arrows cross."""
    place: dict[str, float] = {}
    ordered = nx.DiGraph()
    for layer in sorted({data["layer"] for _, data in g.nodes(data=True)}):
        members = [node for node, data in g.nodes(data=True) if data["layer"] == layer]

        def barycenter(node: str) -> float:
            placed = [place[p] for p in g.predecessors(node) if p in place]
            return sum(placed) / len(placed) if placed else float("inf")

        for index, node in enumerate(sorted(members, key=lambda n: (barycenter(n), n))):
            place[node] = index
            ordered.add_node(node, **g.nodes[node], column=index - (len(members) - 1) / 2)
    ordered.add_edges_from(g.edges(data=True))
    return ordered


def svg(process_map: ProcessMap, title: str) -> str:
    """The map as an inline ``<svg>`` element (no XML declaration)."""
    g = graph(process_map)
    rows = max((data["layer"] for _, data in g.nodes(data=True)), default=0) + 1
    widest = max(
        (sum(1 for _, d in g.nodes(data=True) if d["layer"] == row) for row in range(rows)),
        default=1,
    )
    # Top-down: a row per layer, activities of a layer side by side, centred.
    pos = {node: (data["column"], -data["layer"]) for node, data in g.nodes(data=True)}
    figure = Figure(figsize=(max(4.0, INCH_PER_COLUMN * widest), max(2.0, INCH_PER_ROW * rows)))
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.9))
    axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    waits = [data["wait"] or 0.0 for _, _, data in g.edges(data=True)]
    shade = Normalize(vmin=0.0, vmax=max(waits, default=0.0) or 1.0)
    colors = colormaps["Blues"]
    most = max((data["count"] for _, _, data in g.edges(data=True)), default=1)
    edges = list(g.edges(data=True))
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "casework-process-map"}):
        nx.draw_networkx_edges(
            g,
            pos,
            ax=axes,
            edgelist=[(a, b) for a, b, _ in edges],
            width=[0.8 + 3.2 * data["count"] / most for _, _, data in edges],
            edge_color=[colors(0.35 + 0.65 * shade(data["wait"] or 0.0)) for _, _, data in edges],
            arrows=True,
            arrowstyle="-|>",
            arrowsize=12,
            # Arrows stop short of the activity boxes (points), not at their centres.
            min_source_margin=16,
            min_target_margin=16,
            connectionstyle="arc3,rad=0.12",
        )
        nx.draw_networkx_edge_labels(
            g,
            pos,
            ax=axes,
            edge_labels={
                (a, b): f"{data['count']} · {duration(data['wait'])}" for a, b, data in edges
            },
            font_size=6,
            rotate=False,
            connectionstyle="arc3,rad=0.12",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
        )
        nx.draw_networkx_labels(
            g,
            pos,
            ax=axes,
            labels={node: f"{node}\n{data['count']}" for node, data in g.nodes(data=True)},
            font_size=7,
            bbox={"boxstyle": "round,pad=0.4", "fc": NODE_COLOR, "ec": "#3867d6", "lw": 0.8},
        )
        axes.margins(0.12, 0.12)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    element = text[text.index("<svg") :]
    # Let the page scale it to the card's width.
    return re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
        r'<svg\1 class="process-map"',
        element,
        count=1,
    )
