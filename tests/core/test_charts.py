"""The server-drawn stacked column chart: one scale for all columns, segments stacked in the
series' order, no column taller than its total says, tooltips with every count."""

from __future__ import annotations

from core.charts import Series, stacked_columns

SERIES = [Series("ok", "delivered", "#080"), Series("bad", "failed", "#800")]


def test_columns_share_one_scale_and_stack_bottom_up():
    chart = stacked_columns(
        [("Mon", {"ok": 90, "bad": 10}), ("Tue", {"ok": 50}), ("Wed", {})],
        SERIES,
        description="Deliveries per day",
        plot_height=100,
    )
    assert chart.peak == 100
    monday, tuesday, wednesday = chart.columns
    assert [(s.y, s.height, s.colour) for s in monday.segments] == [
        (10, 90, "#080"),
        (0, 10, "#800"),
    ]
    assert [(s.y, s.height) for s in tuesday.segments] == [(50, 50)]
    assert wednesday.segments == [] and wednesday.title == "Wed: none"
    assert monday.title == "Mon: 90 delivered, 10 failed"
    assert [c.x for c in chart.columns] == [0, 24, 48]


def test_a_count_too_small_for_a_pixel_still_shows_and_rounding_never_overflows():
    chart = stacked_columns(
        [("a", {"ok": 1, "bad": 1}), ("b", {"ok": 10_000})], SERIES, description="x", plot_height=50
    )
    small = chart.columns[0].segments
    assert [s.height for s in small] == [1, 1]
    assert all(s.y >= 0 for c in chart.columns for s in c.segments)
    assert sum(s.height for s in chart.columns[1].segments) == 50


def test_only_some_labels_are_printed_but_always_the_last():
    rows = [(f"d{n}", {"ok": 1}) for n in range(30)]
    chart = stacked_columns(rows, SERIES, description="x", labels=6)
    shown = [c.label for c in chart.columns if c.show_label]
    assert shown == ["d0", "d5", "d10", "d15", "d20", "d25", "d29"]


def test_an_empty_chart_has_no_peak():
    chart = stacked_columns([("a", {}), ("b", {})], SERIES, description="x")
    assert chart.peak == 0 and all(not c.segments for c in chart.columns)
