"""The figures of a dataset preview, from token lengths worked out by hand (pure: ``-p no:django``)."""

from __future__ import annotations

from training.plots import histogram_chart
from training.preview_stats import histogram, length_stats, preset_effects, preview_summary
from training.recipes.config import PRESETS


def test_the_statistics_of_a_small_list():
    assert length_stats([5, 1, 3, 9]) == {"count": 4, "min": 1, "median": 4.0, "p95": 9, "max": 9, "mean": 4.5}
    # nearest rank: the 95th percentile of 1..20 is the 19th value
    assert length_stats(list(range(1, 21)))["p95"] == 19
    assert length_stats([]) == {}


def test_the_histogram_has_round_bins_from_zero_that_hold_every_row():
    lengths = [0, 9, 10, 19, 150, 151]
    bins = histogram(lengths, bins=16)
    # 151 over about 16 bins: a round width of 10 tokens, 16 bins up to 160
    assert bins[0] == [0, 10, 2] and bins[1] == [10, 20, 2] and bins[15] == [150, 160, 2]
    assert len(bins) == 16 and sum(b[2] for b in bins) == len(lengths)
    assert all(high - low == 10 for low, high, _ in bins)
    assert histogram([]) == [] and histogram([0]) == [[0, 1, 1]]


def test_each_preset_counts_the_rows_over_its_limit_and_says_what_happens_to_them():
    lengths = [100, 256, 257, 1024, 1025, 3000]
    effects = {(e["method"], e["preset"]): e for e in preset_effects(lengths, "preference")}
    assert set(effects) == {(m, p) for m in ("dpo", "reward") for p in PRESETS[m]}
    smoke = effects["dpo", "cpu-smoke"]
    assert (smoke["limit"], smoke["rows"], smoke["cut"], smoke["share"]) == (256, 4, 4, 0.6667)
    assert (effects["dpo", "zephyr-lora"]["rows"], effects["reward", "zephyr-lora"]["effect"]) == (2, "dropped")


def test_online_rl_counts_prompts_against_the_room_left_for_the_completion():
    cpu = PRESETS["grpo"]["cpu-smoke"]
    limit = cpu.max_length - cpu.max_completion_length  # 256 - 32
    [smoke] = [e for e in preset_effects([limit, limit + 1], "prompt") if e["preset"] == "cpu-smoke"]
    assert (smoke["limit"], smoke["rows"], smoke["dropped"]) == (224, 1, 1)


def test_pretraining_text_is_packed_not_cut():
    assert {e["effect"] for e in preset_effects([5000], "text")} == {"packed"}


def test_the_summary_keeps_the_rendered_rows_and_totals():
    summary = preview_summary({"rows": [{"text": {"text": "hi", "tokens": 1}}], "lengths": [1, 2, 3],
                               "total_rows": 3, "measured_rows": 3}, "sft")
    assert summary["rows"][0]["text"]["tokens"] == 1 and summary["stats"]["max"] == 3
    assert summary["measured_rows"] == 3 and sum(b[2] for b in summary["histogram"]) == 3


def test_the_histogram_chart_draws_one_bar_per_filled_bin_and_the_limits_within_the_axis():
    svg = histogram_chart([[0, 10, 3], [10, 20, 0], [20, 30, 1]], title="Lengths", marks={"cpu-smoke 25": 25,
                                                                                           "zephyr 2048": 2048})
    assert svg.startswith("<svg") and svg.count("<rect") == 2
    assert "cpu-smoke 25" in svg and "zephyr 2048" not in svg
    assert "no rows" in histogram_chart([], title="Lengths")


def test_dpo_and_kto_drop_a_row_whose_prompt_alone_fills_max_length_and_cut_the_others():
    # lengths 300 (prompt 100), 300 (prompt 256), 300 (prompt 260): cpu-smoke's max_length is 256
    lengths, prompts = [300, 300, 300, 10], [100, 256, 260, 5]
    for kind, method in (("preference", "dpo"), ("unpaired", "kto")):
        [smoke] = [e for e in preset_effects(lengths, kind, prompts) if e["method"] == method and e["preset"] == "cpu-smoke"]
        assert (smoke["cut"], smoke["dropped"], smoke["rows"]) == (1, 2, 3)
    [reward] = [e for e in preset_effects(lengths, "preference", prompts) if e["method"] == "reward"
                and e["preset"] == "cpu-smoke"]
    assert (reward["cut"], reward["dropped"]) == (0, 3)  # the reward trainer drops every over-long pair
