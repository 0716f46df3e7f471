"""Small inline SVG charts for the report page: no JavaScript, no front-end build."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ["#3867d6", "#20bf6b", "#f7b731", "#eb3b5a", "#8854d0", "#0fb9b1", "#fa8231", "#4b6584"]
ROW = 24
LABEL_WIDTH = 190
BAR_WIDTH = 300
VALUE_WIDTH = 110


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    fmt: Callable[[float], str] = lambda value: f"{value:g}",
    maximum: float | None = None,
    colors: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, one per (label, value), scaled to ``maximum`` (default: the largest)."""
    if not items:
        return Markup(f'<p class="empty">{escape(title)}: nothing yet</p>')
    top = maximum if maximum is not None else max(value for _, value in items)
    height = ROW * len(items) + 8
    # Wide enough for the longest label at 12px (about 7px a character), so none is cut off.
    label_width = max(LABEL_WIDTH // 2, min(360, 7 * max(len(label) for label, _ in items) + 16))
    width = label_width + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (label, value) in enumerate(items):
        y = 4 + index * ROW
        length = 0 if not top else max(1.0, BAR_WIDTH * value / top) if value else 0
        color = (colors or PALETTE)[index % len(colors or PALETTE)]
        parts += [
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>",
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{ROW - 8}" '
            f'fill="{color}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>',
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}" font-size="12">'
            f"{escape(fmt(value))}</text>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))


def percent(value: float) -> str:
    return f"{value:.0%}"
