"""Speed of the leaderboard maths (a script that prints figures, not a test).

    .venv/bin/python bench/ratings_speed.py [--battles 1000000] [--models 130] [--repeat 5]

Generates battles among models with known ratings (seeded), then, in one process, times:

(a) aggregation of the battle arrays into PairCounts;
(b) compute_board from the counts: BT fit + 100 bootstrap rounds + ranks + matrices;
(c) Elo full recompute over all battles (in the app Elo is incremental: only new votes);
(d) a row-by-row baseline: BT as a logistic regression over the individual battles, fitted with
    scipy L-BFGS-B, bootstrap by resampling rows: one fit and a few bootstrap rounds are timed
    and 100 rounds extrapolated;
(e) FastChat's aggregated method (unique (a, b, outcome) rows, L-BFGS-B with gtol 1e-6, one
    refit per bootstrap round) without its process pool: the reference our (b) replaces.

Then it prints how well the BT fit reproduces the published board from the real pair counts in
../shared/data (if present). Timings are the median of --repeat runs; the machine may be shared,
so figures move between runs.

For the database: see ``time_counts_source`` below and the marked place in ``main``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arena.ratings import (  # noqa: E402
    LMSYS_ANCHOR,
    PairCounts,
    compute_board,
    elo_from_arrays,
    fit_bt,
)

DATA = REPO.parent / "shared" / "data" / "arena_battles"


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def synthetic_battles(n_battles: int, n_models: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Battles between uniformly random pairs; outcomes from BT with known ratings.

    Ratings ~ N(1000, 100²), about the spread of the public board. Ties happen with probability
    0.6·min(p, 1 − p) (up to 30%, among close models; a third of them "both bad") and the
    decisive share is set so that the expected score of A is exactly the BT probability p: then
    ties-as-half-wins BT is consistent and the fit must recover the true ratings.
    Returns (true_ratings, model_a, model_b, outcome).
    """
    rng = np.random.default_rng(seed)
    true = rng.normal(1000.0, 100.0, n_models)
    a = rng.integers(0, n_models, n_battles)
    b = rng.integers(0, n_models - 1, n_battles)
    b[b >= a] += 1
    p = expit((true[a] - true[b]) * math.log(10) / 400)
    tie = 0.6 * np.minimum(p, 1 - p)
    q = (p - 0.5 * tie) / (1 - tie)  # P(A wins | decisive): 0.5·tie + (1 − tie)·q = p
    u = rng.random(n_battles)
    outcome = np.where(rng.random(n_battles) < q, 0, 1)
    outcome[u < tie] = 2
    outcome[u < tie / 3] = 3
    return true, a, b, outcome


# -- (d) row-by-row baseline -------------------------------------------------------------------


def _rowwise_loss_grad(
    theta: np.ndarray, a: np.ndarray, b: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    x = theta[a] - theta[b]
    p = expit(x)
    loss = -(y * np.log(p) + (1 - y) * np.log1p(-p)).sum()
    r = p - y
    n = len(theta)
    return float(loss), np.bincount(a, r, n) - np.bincount(b, r, n)


def rowwise_fit(a: np.ndarray, b: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    res = minimize(
        _rowwise_loss_grad,
        np.zeros(n),
        args=(a, b, y),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-6, "maxiter": 1000},
    )
    return res.x


# -- (e) FastChat's aggregated method ------------------------------------------------------------


def fastchat_style(a: np.ndarray, b: np.ndarray, outcome: np.ndarray, n: int, rounds: int) -> float:
    """FastChat's compute_bt + compute_bootstrap_bt (Aug 2024) minus pandas and the process
    pool: returns the time per (1 fit + ``rounds`` refits)."""
    t0 = time.perf_counter()
    y2 = np.select([outcome == 0, outcome == 1], [2, 0], 1)
    sched, weights = np.unique(np.column_stack([a, b, y2]), axis=0, return_counts=True)
    m, out, w = sched[:, :2], sched[:, 2] / 2.0, weights.astype(float)
    alpha = math.log(10.0)

    def loss_grad(r: np.ndarray, wt: np.ndarray) -> tuple[float, np.ndarray]:
        logits = alpha * (r[m[:, 0]] - r[m[:, 1]])
        p = expit(logits)
        loss = -((np.log(p) * out + np.log(1.0 - p) * (1.0 - out)) * wt).sum()
        g = -alpha * (out - p) * wt
        grad = np.zeros_like(r)
        np.add.at(grad, m, g[:, None] * np.array([1.0, -1.0]))
        return float(loss), grad

    def fit(wt: np.ndarray) -> np.ndarray:
        return minimize(
            loss_grad,
            np.zeros(n),
            args=(wt,),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 100, "gtol": 1e-6},
        ).x

    fit(w)
    rng = np.random.default_rng(0)
    boots = rng.multinomial(len(a), w / w.sum(), size=rounds) / len(a)
    for bw in boots:
        fit(bw)
    return time.perf_counter() - t0


# -- database hook --------------------------------------------------------------------------------


