"""The leaderboard's charts as inline SVG (pure: standard library only, no JavaScript, no CDN).

Each function returns one ``<svg>`` element as a string, sized by its ``viewBox`` so CSS can
scale it to the page (``.plot svg { width: 100%; height: auto }``); text inherits the page's
font. Every model name and label is escaped here, so the markup is safe to insert as is (the
view marks it safe). Long names are shortened on the axis; the full name is in a tooltip.

* :func:`ci_chart`: rating with its 95% interval per model (FastChat's "confidence intervals");
* :func:`heatmap`: a model × model matrix: share of A's decisive wins over B, or battle counts;
* :func:`win_rate_bars`: each model's predicted average win rate against the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from arena.chart_ticks import nice_ticks

__all__ = ["ci_chart", "heatmap", "win_rate_bars"]

WIDTH = 640
FONT = 13
ROW = 20
ACCENT = "#3457d5"
MUTED = "#667085"
GRID = "#e4e7ec"
INK = "#1d2330"
NO_DATA = "#f2f4f7"
MAX_LABEL_CHARS = 28


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _short(name: str, limit: int = MAX_LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _label_width(names: Sequence[str], font: float = FONT) -> float:
    """Room for the longest (shortened) label: ~0.6 em per character of a proportional font."""
    longest = max((len(_short(n)) for n in names), default=4)
    return min(0.6 * font * longest + 10, 0.45 * WIDTH)


def _svg(width: float, height: float, title: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" font-size="{FONT}" font-family="inherit"><title>{_e(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _empty(title: str, css_class: str) -> str:
    return _svg(WIDTH, 60, title, [
        f'<text x="{WIDTH / 2}" y="35" text-anchor="middle" fill="{MUTED}">No data yet</text>'
    ], css_class)


def _fmt_points(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def ci_chart(rows: Sequence[Mapping[str, Any]], *, title: str = "Rating with 95% confidence interval") -> str:
    """Dot (rating) and whisker (95% interval) per model, best at the top.

    ``rows``: mappings with ``model``, ``rating``, ``ci_low``, ``ci_high``, in display order.
    """
    if not rows:
        return _empty(title, "plot-ci")
    names = [str(r["model"]) for r in rows]
    left = _label_width(names)
    right = 56  # room for the rating printed at the end of each row
    top, bottom = 40, 40
    plot_w = WIDTH - left - right
    height = top + ROW * len(rows) + bottom
    lo = min(float(r["ci_low"]) for r in rows)
    hi = max(float(r["ci_high"]) for r in rows)
    if hi - lo < 1e-9:
        lo, hi = lo - 10, hi + 10
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    body = [
        f'<text x="8" y="18" fill="{INK}" font-size="14" font-weight="600">{_e(title)}</text>',
        f'<g fill="{MUTED}" font-size="11"><circle cx="{WIDTH - 190}" cy="12" r="4" fill="{ACCENT}"/>'
        f'<text x="{WIDTH - 182}" y="16">rating</text>'
        f'<line x1="{WIDTH - 130}" y1="12" x2="{WIDTH - 106}" y2="12" stroke="{ACCENT}" stroke-width="2"/>'
        f'<text x="{WIDTH - 100}" y="16">95% interval</text></g>',
    ]
    axis_y = top + ROW * len(rows)
    for tick in nice_ticks(lo, hi, 6):
        tx = x(tick)
        body.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}" stroke="{GRID}"/>')
        body.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" text-anchor="middle" fill="{MUTED}">{tick:g}</text>')
    body.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="{MUTED}">'
        "arena score (Elo scale)</text>"
    )
    for k, row in enumerate(rows):
        cy = top + ROW * k + ROW / 2
        name = names[k]
        rating, c_lo, c_hi = float(row["rating"]), float(row["ci_low"]), float(row["ci_high"])
        if k % 2:
            body.append(f'<rect x="0" y="{cy - ROW / 2:.1f}" width="{WIDTH}" height="{ROW}" fill="#f8f9fc"/>')
        body.append(
            f'<g class="ci-row"><title>{_e(name)}: {rating:.1f} (95% interval {c_lo:.1f} to {c_hi:.1f})</title>'
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" fill="{INK}">{_e(_short(name))}</text>'
            f'<line x1="{x(c_lo):.1f}" y1="{cy:.1f}" x2="{x(c_hi):.1f}" y2="{cy:.1f}" stroke="{ACCENT}" stroke-width="2"/>'
            f'<line x1="{x(c_lo):.1f}" y1="{cy - 5:.1f}" x2="{x(c_lo):.1f}" y2="{cy + 5:.1f}" stroke="{ACCENT}" stroke-width="2"/>'
            f'<line x1="{x(c_hi):.1f}" y1="{cy - 5:.1f}" x2="{x(c_hi):.1f}" y2="{cy + 5:.1f}" stroke="{ACCENT}" stroke-width="2"/>'
            f'<circle cx="{x(rating):.1f}" cy="{cy:.1f}" r="4.5" fill="{ACCENT}" stroke="#fff" stroke-width="1.5"/>'
            f'<text x="{WIDTH - 6}" y="{cy + 4:.1f}" text-anchor="end" fill="{MUTED}">{_fmt_points(rating)}</text></g>'
        )
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="{MUTED}"/>')
    return _svg(WIDTH, height, title, body, "plot-ci")


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _mix(stops: Sequence[tuple[float, tuple[int, int, int]]], t: float) -> tuple[float, float, float]:
    """Piecewise-linear colour scale through ``(position, rgb)`` stops, ``t`` in [0, 1]."""
    t = min(1.0, max(0.0, t))
    for (p0, c0), (p1, c1) in zip(stops, stops[1:], strict=False):
        if t <= p1:
            u = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            return tuple(a + (b - a) * u for a, b in zip(c0, c1, strict=True))  # type: ignore[return-value]
    return tuple(float(c) for c in stops[-1][1])  # type: ignore[return-value]


# Red (A mostly loses) → white (even) → blue (A mostly wins), as FastChat's RdBu heatmap.
DIVERGING = ((0.0, (178, 24, 43)), (0.25, (239, 138, 98)), (0.5, (247, 247, 247)),
             (0.75, (103, 169, 207)), (1.0, (33, 102, 172)))
# White → deep blue for counts.
SEQUENTIAL = ((0.0, (247, 251, 255)), (0.4, (158, 202, 225)), (0.7, (66, 146, 198)), (1.0, (8, 48, 107)))


def _luminance(rgb: Sequence[float]) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255


def _fmt_count(n: float) -> str:
    n = float(n)
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return f"{n:.0f}"


def _heatmap_cell(
    pair: tuple[str, str], value: float, empty: str | None, is_frac: bool, peak: float, small: bool,
    box: tuple[float, float, float],
) -> str:
    """One square of :func:`heatmap` at ``box`` = (x, y, side): ``pair`` is (row model, column
    model). ``empty`` is None for a cell with battles, else its tooltip (the diagonal, or a pair
    without battles): such a cell is grey and unlabelled."""
    x0, cy, cell = box
    if empty is not None:
        fill, label, tip = NO_DATA, "", empty
        rgb: Sequence[float] = (242, 244, 247)
    else:
        rgb = _mix(DIVERGING, value) if is_frac else _mix(SEQUENTIAL, value / peak)
        fill = _hex(rgb)
        label = (f"{value:.2f}" if not small else f"{value * 100:.0f}") if is_frac else _fmt_count(value)
        tip = (f"{pair[0]} won {value:.0%} of its decisive battles against {pair[1]}" if is_frac
               else f"{pair[0]} vs {pair[1]}: {value:.0f} decisive battles")
    text_fill = "#fff" if _luminance(rgb) < 0.55 else INK
    return (
        f'<g><title>{_e(tip)}</title><rect x="{x0:.1f}" y="{cy:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
        f'fill="{fill}" stroke="#fff"/>'
        + (f'<text x="{x0 + cell / 2:.1f}" y="{cy + cell / 2 + 3.5:.1f}" text-anchor="middle" '
           f'font-size="{9 if small else 11}" fill="{text_fill}">{_e(label)}</text>' if label else "")
        + "</g>"
    )


def _heatmap_legend(kind: str, peak: float, small: bool, lx: float, ly: float, lw: float) -> list[str]:
    """The colour legend of :func:`heatmap` at (``lx``, ``ly``), ``lw`` wide: a gradient bar with its scale."""
    is_frac = kind == "win_fraction"
    stops = DIVERGING if is_frac else SEQUENTIAL
    grad_id = f"grad-{kind}"
    body = [
        f'<defs><linearGradient id="{grad_id}">'
        + "".join(f'<stop offset="{p:.2f}" stop-color="{_hex(c)}"/>' for p, c in stops)
        + "</linearGradient></defs>"
        f'<rect x="{lx:.1f}" y="{ly:.1f}" width="{lw:.1f}" height="10" fill="url(#{grad_id})" stroke="{GRID}"/>'
    ]
    ticks = [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] if is_frac else [(0.0, "0"), (1.0, _fmt_count(peak))]
    for p, text in ticks:
        body.append(f'<text x="{lx + lw * p:.1f}" y="{ly + 24:.1f}" text-anchor="middle" font-size="11" '
                    f'fill="{MUTED}">{_e(text)}</text>')
    caption = ("share of the row model's decisive battles it won" + (" (in %)" if small else "")
               if is_frac else "decisive battles between the two")
    body.append(f'<text x="{lx:.1f}" y="{ly + 42:.1f}" font-size="11" fill="{MUTED}">{_e(caption)}; '
                "grey: no battles</text>")
    return body


def heatmap(
    models: Sequence[str],
    matrix: Sequence[Sequence[float]],
    *,
    kind: str = "win_fraction",
    counts: Sequence[Sequence[float]] | None = None,
    title: str | None = None,
) -> str:
    """A model × model heatmap; rows are model A, columns model B.

    ``kind="win_fraction"``: ``matrix[i][j]`` is the share of i's decisive battles against j
    that i won, on a red–white–blue scale centred at 0.5; cells where ``counts`` (same shape) is
    0 have no battles and are left grey. ``kind="battle_count"``: ``matrix`` holds counts, on a
    white–blue scale from 0 to the largest. Each cell prints its value and has a tooltip.
    """
    if kind not in ("win_fraction", "battle_count"):
        raise ValueError("kind must be win_fraction or battle_count")
    is_frac = kind == "win_fraction"
    title = title or (
        "Share of A's wins over B (decisive battles)" if is_frac else "Battles between each pair (decisive)"
    )
    css_class = "plot-heatmap plot-" + kind.replace("_", "-")
    n = len(models)
    if n == 0:
        return _empty(title, css_class)
    names = [str(m) for m in models]
    left = _label_width(names, 12)
    slant = _label_width(names, 12) * 0.72  # rotated column labels: their height, and overhang to the right
    top = 34 + slant
    legend_h = 58
    cell = max(18.0, min(50.0, (WIDTH - left - slant) / n))
    width = max(WIDTH, left + cell * n + slant)
    height = top + cell * n + legend_h
    peak = max((float(v) for row in matrix for v in row), default=0.0) or 1.0

    body = [f'<text x="8" y="18" fill="{INK}" font-size="14" font-weight="600">{_e(title)}</text>']
    body.append(f'<text x="8" y="{top - 8:.1f}" fill="{MUTED}" font-size="11">row: model A · column: model B</text>')
    for j, name in enumerate(names):
        cx = left + cell * j + cell / 2
        body.append(
            f'<text transform="translate({cx + 3:.1f},{top - 6:.1f}) rotate(-45)" font-size="12" fill="{INK}">'
            f"<title>{_e(name)}</title>{_e(_short(name))}</text>"
        )
    small = cell < 30
    for i, name in enumerate(names):
        cy = top + cell * i
        body.append(
            f'<text x="{left - 6}" y="{cy + cell / 2 + 4:.1f}" text-anchor="end" font-size="12" fill="{INK}">'
            f"<title>{_e(name)}</title>{_e(_short(name))}</text>"
        )
        for j in range(n):
            value = float(matrix[i][j])
            played = (float(counts[i][j]) > 0) if (is_frac and counts is not None) else (is_frac or value > 0)
            empty = "same model" if i == j else None if played else "no battles"
            box = (left + cell * j, cy, cell)
            body.append(_heatmap_cell((names[i], names[j]), value, empty, is_frac, peak, small, box))
    body.extend(_heatmap_legend(kind, peak, small, left, top + cell * n + 14, min(260.0, cell * n)))
    return _svg(width, height, title, body, css_class)


def win_rate_bars(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "Average win rate against all other models (predicted, no ties)",
) -> str:
    """A horizontal bar per model: ``avg_win_rate`` (0–1; rows where it is None are skipped)."""
    rows = [r for r in rows if r.get("avg_win_rate") is not None]
    if not rows:
        return _empty(title, "plot-winrate")
    names = [str(r["model"]) for r in rows]
    left = _label_width(names)
    top, bottom, right = 40, 34, 48
    plot_w = WIDTH - left - right
    height = top + ROW * len(rows) + bottom
    axis_y = top + ROW * len(rows)
    body = [f'<text x="8" y="18" fill="{INK}" font-size="14" font-weight="600">{_e(title)}</text>']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        tx = left + t * plot_w
        dash = ' stroke-dasharray="4 3"' if t == 0.5 else ""
        body.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}" stroke="{GRID}"{dash}/>')
        body.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" text-anchor="middle" fill="{MUTED}">{t:.0%}</text>')
    for k, row in enumerate(rows):
        y0 = top + ROW * k
        rate = min(1.0, max(0.0, float(row["avg_win_rate"])))
        body.append(
            f'<g class="bar"><title>{_e(names[k])}: {rate:.1%}</title>'
            f'<text x="{left - 8}" y="{y0 + ROW / 2 + 4:.1f}" text-anchor="end" fill="{INK}">{_e(_short(names[k]))}</text>'
            f'<rect x="{left}" y="{y0 + 3:.1f}" width="{rate * plot_w:.1f}" height="{ROW - 6}" rx="2" fill="{ACCENT}" '
            f'fill-opacity="{0.45 + 0.55 * rate:.2f}"/>'
            f'<text x="{left + rate * plot_w + 5:.1f}" y="{y0 + ROW / 2 + 4:.1f}" fill="{MUTED}">{rate:.0%}</text></g>'
        )
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="{MUTED}"/>')
    return _svg(WIDTH, height, title, body, "plot-winrate")


def rating_history_chart(points: Sequence[Mapping[str, Any]], *, title: str = "Rating over time") -> str:
    """The model's rating at each stored snapshot, with its 95% interval as a band (oldest left).

    ``points``: mappings with ``rating``, ``ci_low``, ``ci_high`` and ``battles``, oldest first.
    """
    if not points:
        return _empty(title, "plot-history")
    height, left, right, top, bottom = 260, 56, 16, 36, 36
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    lo = min(float(p["ci_low"]) for p in points)
    hi = max(float(p["ci_high"]) for p in points)
    if hi - lo < 1e-9:
        lo, hi = lo - 10, hi + 10
    last = max(len(points) - 1, 1)

    def x(k: int) -> float:
        return left + k / last * plot_w if len(points) > 1 else left + plot_w / 2

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    body = [f'<text x="8" y="18" fill="{INK}" font-size="14" font-weight="600">{_e(title)}</text>']
    for tick in nice_ticks(lo, hi, 5):
        body.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" stroke="{GRID}"/>'
                    f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="{MUTED}">{tick:g}</text>')
    band = [f"{x(k):.1f},{y(float(p['ci_high'])):.1f}" for k, p in enumerate(points)]
    band += [f"{x(k):.1f},{y(float(p['ci_low'])):.1f}" for k, p in reversed(list(enumerate(points)))]
    body.append(f'<polygon points="{" ".join(band)}" fill="{ACCENT}" fill-opacity="0.15"/>')
    line = " ".join(f"{'M' if k == 0 else 'L'}{x(k):.1f},{y(float(p['rating'])):.1f}" for k, p in enumerate(points))
    body.append(f'<path d="{line}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    final = points[-1]
    body.append(f'<circle cx="{x(len(points) - 1):.1f}" cy="{y(float(final["rating"])):.1f}" r="4" fill="{ACCENT}">'
                f'<title>{float(final["rating"]):.1f} after {int(final["battles"])} votes</title></circle>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="{MUTED}">'
                f"snapshots ({len(points)}), oldest left; band: 95% interval</text>")
    return _svg(WIDTH, height, title, body, "plot-history")
