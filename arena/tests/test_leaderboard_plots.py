"""The SVG charts of arena/leaderboard/plots.py: well-formed, escaped, complete."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from arena.leaderboard import plots

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on malformed XML or bad escaping
    assert root.tag == f"{SVG}svg" and root.get("viewBox")
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


ROWS = [
    {"model": "alpha", "rating": 1100.0, "ci_low": 1080.0, "ci_high": 1115.0, "avg_win_rate": 0.7},
    {"model": "beta & <gamma>", "rating": 1000.0, "ci_low": 990.0, "ci_high": 1012.0, "avg_win_rate": 0.5},
    {"model": "x" * 60, "rating": 900.0, "ci_low": 850.0, "ci_high": 930.0, "avg_win_rate": 0.3},
]


class TestCiChart:
    def test_one_whisker_and_dot_per_model_with_labels_and_axis(self):
        root = parse(plots.ci_chart(ROWS))
        rows = [g for g in root.iter(f"{SVG}g") if g.get("class") == "ci-row"]
        assert len(rows) == 3
        assert len(list(root.iter(f"{SVG}circle"))) == 3 + 1  # + the legend's dot
        labels = texts(root)
        assert "alpha" in labels and "beta & <gamma>" in labels
        assert any(label.endswith("…") and len(label) == plots.MAX_LABEL_CHARS for label in labels)
        assert "arena score (Elo scale)" in labels and "95% interval" in labels
        assert {"1100", "1000", "900"} <= set(labels)

    def test_names_are_escaped(self):
        svg = plots.ci_chart(ROWS)
        assert "<gamma>" not in svg and "beta &amp; &lt;gamma&gt;" in svg

    def test_a_single_model_with_a_zero_width_interval_still_draws(self):
        root = parse(plots.ci_chart([{"model": "solo", "rating": 1000.0, "ci_low": 1000.0, "ci_high": 1000.0}]))
        assert "solo" in texts(root)

    def test_no_rows_says_so(self):
        assert "No data yet" in texts(parse(plots.ci_chart([])))


class TestHeatmap:
    models = ["a", "b<", "c"]
    wins = [[0, 0.75, 0.2], [0.25, 0, 0], [0.8, 0, 0]]
    counts = [[0, 8, 5], [8, 0, 0], [5, 0, 0]]

    def test_win_fractions_print_values_leave_unplayed_pairs_grey_and_have_a_legend(self):
        root = parse(plots.heatmap(self.models, self.wins, kind="win_fraction", counts=self.counts))
        rects = [r for r in root.iter(f"{SVG}rect") if r.get("width") == r.get("height")]
        assert len(rects) == 9
        assert sum(r.get("fill") == plots.NO_DATA for r in rects) == 5  # 3 diagonal + b–c both ways
        labels = texts(root)
        assert {"0.75", "0.25", "0.20", "0.80"} <= set(labels)
        assert any("grey: no battles" in t for t in labels)
        assert root.find(f".//{SVG}linearGradient") is not None
        assert "b&lt;" in plots.heatmap(self.models, self.wins, counts=self.counts)

    def test_battle_counts_scale_from_zero_to_the_largest(self):
        root = parse(plots.heatmap(self.models, self.counts, kind="battle_count"))
        labels = texts(root)
        assert labels.count("8") >= 3 and labels.count("5") == 2  # cells twice, legend max once

    def test_an_unknown_kind_is_refused(self):
        with pytest.raises(ValueError):
            plots.heatmap(self.models, self.wins, kind="pie")

    def test_no_models_says_so(self):
        assert "No data yet" in texts(parse(plots.heatmap([], [])))


class TestWinRateBars:
    def test_one_bar_per_model_with_its_percentage(self):
        root = parse(plots.win_rate_bars(ROWS))
        bars = [g for g in root.iter(f"{SVG}g") if g.get("class") == "bar"]
        assert len(bars) == 3
        assert {"70%", "50%", "30%"} <= set(texts(root))

    def test_models_alone_in_their_group_have_no_bar(self):
        rows = [*ROWS[:1], {"model": "lonely", "rating": 1000, "ci_low": 1000, "ci_high": 1000, "avg_win_rate": None}]
        root = parse(plots.win_rate_bars(rows))
        assert "lonely" not in texts(root)
