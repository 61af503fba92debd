"""Charts as SVG strings: one line per metric over runs or versions, no plotting service.

Points with no value (a run that computed no fairness gap) are gaps in the line, drawn
as nothing rather than as zero, which would read as a measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aire.dashboard.html import Html, join, number, tag

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 40


@dataclass(frozen=True)
class Series:
    """One metric: ``values[i]`` belongs to ``labels[i]`` of the chart (None: not measured)."""

    name: str
    values: Sequence[float | None]


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
               threshold: float | None = None) -> Html:
    """A line chart with a y axis from the data's range (and 0), a dashed threshold if given."""
    known = [v for s in series for v in s.values if v is not None]
    if threshold is not None:
        known.append(threshold)
    if not labels or not known:
        return tag("p", f"{title}: no data yet", class_="muted")
    low, high = min(0.0, *known), max(known)
    high = high if high > low else low + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (len(labels) - 1) if len(labels) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    parts = [tag("text", title, x=str(LEFT), y="16", class_="chart-title")]
    for tick in (low, (low + high) / 2, high):
        parts.append(tag("line", "", x1=str(LEFT), x2=str(WIDTH - RIGHT), y1=f"{y(tick):.1f}", y2=f"{y(tick):.1f}",
                         class_="grid-line"))
        parts.append(tag("text", number(tick, 3), x=str(LEFT - 6), y=f"{y(tick) + 4:.1f}", text_anchor="end",
                         class_="tick"))
    for i, label in enumerate(labels):
        parts.append(tag("text", label, x=f"{x(i):.1f}", y=str(HEIGHT - BOTTOM + 16), text_anchor="middle",
                         class_="tick"))
    if threshold is not None:
        parts.append(tag("line", tag("title", f"threshold {number(threshold)}"), x1=str(LEFT), x2=str(WIDTH - RIGHT),
                         y1=f"{y(threshold):.1f}", y2=f"{y(threshold):.1f}", class_="threshold"))
    for index, line in enumerate(series):
        parts.extend(_line(line, index, x, y, labels))
    legend = join(tag("text", s.name, x=str(LEFT + 150 * i), y=str(HEIGHT - 6), class_=f"legend s{i % 4}")
                  for i, s in enumerate(series))
    return tag("svg", Html(join(parts) + legend), xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {WIDTH} {HEIGHT}",
               role="img", aria_label=title, class_="chart")


def _line(line: Series, index: int, x: Callable[[int], float], y: Callable[[float], float],
          labels: Sequence[str]) -> list[Html]:
    parts: list[Html] = []
    run: list[str] = []
    for i, value in enumerate(line.values):
        if value is None:
            parts.extend(_polyline(run, index))
            run = []
            continue
        px, py = x(i), y(value)
        run.append(f"{px:.1f},{py:.1f}")
        parts.append(tag("circle", tag("title", f"{line.name} {labels[i]}: {number(value)}"), cx=f"{px:.1f}",
                         cy=f"{py:.1f}", r="3.5", class_=f"s{index % 4}"))
    parts.extend(_polyline(run, index))
    return parts


def _polyline(points: list[str], index: int) -> list[Html]:
    if len(points) < 2:
        return []
    return [tag("polyline", "", points=" ".join(points), class_=f"line s{index % 4}")]

