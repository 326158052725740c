"""Markdown helpers for the benchmark's report: numbers with units, and tables."""

from __future__ import annotations

from typing import Any


def fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    """A number with thousands separators and a unit, or ``-`` when not measured."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def ms(value: float | None) -> str:
    """Seconds shown as milliseconds."""
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def times(value: float) -> str:
    """A ratio with as many digits as it needs: ``44x``, ``7.8x``, ``0.18x``."""
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(title: str, header: list[str], rows: list[list[str]], note: str = "") -> list[str]:
    """A bold title (and a note), then the table; nothing at all when there are no rows."""
    if not rows:
        return []
    lines = ["", f"**{title}**" + (f" {note}" if note else ""), "", row(header), row(["---"] * len(header))]
    return lines + [row(cells) for cells in rows]
