"""Plain-text output for the CLI: tables and Web UI links."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join(
        [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    ).rstrip()


def web_ui_link(ui_url: str, namespace: str, case_id: str) -> str:
    return f"{ui_url.rstrip('/')}/namespaces/{quote(namespace)}/workflows/{quote(case_id, safe='')}"