def time_counts_source(label: str, load: Callable[[], PairCounts], repeat: int = 3) -> PairCounts:
    """Time a callable that returns PairCounts (e.g. an SQL GROUP BY + PairCounts.from_grouped)
    and compute_board on its result, and print both."""
    t_load, counts = timed(load, repeat)
    t_board, _ = timed(lambda: compute_board(counts), repeat)
    print(
        f"[{label}] counts: {t_load * 1e3:8.1f} ms   compute_board: {t_board * 1e3:8.1f} ms   "
        f"({counts.n_models} models, {len(counts.pairs)} pairs, {counts.n_battles:,.0f} battles)"
    )
    return counts  # type: ignore[return-value]


# -- published board -------------------------------------------------------------------------------


def published_reproduction() -> None:
    counts_file = DATA / "lmsys_clean_battle_20240814_pair_counts.json"
    table_file = DATA / "lmsys_leaderboard_ratings_20240813.csv"
    if not counts_file.exists() or not table_file.exists():
        print("published board: data not found under", DATA)
        return
    counts = PairCounts.from_leaderbot_json(json.loads(counts_file.read_text()))
    with table_file.open(newline="") as fh:
        published = {row["key"]: float(row["rating"]) for row in csv.DictReader(fh)}
    published["chatgpt-4o-latest"] = published.pop("chatgpt-4o-latest-2024-08-08")
    t_fit, rating = timed(lambda: fit_bt(counts, anchor=LMSYS_ANCHOR), 5)
    t_board, _ = timed(lambda: compute_board(counts, anchor=LMSYS_ANCHOR), 5)
    diff = np.array([rating[k] - published[m] for k, m in enumerate(counts.models) if m in published])
    ad = np.abs(diff)
    print(f"published board 2024-08-13 ({len(diff)} shared models, {counts.n_battles:,.0f} battles):")
    print(
        f"  median |diff| {np.median(ad):.3f}   within 1 point {100 * np.mean(ad <= 1):.1f}%   "
        f"max {ad.max():.2f}   (fit {t_fit * 1e3:.1f} ms, whole board {t_board * 1e3:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-rounds", type=int, default=2, help="bootstrap rounds timed for (d)")
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()

    print(
        f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    true, a, b, outcome = synthetic_battles(args.battles, args.models)
    names = [f"model-{k:03d}" for k in range(args.models)]
    print(f"synthetic: {args.battles:,} battles, {args.models} models (seeded)")

    t_agg, counts = timed(lambda: PairCounts.from_arrays(names, a, b, outcome), args.repeat)
    print(f"(a) aggregate battle arrays -> PairCounts   {t_agg * 1e3:8.1f} ms   ({len(counts.pairs)} pairs)")

    t_board, board = timed(lambda: compute_board(counts, rounds=100, seed=0), args.repeat)
    print(f"(b) compute_board (BT + 100 bootstrap + matrices) {t_board * 1e3:8.1f} ms")
    est = np.array([board.rating[board.models.index(m)] for m in names])
    err = (est - est.mean()) - (true - true.mean())
    print(
        f"    recovery of the true ratings: RMS error {np.sqrt(np.mean(err**2)):.2f} points, "
        f"median 95% interval width {np.median(board.ci_high - board.ci_low):.2f}"
    )

    start = np.full(args.models, 1000.0)
    t_elo, _ = timed(lambda: elo_from_arrays(a, b, outcome, start), max(1, args.repeat // 2))
    print(
        f"(c) Elo full recompute over {args.battles:,} battles {t_elo * 1e3:8.1f} ms "
        f"({t_elo / args.battles * 1e9:.0f} ns per battle)"
    )

    # LEAD: time the database path here (from a Django shell, or after django.setup()), e.g.
    #   from django.db.models import Count
    #   from arena.models import Vote
    #   rows = (Vote.objects.counted()
    #           .values_list("battle__model_a__public_name", "battle__model_b__public_name", "winner")
    #           .annotate(n=Count("id")).order_by())
    #   time_counts_source("SQL GROUP BY", lambda: PairCounts.from_grouped(rows.iterator()))
    time_counts_source(
        "in-memory arrays (placeholder for SQL GROUP BY)",
        lambda: PairCounts.from_arrays(names, a, b, outcome),
        repeat=args.repeat,
    )

    if not args.skip_baselines:
        y = np.array([1.0, 0.0, 0.5, 0.5])[outcome]
        t0 = time.perf_counter()
        rowwise_fit(a, b, y, args.models)
        t_row_fit = time.perf_counter() - t0
        rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        for _ in range(args.baseline_rounds):
            idx = rng.integers(0, len(a), len(a))
            rowwise_fit(a[idx], b[idx], y[idx], args.models)
        t_row_round = (time.perf_counter() - t0) / max(1, args.baseline_rounds)
        t_row_total = t_row_fit + 100 * t_row_round
        print(
            f"(d) row-by-row L-BFGS baseline: one fit {t_row_fit:.2f} s, one bootstrap round "
            f"{t_row_round:.2f} s (timed {args.baseline_rounds}), fit + 100 rounds ≈ {t_row_total:.0f} s "
            f"(extrapolated)  ->  {t_row_total / t_board:,.0f}x compute_board"
        )
        t_fc = fastchat_style(a, b, outcome, args.models, rounds=100)
        print(
            f"(e) FastChat's aggregated L-BFGS, fit + 100 rounds, one process: {t_fc:.2f} s  ->  "
            f"{t_fc / t_board:,.0f}x compute_board"
        )

    published_reproduction()


if __name__ == "__main__":
    main()
