"""SVG charts: one point per value, gaps for runs that measured nothing."""

from __future__ import annotations

from aire.dashboard.svg import Series, line_chart


def test_a_missing_value_is_a_gap_not_a_zero() -> None:
    chart = line_chart("accuracy", ["r1", "r2", "r3", "r4", "r5"], [Series("acc", [0.7, 0.72, None, 0.69, 0.71])])
    assert chart.count("<circle") == 4
    assert chart.count("<polyline") == 2  # r1-r2 and r4-r5, nothing drawn through r3
    assert "acc r3" not in chart


def test_the_threshold_is_drawn_and_included_in_the_scale() -> None:
    chart = line_chart("drift", ["a", "b"], [Series("drift", [0.1, 0.2])], threshold=0.9)
    assert 'class="threshold"' in chart and "threshold 0.9" in chart
    assert ">0.9<" in chart  # the top tick is the threshold, above the data


def test_no_data_says_so_instead_of_an_empty_chart() -> None:
    assert "no data yet" in line_chart("fairness gap", ["a"], [Series("gap", [None])])
    assert "no data yet" in line_chart("fairness gap", [], [])


def test_one_run_is_one_point() -> None:
    chart = line_chart("x", ["only"], [Series("x", [0.5])])
    assert chart.count("<circle") == 1 and "<polyline" not in chart
