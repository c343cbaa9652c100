"""Charts for admin pages, drawn on the server as SVG: no script, no third-party asset (the
admin's CSP allows neither), and nothing only a colour says — every column has a tooltip,
the legend names each colour, and each chart's page has a table of the same numbers.

``stacked_columns`` turns rows of counts into geometry; ``templates/admin/stacked_columns.html``
draws it (``{% include "admin/stacked_columns.html" with chart=chart %}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    """One kind of count stacked in every column (``key`` in the rows), bottom first."""

    key: str
    label: str
    colour: str


@dataclass(frozen=True)
class Segment:
    y: int
    height: int
    colour: str


@dataclass(frozen=True)
class Column:
    x: int
    label: str
    show_label: bool
    segments: list[Segment]
    title: str


@dataclass(frozen=True)
class StackedColumns:
    columns: list[Column]
    series: list[Series]
    description: str
    width: int
    height: int
    plot_height: int
    column_width: int
    peak: int


def stacked_columns(
    rows: Sequence[tuple[str, Mapping[str, int]]],
    series: Sequence[Series],
    *,
    description: str,
    plot_height: int = 120,
    column_width: int = 18,
    gap: int = 6,
    labels: int = 6,
) -> StackedColumns:
    """A column per row (``(label, counts)``, left to right), its height the row's total over
    ``series`` on one scale for all columns; about ``labels`` of the column labels are printed
    under the axis (all are in the tooltips). ``description`` is the chart's accessible name."""
    totals = [sum(counts.get(s.key, 0) for s in series) for _, counts in rows]
    peak = max(totals, default=0)
    step = column_width + gap
    every = max(1, -(-len(rows) // max(1, labels)))  # ceiling division
    columns = []
    for index, (label, counts) in enumerate(rows):
        # Each segment's top is its running total on the scale, so rounding never makes a
        # column taller than its total; a count too small for a pixel still gets one.
        segments, top, running = [], plot_height, 0
        for one in series:
            count = counts.get(one.key, 0)
            if not count:
                continue
            running += count
            next_top = min(top - 1, plot_height - round(plot_height * running / peak))
            segments.append(Segment(y=next_top, height=top - next_top, colour=one.colour))
            top = next_top
        parts = [f"{counts.get(s.key, 0):,} {s.label}" for s in series if counts.get(s.key)]
        columns.append(
            Column(
                x=index * step,
                label=label,
                show_label=index % every == 0 or index == len(rows) - 1,
                segments=segments,
                title=f"{label}: " + (", ".join(parts) if parts else "none"),
            )
        )
    return StackedColumns(
        columns=columns,
        series=list(series),
        description=description,
        width=max(step * len(rows), 1) + 60,
        height=plot_height + 24,
        plot_height=plot_height,
        column_width=column_width,
        peak=peak,
    )
