"""Tests of the pure rating maths (no database)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena import ratings
from arena.ratings import (
    ABOUT_INTERVALS,
    LMSYS_ANCHOR,
    WINNERS,
    PairCounts,
    bootstrap,
    compute_board,
    elo_from_arrays,
    elo_update,
    fit_bt,
    predicted_win_rate,
    rank_upper_bound,
)
from tests.helpers import shared_data_file

MIRROR = {"model_a": "model_b", "model_b": "model_a", "tie": "tie", "tie (bothbad)": "tie (bothbad)"}
POINTS_2_TO_1 = 400 * math.log10(2)  # 120.412 points: odds 2:1 on the Elo scale


def pc(*rows: tuple[str, str, str, int]) -> PairCounts:
    return PairCounts.from_grouped(rows)


def shared_file(name: str) -> Path:
    return shared_data_file(f"arena_battles/{name}")


# -- published board ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lmsys_counts() -> PairCounts:
    data = json.loads(shared_file("lmsys_clean_battle_20240814_pair_counts.json").read_text())
    return PairCounts.from_leaderbot_json(data)


@pytest.fixture(scope="module")
def published() -> dict[str, float]:
    with shared_file("lmsys_leaderboard_ratings_20240813.csv").open(newline="") as fh:
        table = {row["key"]: float(row["rating"]) for row in csv.DictReader(fh)}
    table["chatgpt-4o-latest"] = table.pop("chatgpt-4o-latest-2024-08-08")
    return table


def test_pair_counts_file_loads(lmsys_counts: PairCounts) -> None:
    assert lmsys_counts.n_models == 129
    assert len(lmsys_counts.pairs) == 3460
    assert lmsys_counts.n_battles == 1_670_250


def test_bt_reproduces_published_board(lmsys_counts: PairCounts, published: dict[str, float]) -> None:
    rating = dict(zip(lmsys_counts.models, fit_bt(lmsys_counts, anchor=LMSYS_ANCHOR), strict=True))
    shared = [m for m in lmsys_counts.models if m in published]
    assert len(shared) == 128 and "gpt-4o-2024-08-06" not in shared
    diff = np.array([abs(rating[m] - published[m]) for m in shared])
    assert np.median(diff) <= 0.1
    assert np.mean(diff <= 1.0) >= 0.90
    # The anchor only shifts the board: every difference is that of the unanchored fit.
    free = dict(zip(lmsys_counts.models, fit_bt(lmsys_counts), strict=True))
    offset = {m: rating[m] - free[m] for m in lmsys_counts.models}
    assert max(offset.values()) - min(offset.values()) == pytest.approx(0.0, abs=1e-6)
    # Well-established models match closely (the newest ones differ by up to ~2.6 points: the
    # public file had about one more day of their battles).
    for model, value in [("gpt-4o-2024-05-13", 1285.7), ("claude-3-5-sonnet-20240620", 1270.9)]:
        assert rating[model] == pytest.approx(value, abs=0.25)


def test_default_ridge_is_negligible_on_real_data(lmsys_counts: PairCounts) -> None:
    exact = fit_bt(lmsys_counts, reg=0)
    assert np.max(np.abs(fit_bt(lmsys_counts) - exact)) < 0.01
    assert exact.mean() == pytest.approx(1000.0, abs=1e-9)


def test_real_board_intervals_and_ranks(lmsys_counts: PairCounts) -> None:
    board = compute_board(lmsys_counts, anchor=LMSYS_ANCHOR, rounds=20)
    assert board.is_connected and board.anchor == LMSYS_ANCHOR
    assert np.all(board.ci_low <= board.rating + 1e-9) and np.all(board.rating <= board.ci_high + 1e-9)
    assert board.rank[0] == 1
    # Only models rated above can have their whole interval above: rank <= position.
    assert np.all(board.rank <= np.arange(1, len(board.models) + 1))
    # The anchor model keeps a real interval (it is not pinned in every replicate).
    k = board.models.index(LMSYS_ANCHOR[0])
    assert board.ci_high[k] - board.ci_low[k] > 1.0


# -- hand-checked values -----------------------------------------------------------------------


def test_two_to_one_is_120_points() -> None:
    rating = fit_bt(pc(("a", "b", "model_a", 2), ("a", "b", "model_b", 1)), reg=0)
    assert rating[0] - rating[1] == pytest.approx(POINTS_2_TO_1, abs=1e-6)
    assert rating.mean() == pytest.approx(1000.0)
    # Ties count half a win each: 1 win + 2 ties against 0 wins is also 2 "wins" out of 3.
    ties = pc(("b", "a", "model_b", 1), ("a", "b", "tie", 1), ("a", "b", "tie (bothbad)", 1))
    assert np.diff(fit_bt(ties, reg=0))[0] == pytest.approx(-POINTS_2_TO_1, abs=1e-6)
    # The default ridge hardly moves a well-measured difference.
    many = pc(("a", "b", "model_a", 2000), ("a", "b", "model_b", 1000))
    assert -np.diff(fit_bt(many))[0] == pytest.approx(POINTS_2_TO_1, abs=0.01)


def test_three_model_ratios_and_anchor() -> None:
    # a:b = 2:1 and b:c = 2:1 in every pair (a:c = 4:1), so the MLE is exactly multiplicative.
    counts = pc(
        ("a", "b", "model_a", 20),
        ("a", "b", "model_b", 10),
        ("b", "c", "model_a", 20),
        ("b", "c", "model_b", 10),
        ("a", "c", "model_a", 40),
        ("c", "a", "model_a", 10),
    )
    r = fit_bt(counts, reg=0)
    assert r == pytest.approx([1000 + POINTS_2_TO_1, 1000.0, 1000 - POINTS_2_TO_1], abs=1e-6)
    anchored = fit_bt(counts, reg=0, anchor=("c", 500.0))
    assert anchored == pytest.approx(r - r[2] + 500.0)
    assert fit_bt(counts, reg=0, anchor=("nobody", 500.0)) == pytest.approx(r)  # absent: ignored
    p = predicted_win_rate(r)
    assert p[0, 1] == pytest.approx(2 / 3) and p[0, 2] == pytest.approx(0.8) and p[1, 1] == 0.5


def test_elo_by_hand() -> None:
    battles = [("A", "B", "model_a"), ("B", "C", "tie"), ("A", "C", "model_b")]
    # 1. A beats B, both at 1000: E_A = 1/(1 + 10^0) = 0.5; A += 4·(1 − 0.5) = 2 -> A 1002, B 998.
    # 2. B (998) ties C (1000): E_B = 1/(1 + 10^(2/400)) = 1/(1 + 1.0115795) = 0.4971218;
    #    B += 4·(0.5 − 0.4971218) = 0.0115128 -> B 998.0115128, C 999.9884872.
    # 3. C (999.9884872) beats A (1002): E_A = 1/(1 + 10^(−2.0115128/400)) = 1/(1 + 0.9884876)
    #    = 0.5028948; A += 4·(0 − 0.5028948) = −2.0115791 -> A 999.9884209, C 1002.0000663.
    new = elo_update({}, battles)
    assert new["A"] == pytest.approx(999.9884209, abs=1e-6)
    assert new["B"] == pytest.approx(998.0115128, abs=1e-6)
    assert new["C"] == pytest.approx(1002.0000663, abs=1e-6)
    assert sum(new.values()) == pytest.approx(3000.0)  # Elo moves points, never creates them


def test_elo_is_incremental_and_matches_fastchat_loop() -> None:
    rng = np.random.default_rng(3)
    names = ["m0", "m1", "m2", "m3", "m4"]
    battles = []
    for _ in range(500):
        a, b = rng.choice(5, 2, replace=False)
        battles.append((names[a], names[b], WINNERS[rng.integers(4)]))
    full = elo_update({}, battles)
    state = elo_update({}, battles[:123])
    state = elo_update(state, battles[123:400])
    assert elo_update(state, battles[400:]) == pytest.approx(full, abs=1e-9)
    # FastChat's compute_elo, written out.
    ref: dict[str, float] = {}
    for a, b, w in battles:
        ra, rb = ref.get(a, 1000.0), ref.get(b, 1000.0)
        ea = 1 / (1 + 10 ** ((rb - ra) / 400))
        eb = 1 / (1 + 10 ** ((ra - rb) / 400))
        sa = {"model_a": 1.0, "model_b": 0.0}.get(w, 0.5)
        ref[a], ref[b] = ra + 4 * (sa - ea), rb + 4 * (1 - sa - eb)
    assert full == pytest.approx(ref, abs=1e-9)
    # The array form, starting from a state.
    idx = {m: k for k, m in enumerate(names)}
    arr = elo_from_arrays(
        [idx[a] for a, _, _ in battles],
        [idx[b] for _, b, _ in battles],
        [WINNERS.index(w) for _, _, w in battles],
        np.full(5, 1000.0),
    )
    assert arr == pytest.approx([full[m] for m in names], abs=1e-9)
    with pytest.raises(ValueError, match="unknown winner"):
        elo_update({}, [("a", "b", "draw")])


# -- PairCounts --------------------------------------------------------------------------------


def test_pair_counts_constructors_agree() -> None:
    battles = [
        ("x", "y", "model_a"),
        ("y", "x", "model_a"),
        ("y", "x", "tie"),
        ("x", "z", "tie (bothbad)"),
        ("x", "y", "model_a"),
    ]
    counts = PairCounts.from_battles(battles)
    assert counts.models == ["x", "y", "z"]
    assert counts.pairs.tolist() == [[0, 1], [0, 2]]
    assert counts.counts.tolist() == [[2, 1, 1, 0], [0, 0, 0, 1]]
    grouped = PairCounts.from_grouped(
        [
            ("x", "y", "model_a", 2),
            ("y", "x", "model_a", 1),
            ("y", "x", "tie", 1),
            ("x", "z", "tie (bothbad)", 1),
        ]
    )
    leaderbot = PairCounts.from_leaderbot_json(
        {
            "models": ["x", "y", "z"],
            "X": [[1, 0], [0, 2], [0, 1]],
            "Y": [[1, 0, 1, 0], [0, 0, 0, 1], [2, 0, 0, 0]],
        }
    )
    for other in (grouped, leaderbot):
        assert other.models == counts.models
        assert np.array_equal(other.pairs, counts.pairs) and np.array_equal(other.counts, counts.counts)
    assert counts.battles_per_model().tolist() == [5, 4, 1]
    sub = counts.subset(["z", "x"])
    assert sub.pairs.tolist() == [[0, 1]] and sub.counts.tolist() == [[0, 0, 0, 1]]


def test_pair_counts_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="itself"):
        PairCounts.from_battles([("x", "x", "tie")])
    with pytest.raises(ValueError, match="unknown winner"):
        PairCounts.from_battles([("x", "y", "draw")])
    with pytest.raises(ValueError, match="not in the given model list"):
        PairCounts.from_battles([("x", "y", "tie")], models=["x"])
    with pytest.raises(ValueError, match="0..3"):
        PairCounts.from_arrays(["x", "y"], [0], [1], [4])
    with pytest.raises(ValueError, match="i < j"):
        PairCounts(["x", "y"], np.array([[1, 0]]), np.array([[1, 0, 0, 0]]))


battle_lists = st.lists(
    st.tuples(st.sampled_from("abcde"), st.sampled_from("abcde"), st.sampled_from(WINNERS)).filter(
        lambda t: t[0] != t[1]
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(battle_lists, st.data())
def test_swapping_sides_changes_nothing(battles: list[tuple[str, str, str]], data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(battles), max_size=len(battles)))
    swapped = [(b, a, MIRROR[w]) if f else (a, b, w) for (a, b, w), f in zip(battles, flips, strict=True)]
    c1, c2 = PairCounts.from_battles(battles), PairCounts.from_battles(swapped)
    assert c1.models == c2.models
    assert np.array_equal(c1.pairs, c2.pairs) and np.array_equal(c1.counts, c2.counts)
    b1, b2 = compute_board(c1, rounds=10), compute_board(c2, rounds=10)
    assert b1.models == b2.models
    assert np.array_equal(b1.rating, b2.rating) and np.array_equal(b1.ci_low, b2.ci_low)


# -- bootstrap ---------------------------------------------------------------------------------


def small_league(seed: int = 0, n: int = 6, per_pair: int = 40) -> PairCounts:
    rng = np.random.default_rng(seed)
    strength = np.linspace(-1.0, 1.0, n)
    rows = []
    for i in range(n):
        for j in range(i + 1, n):
            p = 1 / (1 + math.exp(strength[j] - strength[i]))
            wins = rng.binomial(per_pair, p)
            ties = rng.binomial(per_pair - wins, 0.2)
            rows += [
                (f"m{i}", f"m{j}", "model_a", wins),
                (f"m{i}", f"m{j}", "tie", ties),
                (f"m{i}", f"m{j}", "model_b", per_pair - wins - ties),
            ]
    return PairCounts.from_grouped(rows)


def test_bootstrap_is_seeded_and_contains_point_estimate() -> None:
    counts = small_league()
    b1, b2 = compute_board(counts, seed=7), compute_board(counts, seed=7)
    assert np.array_equal(b1.ci_low, b2.ci_low) and np.array_equal(b1.ci_high, b2.ci_high)
    b3 = compute_board(counts, seed=8)
    assert not np.array_equal(b1.ci_low, b3.ci_low)
    assert np.all(b1.ci_low < b1.rating) and np.all(b1.rating < b1.ci_high)
    none = compute_board(counts, rounds=0)
    assert np.array_equal(none.ci_low, none.rating) and np.array_equal(none.ci_high, none.rating)


def test_anchor_does_not_widen_other_intervals() -> None:
    counts = small_league()
    plain = compute_board(counts)
    anchored = compute_board(counts, anchor=("m2", 1234.0))
    assert anchored.anchor == ("m2", 1234.0)
    assert anchored.rating[anchored.models.index("m2")] == pytest.approx(1234.0)
    shift = anchored.rating[0] - plain.rating[0]
    assert anchored.rating == pytest.approx(plain.rating + shift)
    # Same resamples, one constant shift: every interval keeps its width exactly.
    assert anchored.ci_high - anchored.ci_low == pytest.approx(plain.ci_high - plain.ci_low, abs=1e-9)
    assert anchored.ci_low == pytest.approx(plain.ci_low + shift)


def test_chord_bootstrap_equals_full_newton_refits(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = small_league(seed=1, n=5, per_pair=15)
    fast = compute_board(counts, rounds=30, seed=3)
    # No chord iterations: every replicate is refitted from scratch by damped Newton.
    monkeypatch.setattr(bootstrap, "_CHORD_MAX_ITER", 0)
    slow = compute_board(counts, rounds=30, seed=3)
    assert fast.ci_low == pytest.approx(slow.ci_low, abs=1e-5)
    assert fast.ci_high == pytest.approx(slow.ci_high, abs=1e-5)


def test_multinomial_sampler_is_multinomial() -> None:
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.15, 0.05])
    n, size = 400, 20_000
    draws = bootstrap._multinomial(rng, p * 7.0, n, size).T  # Poisson path: n >= 2K
    assert np.all(draws.sum(axis=1) == n)
    se = np.sqrt(n * p * (1 - p) / size)
    assert np.all(np.abs(draws.mean(axis=0) - n * p) < 5 * se)
    cov = np.cov(draws.T)
    expected = n * (np.diag(p) - np.outer(p, p))
    assert cov == pytest.approx(expected, rel=0.06, abs=0.3)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(3, 5))
def test_more_identical_battles_narrow_intervals(seed: int, n: int) -> None:
    counts = small_league(seed=seed, n=n, per_pair=30)
    doubled = PairCounts(counts.models, counts.pairs, counts.counts * 2)
    w1 = compute_board(counts, rounds=200, seed=seed)
    w2 = compute_board(doubled, rounds=200, seed=seed)
    width1 = np.mean(w1.ci_high - w1.ci_low)
    width2 = np.mean(w2.ci_high - w2.ci_low)
    assert width2 < 0.85 * width1  # expected ratio 1/√2 ≈ 0.71
    assert w2.rating == pytest.approx(w1.rating, abs=0.05)  # same proportions: same ratings


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 5),
    st.lists(st.integers(0, 6), min_size=40, max_size=40),
    st.lists(st.integers(1, 5), min_size=5, max_size=5),
)
def test_model_that_wins_every_battle_ranks_first(n: int, others: list[int], champ_wins: list[int]) -> None:
    rows = []
    for i in range(n):
        rows.append(("champ", f"m{i}", "model_a", champ_wins[i]))
        for j in range(i + 1, n):
            k = (i * n + j) * 3 % 38
            rows += [
                (f"m{i}", f"m{j}", "model_a", others[k]),
                (f"m{i}", f"m{j}", "model_b", others[k + 1]),
                (f"m{i}", f"m{j}", "tie", others[k + 2]),
            ]
    board = compute_board(PairCounts.from_grouped(rows), rounds=20)
    assert board.models[0] == "champ"
    assert board.rank[0] == 1


# -- board shapes ------------------------------------------------------------------------------


def test_matrices_by_hand() -> None:
    counts = pc(
        ("a", "b", "model_a", 3),
        ("b", "a", "model_a", 1),
        ("a", "b", "tie", 5),
        ("b", "c", "model_b", 2),
        ("b", "c", "tie (bothbad)", 1),
    )
    board = compute_board(counts, rounds=0)
    idx = {m: k for k, m in enumerate(board.models)}
    a, b, c = idx["a"], idx["b"], idx["c"]
    bc, wf = board.battle_count, board.win_fraction
    assert bc[a, b] == bc[b, a] == 4 and bc[b, c] == 2 and bc[a, c] == 0 and bc[a, a] == 0
    assert wf[a, b] == 0.75 and wf[b, a] == 0.25 and wf[c, b] == 1.0 and wf[b, c] == 0.0
    assert wf[a, c] == 0.0  # no decisive battle: 0, flagged by battle_count == 0
    assert board.avg_win_rate[a] == 0.75 and board.avg_win_rate[b] == pytest.approx(0.125)
    assert board.battles[a] == 9 and board.battles[b] == 12 and board.battles[c] == 3
    assert board.predicted_win_rate == pytest.approx(predicted_win_rate(board.rating))
    json.dumps(board.as_dict())  # plain data for the cache / template


def test_rank_upper_bound_by_hand() -> None:
    lo = np.array([10.0, 8.0, 5.0, 1.0])
    hi = np.array([12.0, 11.0, 9.0, 4.0])
    # Lows above 12: none -> 1; above 11: none -> 1; above 9: 10 -> 2; above 4: 10, 8, 5 -> 4.
    assert rank_upper_bound(lo, hi).tolist() == [1, 1, 2, 4]
    assert rank_upper_bound(lo, hi, groups=np.array([0, 0, 1, 1])).tolist() == [1, 1, 1, 2]


def test_disconnected_graph_is_reported() -> None:
    counts = pc(
        ("a", "b", "model_a", 5),
        ("a", "b", "model_b", 3),
        ("c", "d", "model_a", 1),
        ("c", "d", "tie", 4),
        ("d", "e", "model_b", 2),
        ("d", "e", "model_a", 2),
    )
    for reg in (ratings.DEFAULT_REG, 0.0):
        board = compute_board(counts, reg=reg, rounds=20)
        assert not board.is_connected
        assert [sorted(c) for c in board.components] == [["c", "d", "e"], ["a", "b"]]
        r = dict(zip(board.models, board.rating, strict=True))
        # Each component is centred on its own; ranks only compare models of a component.
        assert (r["a"] + r["b"]) / 2 == pytest.approx(1000.0)
        assert (r["c"] + r["d"] + r["e"]) / 3 == pytest.approx(1000.0)
        rank = dict(zip(board.models, board.rank, strict=True))
        assert rank["a"] == 1 and min(rank["c"], rank["d"], rank["e"]) == 1
    connected = compute_board(small_league(), rounds=0)
    assert connected.is_connected and connected.components == [connected.models]


def test_empty_board() -> None:
    board = compute_board(PairCounts([], np.zeros((0, 2)), np.zeros((0, 4))))
    assert board.models == [] and board.components == [] and board.is_connected
    for arr in (board.rating, board.ci_low, board.rank, board.battles, board.avg_win_rate):
        assert arr.shape == (0,)
    assert board.win_fraction.shape == board.predicted_win_rate.shape == (0, 0)
    assert compute_board(PairCounts.from_battles([])).models == []
    json.dumps(board.as_dict())


def test_one_model_board() -> None:
    counts = PairCounts(["solo"], np.zeros((0, 2)), np.zeros((0, 4)))
    board = compute_board(counts)
    assert board.models == ["solo"] and board.rank.tolist() == [1] and board.battles.tolist() == [0]
    assert board.rating.tolist() == board.ci_low.tolist() == board.ci_high.tolist() == [1000.0]
    assert board.predicted_win_rate.tolist() == [[0.5]] and board.is_connected
    for value in board.as_dict().values():
        assert "nan" not in json.dumps(value).lower()
    assert compute_board(counts, anchor=("solo", 1114.0)).rating.tolist() == [1114.0]


def test_min_battles_threshold() -> None:
    counts = pc(
        ("a", "b", "model_a", 30),
        ("a", "b", "model_b", 20),
        ("b", "c", "model_a", 25),
        ("b", "c", "tie", 25),
        ("a", "c", "model_a", 40),
        ("a", "new", "model_b", 2),
        ("b", "new", "tie", 1),
    )
    board = compute_board(counts, min_battles=10, rounds=10)
    assert sorted(board.models) == ["a", "b", "c"] and board.excluded == ["new"]
    # The excluded model's battles go too.
    assert board.battles.sum() == 2 * 140
    assert board.rating == pytest.approx(compute_board(counts.subset(["a", "b", "c"]), rounds=0).rating)
    everyone = compute_board(counts, rounds=0)
    assert len(everyone.models) == 4 and everyone.excluded == []


def test_unbeaten_model_stays_finite() -> None:
    board = compute_board(pc(("a", "b", "model_a", 3), ("b", "c", "model_a", 2), ("b", "c", "model_b", 2)))
    assert board.models[0] == "a" and np.all(np.isfinite(board.ci_high))
    assert 1000 < board.rating[0] < 3000


def test_about_intervals_text() -> None:
    assert "2.5" in ABOUT_INTERVALS and "anchor" in ABOUT_INTERVALS

