"""Server-rendered SVG charts of the training pages (job curves, a dataset's token lengths): no
JavaScript library, no CDN."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from arena.chart_ticks import nice_ticks


@dataclass(frozen=True)
class _Frame:
    """A chart's box: the viewBox size, the margins around the plot area and the label font size."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    font: int

    def start(self, title: str, css_class: str, title_at: tuple[int, int], title_size: int) -> list[str]:
        """The opening tag (with the title as its accessible name) and the visible title."""
        return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'aria-label="{escape(title)}" class="{css_class}">',
                f'<text x="{title_at[0]}" y="{title_at[1]}" font-size="{title_size}" font-weight="600">{escape(title)}</text>']

    def empty(self, svg: list[str], text: str) -> str:
        """The chart closed with ``text`` in its middle (no data to draw)."""
        svg.append(f'<text x="{self.width / 2}" y="{self.height / 2}" text-anchor="middle" fill="#667085" font-size="12">'
                   f"{text}</text></svg>")
        return "".join(svg)

    def y_grid(self, svg: list[str], ticks: list[float], sy, fmt: str) -> None:
        """A light horizontal line and a label at each y tick."""
        for tick in ticks:
            svg.append(f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" '
                       f'stroke="#eef0f4"/><text x="{self.left - 6}" y="{sy(tick) + 4:.1f}" '
                       f'text-anchor="end" font-size="{self.font}" fill="#667085">{tick:{fmt}}</text>')

    def x_axis(self, svg: list[str], ticks: list[float], sx, label: str, label_size: int) -> None:
        """The x tick labels under the plot area and the axis label at the bottom."""
        for tick in ticks:
            svg.append(f'<text x="{sx(tick):.1f}" y="{self.height - self.bottom + 14}" '
                       f'text-anchor="middle" font-size="{self.font}" fill="#667085">{tick:g}</text>')
        svg.append(f'<text x="{(self.left + self.width - self.right) / 2}" y="{self.height - 4}" text-anchor="middle" '
                   f'font-size="{label_size}" fill="#667085">{escape(label)}</text>')


def line_chart(series: dict[str, list[tuple[float, float]]], *, title: str, x_label: str = "step",
               width: int = 560, height: int = 240) -> str:
    """An SVG chart of one or more (x, y) series; points with a missing y are skipped."""
    colors = ["#3457d5", "#d9480f", "#13795b", "#7048e8", "#b42318", "#0e7490", "#a16207", "#667085"]
    points = {name: [(x, y) for x, y in pts if y is not None and math.isfinite(y)] for name, pts in series.items()}
    all_points = [p for pts in points.values() for p in pts]
    left, right, top, bottom = 56, 12, 28, 34
    frame = _Frame(width, height, left, right, top, bottom, font=10)
    svg = frame.start(title, "chart", (left, 17), 13)
    if not all_points:
        return frame.empty(svg, "no data yet")
    xs, ys = [p[0] for p in all_points], [p[1] for p in all_points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.08 or abs(y0) * 0.1 or 1.0
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    frame.y_grid(svg, nice_ticks(y0, y1), sy, ".4g")
    x_ticks = nice_ticks(x0, x1)
    if all(float(x).is_integer() for x in xs):
        x_ticks = [t for t in x_ticks if float(t).is_integer()]  # steps are whole numbers
    frame.x_axis(svg, x_ticks, sx, x_label, 11)
    for index, (name, pts) in enumerate(points.items()):
        color = colors[index % len(colors)]
        if pts:
            path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts))
            svg.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            for x, y in pts[-1:]:
                svg.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        svg.append(f'<text x="{width - right - 4}" y="{17 + 13 * index}" text-anchor="end" font-size="11" '
                   f'fill="{color}">{escape(name)}</text>')
    svg.append("</svg>")
    return "".join(svg)


def job_charts(metrics: list[dict], method: str) -> list[str]:
    """The loss curve and learning rate, plus DPO's reward margin and accuracy."""
    def series(key: str) -> list[tuple[float, float]]:
        return [(m["step"], m.get(key)) for m in metrics if "step" in m]

    charts = [line_chart({"loss": series("loss")}, title="Training loss"),
              line_chart({"learning rate": series("learning_rate")}, title="Learning rate")]
    if method == "dpo":
        charts.append(line_chart({"margin": series("rewards/margins")}, title="Reward margin (chosen − rejected)"))
        charts.append(line_chart({"accuracy": series("rewards/accuracies")}, title="Reward accuracy"))
    return charts


def compare_chart(runs: dict[str, list[dict]], *, key: str = "loss", title: str = "Training loss, run by run") -> str:
    """One chart with a curve per run (label -> that run's metrics), to compare runs of one dataset or base."""
    return line_chart({label: [(m["step"], m.get(key)) for m in metrics if "step" in m]
                       for label, metrics in runs.items()}, title=title)


def histogram_chart(bins: list[list[int]], *, title: str, x_label: str = "tokens per row",
                    marks: dict[str, float] | None = None, width: int = 440, height: int = 250) -> str:
    """An SVG histogram of ``[[low, high, count], ...]`` bins, with a dashed vertical line per mark
    (label -> x, e.g. each preset's max_length) that falls within the axis. Narrower than the line
    charts, with larger text, so that scaled down to a phone's width its labels stay readable."""
    left, right, top, bottom = 44, 10, 30, 36
    frame = _Frame(width, height, left, right, top, bottom, font=12)
    svg = frame.start(title, "chart histogram", (4, 18), 14)
    if not bins:
        return frame.empty(svg, "no rows")
    x0, x1 = bins[0][0], bins[-1][1]
    y1 = max(count for _, _, count in bins) or 1
    y_ticks = [t for t in nice_ticks(0, y1) if float(t).is_integer()]
    y1 = max(y1, *(y_ticks or [0]))

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - y / y1 * (height - top - bottom)

    frame.y_grid(svg, y_ticks, sy, "g")
    for low, high, count in bins:
        if count:
            svg.append(f'<rect x="{sx(low) + 0.5:.1f}" y="{sy(count):.1f}" width="{max(0.5, sx(high) - sx(low) - 1):.1f}" '
                       f'height="{sy(0) - sy(count):.1f}" fill="#3457d5"><title>{low}–{high - 1} tokens: {count} '
                       f"row{'s' if count != 1 else ''}</title></rect>")
    frame.x_axis(svg, nice_ticks(x0, x1, 4), sx, x_label, 12)
    shown = [(label, x) for label, x in (marks or {}).items() if x0 <= x <= x1]
    for index, (label, x) in enumerate(shown):
        # the label beside its line, on the side with room, one line lower per mark
        anchor, dx = ("start", 3) if sx(x) < (left + width) / 2 else ("end", -3)
        svg.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{sy(0):.1f}" stroke="#d9480f" '
                   f'stroke-dasharray="4 3"/><text x="{sx(x) + dx:.1f}" y="{top + 11 + 13 * index}" '
                   f'text-anchor="{anchor}" font-size="12" fill="#d9480f">{escape(label)}</text>')
    svg.append("</svg>")
    return "".join(svg)
