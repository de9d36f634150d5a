"""How many votes each pairing mode needs to rank a new model (a simulation that prints a table).

    .venv/bin/python bench/sampling.py [--seeds 12] [--initial 300000] [--horizon 25000] [--batch 100]
    .venv/bin/python bench/sampling.py --smoke     # 2 seeds, a short horizon: seconds, for CI

Pure simulation (no Django, no database). The arena: 30 models whose true ratings are the
published 2024-08-13 Chatbot Arena ratings of every 4th model of that board (1314 … 955, the
file ``../shared/data/arena_battles/lmsys_leaderboard_ratings_20240813.csv``); 29 of them have
already played ``--initial`` votes spread uniformly over their pairs (a running arena), then the
new model (``--new``, default ``gemma-2-27b-it``, 1217, 6th of the 30) enters. Simulated raters
vote by Bradley–Terry on the true ratings with ties at the rate observed in the 1.67M public
battles (30%), capped at ``2·min(p, 1 − p)`` and taken evenly from both sides so that A's
expected score stays p (then ties-as-half-wins BT is consistent).

Every ``--batch`` votes the board is refitted with sandwich intervals
(``arena.ratings.compute_board(ci="sandwich")``), and the script records, per pairing mode:

* votes after the entry until the new model's 95% interval is narrower than ±20 points;
* votes until the top-10 order equals the true one and stays so to the end of the run;
* coverage: the share of intervals (every model, every refit) that hold the true rating
  (both centred on the 30 models' mean), and the same for the new model at the refit where
  its interval first got below ±20 (a stopping time: the harder test).

Modes: ``uniform`` (every pair equally likely), ``weighted`` (the arena's default:
``arena.pairing.weighted.sample_pair`` with weight 1 and the new-model boost, ``ARENA_NEW_MODEL_BOOST``
= 5 for its first ``ARENA_NEW_MODEL_BOOST_VOTES`` = 50 votes), ``newcomer`` (the trivial
baseline of issue 21: 90% of battles put the new model against a uniformly random opponent,
the rest are uniform pairs), ``active``
(``arena.pairing.sampling.choose_pairs``, 10% random floor, repeat cap, the new model's weight 5 while it
has fewer than 300 votes). Medians over ``--seeds`` runs; ">H" means not reached in the horizon.
"busiest pair" is the largest share one pair took of the first 1,000 battles after the entry
(median over seeds); "to new" the share of those battles that involved the new model.

With the defaults (12 seeds; ~9 minutes on a busy 2-core machine) it printed:

    mode         votes to ±20 (new)  votes to top-10 order  coverage  new covered at stop  busiest pair  to new
    uniform                  10,750                  7,050     0.942                11/12          0.8%    6.7%
    weighted                 10,300                  8,600     0.946                11/12          0.8%   10.4%
    newcomer                    850                  1,050     0.949                11/12          4.2%   91.2%
    active                      800                    450     0.954                12/12          9.4%   90.4%
    weighted / active, votes for the new model's ±20 interval: 12.88x
    newcomer / active, votes for the new model's ±20 interval: 1.06x

Read honestly: most of active's lead over weighted comes from sending ~90% of the battles to the
newcomer, which the trivial rule does too (850 votes against 800). What active adds is the
rest of the board: the top-10 order settles after 450 votes instead of 1,050, its intervals
cover slightly better, and its busiest pair takes 9.4% of the first 1,000 battles (37% before
the repeat cap).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arena.pairing.sampling import ActiveRule, choose_pairs  # noqa: E402
from arena.pairing.weighted import sample_pair  # noqa: E402
from arena.ratings import POINTS_PER_LOGIT, PairCounts, compute_board  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "arena_battles"
BOOST, BOOST_VOTES, PROVISIONAL_VOTES = 5.0, 50, 300
TARGET_HALF_WIDTH = 20.0


def arena_models(data: Path, new: str) -> tuple[list[str], np.ndarray, int]:
    with (data / "lmsys_leaderboard_ratings_20240813.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = rows[::4][:30]
    names = [r["key"] for r in picked]
    if new not in names:
        sys.exit(f"--new must be one of: {', '.join(names)}")
    true = np.array([float(r["rating"]) for r in picked])
    return names, true - true.mean(), names.index(new)


def observed_tie_rate(data: Path) -> float:
    counts = np.asarray(json.loads((data / "lmsys_clean_battle_20240814_pair_counts.json").read_text())["Y"])
    return float(counts[:, 2:].sum() / counts.sum())


class Arena:
    """Vote counts among the models: ``wins[i, j]`` (i beat j) and symmetric ``ties``."""

    def __init__(self, true: np.ndarray, tie_rate: float, rng: np.random.Generator):
        self.true, self.tie_rate, self.rng = true, tie_rate, rng
        n = len(true)
        self.wins = np.zeros((n, n))
        self.ties = np.zeros((n, n))

    def probabilities(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-(self.true[a] - self.true[b]) / POINTS_PER_LOGIT))
        tie = np.minimum(self.tie_rate, 2 * np.minimum(p, 1 - p))
        return p - tie / 2, tie

    def vote(self, a: np.ndarray, b: np.ndarray) -> None:
        win, tie = self.probabilities(a, b)
        u = self.rng.random(len(a))
        np.add.at(self.wins, (a[u < win], b[u < win]), 1)
        tied = (u >= win) & (u < win + tie)
        np.add.at(self.ties, (a[tied], b[tied]), 1)
        lost = u >= win + tie
        np.add.at(self.wins, (b[lost], a[lost]), 1)

    def seed_votes(self, models: np.ndarray, total: int) -> None:
        """``total`` votes spread uniformly over the pairs of ``models`` (drawn in bulk)."""
        i, j = np.triu_indices(len(models), 1)
        a, b = models[i], models[j]
        per_pair = self.rng.multinomial(total, np.full(len(a), 1 / len(a)))
        win, tie = self.probabilities(a, b)
        for k in range(len(a)):
            w, t, lose = self.rng.multinomial(per_pair[k], [win[k], tie[k], 1 - win[k] - tie[k]])
            self.wins[a[k], b[k]] += w
            self.wins[b[k], a[k]] += lose
            self.ties[a[k], b[k]] += t

    def battles(self) -> np.ndarray:
        t = self.ties + self.ties.T
        return self.wins + self.wins.T + t

    def counts(self, names: list[str]) -> PairCounts:
        n = len(names)
        i, j = np.triu_indices(n, 1)
        t = (self.ties + self.ties.T)[i, j]
        table = np.column_stack([self.wins[i, j], self.wins[j, i], t])
        return PairCounts.from_arrays(names, np.repeat(i, 3), np.repeat(j, 3), np.tile([0, 1, 2], len(i)), table.ravel())


def run(mode: str, seed: int, names: list[str], true: np.ndarray, new: int, args: argparse.Namespace,
        tie_rate: float) -> dict:
    rng = np.random.default_rng(seed)
    arena = Arena(true, tie_rate, rng)
    n = len(names)
    arena.seed_votes(np.array([k for k in range(n) if k != new]), args.initial)
    pick_rng = random.Random(seed)
    boost_left = BOOST_VOTES
    beta = np.zeros(n)
    true_top = list(np.argsort(-true)[:10])
    result = {"new": None, "top10": None, "covered": 0, "intervals": 0, "new_covered_at_stop": None, "first": []}
    votes = 0
    while votes < args.horizon:
        if mode == "newcomer":
            pairs = []
            for _ in range(args.batch):
                if rng.random() < 0.9:
                    other = int(rng.choice([k for k in range(n) if k != new]))
                    pairs.append((new, other))
                else:
                    pairs.append(tuple(int(x) for x in rng.choice(n, 2, replace=False)))
        elif mode == "active":
            battles = arena.battles()
            weight = np.ones(n)
            if battles[new].sum() < PROVISIONAL_VOTES:
                weight[new] = BOOST
            pairs = choose_pairs(battles, beta, weight, args.batch, rng, ActiveRule(floor=0.1))
        else:
            pairs = []
            for _ in range(args.batch):
                w = [1.0] * n
                if mode == "weighted" and boost_left > 0:
                    w[new] = BOOST
                pair = sample_pair(list(range(n)), w, pick_rng)
                boost_left -= new in pair
                pairs.append(pair)
        a, b = np.array(pairs).T
        for x, y in pairs:
            if len(result["first"]) < 1000:
                result["first"].append((min(x, y), max(x, y)))
        swap = rng.random(len(a)) < 0.5  # random sides
        arena.vote(np.where(swap, b, a), np.where(swap, a, b))
        votes += len(a)
        board = compute_board(arena.counts(names), ci="sandwich", rounds=0)
        order = [names.index(m) for m in board.models]
        rating = np.empty(n)
        lo, hi = np.empty(n), np.empty(n)
        rating[order], lo[order], hi[order] = board.rating - 1000, board.ci_low - 1000, board.ci_high - 1000
        beta = rating / POINTS_PER_LOGIT
        inside = (lo <= true) & (true <= hi)
        result["covered"] += int(inside.sum())
        result["intervals"] += n
        if result["new"] is None and hi[new] - rating[new] < TARGET_HALF_WIDTH:
            result["new"], result["new_covered_at_stop"] = votes, bool(inside[new])
        if order[:10] == true_top:
            result["top10"] = result["top10"] or votes
        else:
            result["top10"] = None
    return result


def median_votes(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] if r[key] is not None else np.inf for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--initial", type=int, default=300_000, help="votes among the 29 models before the entry")
    parser.add_argument("--horizon", type=int, default=25_000, help="votes simulated after the entry")
    parser.add_argument("--batch", type=int, default=100, help="votes between two refits")
    parser.add_argument("--new", default="gemma-2-27b-it")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the shared arena_battles files")
    parser.add_argument("--smoke", action="store_true", help="2 seeds, 20,000 initial votes, a 1,000-vote horizon")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.initial, args.horizon = 2, 20_000, 1_000
    names, true, new = arena_models(args.data, args.new)
    tie_rate = observed_tie_rate(args.data)
    print(f"30 models (true {true.max() - true.min():.0f}-point spread), new model {names[new]} "
          f"(true rank {int((true > true[new]).sum()) + 1}), tie rate {tie_rate:.3f}, {args.initial:,} votes before "
          f"the entry, refit every {args.batch} votes, {args.seeds} seeds, horizon {args.horizon:,} votes")
    print(f"{'mode':10} {'votes to ±20 (new)':>20} {'votes to top-10 order':>22} {'coverage':>9} "
          f"{'new covered at stop':>20} {'busiest pair':>13} {'to new':>7} {'time':>6}")
    medians = {}
    for mode in ("uniform", "weighted", "newcomer", "active"):
        started = time.perf_counter()
        runs = [run(mode, 1000 + s, names, true, new, args, tie_rate) for s in range(args.seeds)]
        medians[mode] = median_votes(runs, "new")
        coverage = sum(r["covered"] for r in runs) / sum(r["intervals"] for r in runs)
        stops = [r["new_covered_at_stop"] for r in runs if r["new_covered_at_stop"] is not None]

        def show(x: float) -> str:
            return f">{args.horizon:,}" if x == np.inf else f"{x:,.0f}"
        busiest = statistics.median(max(map(r["first"].count, set(r["first"]))) / len(r["first"]) for r in runs)
        to_new = statistics.median(sum(new in q for q in r["first"]) / len(r["first"]) for r in runs)
        print(f"{mode:10} {show(medians[mode]):>20} {show(median_votes(runs, 'top10')):>22} {coverage:9.3f} "
              f"{(f'{sum(stops)}/{len(stops)}' if stops else '-'):>20} {busiest:13.1%} {to_new:7.1%} "
              f"{time.perf_counter() - started:5.0f}s")
    for baseline in ("weighted", "newcomer"):
        print(f"{baseline} / active, votes for the new model's ±20 interval: "
              f"{medians[baseline] / medians['active']:.2f}x")


if __name__ == "__main__":
    main()
