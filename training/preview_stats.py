"""The figures of a dataset preview from its rows' token lengths (standard library only).

``preview_summary(measured, kind)`` takes what ``training.tools.token_lengths`` printed and returns
what the dataset page stores and shows: the rendered rows, length statistics, histogram bins and,
for every method that trains on this kind of dataset and each of its presets, how many rows that
preset's ``max_length`` would cut, drop or split (``RecipeConfig.over_length``, ``length_limit()``;
TRL's DPO and KTO also drop a row whose prompt alone fills ``max_length``).
Counts are of the measured rows (all of them, or the tool's seeded sample of a large dataset).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from arena.chart_ticks import nice_ticks
from training.recipes.config import CONFIG_CLASSES, PRESETS

#: about this many histogram bars: enough to see the shape, few enough to read on a phone
HISTOGRAM_BINS = 16


def length_stats(lengths: Sequence[int]) -> dict[str, Any]:
    """Count, min, median, 95th percentile (nearest rank), max and mean; {} for no rows."""
    if not lengths:
        return {}
    ordered = sorted(lengths)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {"count": n, "min": ordered[0], "median": median, "p95": ordered[max(0, math.ceil(0.95 * n) - 1)],
            "max": ordered[-1], "mean": round(sum(ordered) / n, 1)}


def histogram(lengths: Sequence[int], bins: int = HISTOGRAM_BINS) -> list[list[int]]:
    """``[[low, high, count], ...]``: bins of one round width (1, 2 or 5 × 10^k tokens) from 0 past the
    longest row; a row of length L falls in the bin with low <= L < high."""
    if not lengths:
        return []
    top = max(lengths)
    ticks = nice_ticks(0, max(top, 1), bins)
    width = max(1, int(round(ticks[1] - ticks[0]))) if len(ticks) > 1 else 1
    count = top // width + 1
    out = [[i * width, (i + 1) * width, 0] for i in range(count)]
    for length in lengths:
        out[length // width][2] += 1
    return out


def _outcome(over_length: str, limit: int, max_length: int, length: int, prompt_length: int | None) -> str | None:
    """What a method's trainer does with one row: None (it fits), "cut", "dropped" or "packed"."""
    if length <= limit:
        return None
    # TRL's DPO and KTO trainers truncate, but leave out a row whose prompt alone fills max_length
    # (keep_start truncation would remove every completion token)
    if over_length == "cut" and prompt_length is not None and prompt_length >= max_length:
        return "dropped"
    return over_length


def preset_effects(lengths: Sequence[int], kind: str,
                   prompt_lengths: Sequence[int | None] | None = None) -> list[dict[str, Any]]:
    """Per method of this dataset kind and per preset: its limit and how many rows it would cut
    (truncate), drop or split across packed blocks (``packed``: nothing lost)."""
    prompts = list(prompt_lengths) if prompt_lengths else [None] * len(lengths)
    out = []
    for method, cls in CONFIG_CLASSES.items():
        if cls.dataset_kind != kind:
            continue
        for name, config in PRESETS[method].items():
            limit = config.length_limit()
            counts = {"cut": 0, "dropped": 0, "packed": 0}
            for length, prompt_length in zip(lengths, prompts, strict=True):
                outcome = _outcome(cls.over_length, limit, config.max_length, length, prompt_length)
                if outcome:
                    counts[outcome] += 1
            over = sum(counts.values())
            out.append({"method": method, "preset": name, "max_length": config.max_length, "limit": limit,
                        "effect": cls.over_length, **counts, "rows": over,
                        "share": round(over / len(lengths), 4) if lengths else 0.0})
    return out


def preview_summary(measured: dict[str, Any], kind: str) -> dict[str, Any]:
    """What the dataset page stores: the tool's rendered rows and totals, plus the figures above."""
    lengths = [int(n) for n in measured.get("lengths") or []]
    return {"rows": measured.get("rows") or [], "total_rows": int(measured.get("total_rows") or 0),
            "measured_rows": int(measured.get("measured_rows") or len(lengths)), "stats": length_stats(lengths),
            "histogram": histogram(lengths),
            "presets": preset_effects(lengths, kind, measured.get("prompt_lengths") or None)}
