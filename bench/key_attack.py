"""One key against a small arena: does the outlier test flag it, or does the share cap hold its target?

    .venv/bin/python bench/key_attack.py [--smoke] [--seeds N]

Simulates issue 19's arena with the project's own code (``arena.quality.outliers.vote_marks``, the rule
``arena.quality.rules.outliers_refresh`` applies, and ``arena.ratings.compute_board``): 8 models 40
points apart (1140 … 860), honest votes on uniformly drawn pairs by Bradley–Terry with 15%
ties, from raters who cast 1–40 votes each (a few heavy ones), each with its own IP hash. One
attacker key (one IP hash, a fresh rater id per battle: it reconnects without a cookie) votes
only in battles where it recognises the weakest model and always for it; it waits past the
minimum voting time and changes its prompt, so no other rule stops it, and its votes are
spread in time among the honest ones. Scenarios: 60 attack votes among 500 honest (one hour at
the default limits), 300 among 2,000 (one day), and 19 among 500 (one short of the test's
``ARENA_OUTLIER_MIN_VOTES``: only the share cap applies).

Prints, per scenario and over the seeds: the target's rank (1 = best) on the honest votes, with
the attacker and every protection off, and with the defaults (``ARENA_OUTLIER_Z``,
``ARENA_OUTLIER_MIN_VOTES``, ``ARENA_KEY_SHARE_CAP``, ``ARENA_KEY_SHARE_MIN_VOTES``); how often
the key is flagged; its z against a board fitted with its votes (the old rule) and without them
(leave-one-key-out); how many of its votes the cap leaves counted; and the honest votes the
rules leave out (false positives). Then the cost of the leave-one-key-out test at 500, 2,000
and 10,000 votes, per refit and as a ratio against one full fit in the same process.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena import ratings  # noqa: E402
from arena.quality import outliers  # noqa: E402

TRUE = np.array([1140.0, 1100, 1060, 1020, 980, 940, 900, 860])
TARGET = len(TRUE) - 1
TIE_RATE = 0.15
# The defaults of config/settings.py (kept equal by arena/tests/test_outliers.py).
Z, MIN_VOTES, SHARE, SHARE_MIN = 4.0, 20, 0.1, 10


@dataclass
class Arena:
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    rater: np.ndarray
    ip: np.ndarray
    attack: np.ndarray  # bool per vote


def honest_votes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(TRUE)
    a = rng.integers(0, n, count)
    b = (a + rng.integers(1, n, count)) % n
    p = 1 / (1 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
    u = rng.random(count)
    outcome = np.where(u < TIE_RATE, 2, np.where(rng.random(count) < p, 0, 1))
    sizes = []
    while sum(sizes) < count:  # raters casting 1–40 votes, most of them few
        sizes.append(int(min(40, 1 + rng.geometric(1 / 8))))
    rater = np.repeat(np.arange(len(sizes)), sizes)[:count]
    rng.shuffle(rater)
    return a, b, outcome, rater


def arena(rng: np.random.Generator, honest: int, attack: int) -> Arena:
    a, b, outcome, rater = honest_votes(rng, honest)
    rivals = rng.choice([m for m in range(len(TRUE)) if m != TARGET], attack)
    target_is_a = rng.random(attack) < 0.5
    attack_a = np.where(target_is_a, TARGET, rivals)
    attack_b = np.where(target_is_a, rivals, TARGET)
    attack_outcome = np.where(target_is_a, 0, 1)
    first_rater = int(rater.max()) + 1
    attacker_ip = first_rater  # honest ip index == rater index; the attacker's ip is one more
    order = rng.permutation(honest + attack)  # interleaved in time
    cat = lambda x, y: np.concatenate([x, y])[order]  # noqa: E731
    return Arena(
        a=cat(a, attack_a), b=cat(b, attack_b), outcome=cat(outcome, attack_outcome),
        rater=cat(rater, first_rater + 1 + np.arange(attack)),
        ip=cat(rater, np.full(attack, attacker_ip)),
        attack=cat(np.zeros(honest, bool), np.ones(attack, bool)),
    )


def rank_of_target(world: Arena, keep: np.ndarray) -> tuple[int, float]:
    names = [str(m) for m in range(len(TRUE))]
    counts = ratings.PairCounts.from_arrays(names, world.a[keep], world.b[keep], world.outcome[keep])
    rating = ratings.fit_bt(counts)
    return int(1 + np.sum(rating > rating[TARGET])), float(rating[TARGET])


def in_fit_z(world: Arena, key: np.ndarray, k: int) -> float:
    """The old rule: the key's z against a board fitted on every vote, its own included."""
    n = len(TRUE)
    pair, y = outliers._oriented(n, world.a, world.b, world.outcome)
    wins, total = np.bincount(pair, y, n * n), np.bincount(pair, minlength=n * n).astype(float)
    beta, _ = outliers.bt_fit(n, *outliers._pairs_of(n, wins, total), lam=outliers._ridge(outliers.DEFAULT_REG))
    mine = key == k
    lo, hi = np.divmod(pair[mine], n)
    p = 1 / (1 + np.exp(-(beta[lo] - beta[hi])))
    loglik, mean, var = outliers.vote_loglik_moments(p, y[mine], float(np.mean(world.outcome >= 2)))
    return float((loglik - mean).sum() / math.sqrt(var.sum()))


def left_out(world: Arena, *, threshold: float, share: float) -> tuple[np.ndarray, outliers.Marks]:
    """The votes the rules leave out (bool per vote) with the given test threshold and share cap."""
    marks = outliers.vote_marks(len(TRUE), world.a, world.b, world.outcome, [world.rater, world.ip],
                                threshold=threshold, min_votes=MIN_VOTES, share=share, floor=SHARE_MIN)
    out = marks.capped.copy()
    for column, hits in zip((world.rater, world.ip), marks.flagged, strict=True):
        out |= np.isin(column, hits)
    return out, marks


def scenario(honest: int, attack: int, seeds: int) -> None:
    rows = []
    for seed in range(seeds):
        world = arena(np.random.default_rng(seed), honest, attack)
        out, marks = left_out(world, threshold=Z, share=SHARE)
        attacker_ip = int(world.ip[world.attack][0])
        flagged = attacker_ip in marks.flagged[1]
        rows.append({
            "honest": rank_of_target(world, ~world.attack),
            "off": rank_of_target(world, np.ones(len(world.a), bool)),
            "on": rank_of_target(world, ~out),
            "test_only": rank_of_target(world, ~left_out(world, threshold=Z, share=0)[0]),
            "cap_only": rank_of_target(world, ~left_out(world, threshold=0, share=SHARE)[0]),
            "flagged": flagged,
            "z_in": in_fit_z(world, world.ip, attacker_ip),
            "z_loo": float(marks.scores[1].z[attacker_ip]),
            "kept": int(np.sum(world.attack & ~out)),
            "honest_out": int(np.sum(~world.attack & out)),
            "honest_flagged_keys": int(len(marks.flagged[0]) + len(marks.flagged[1]) - flagged),
        })
    med = lambda key, i=None: statistics.median(r[key] if i is None else r[key][i] for r in rows)  # noqa: E731
    moved_on = [r["on"][0] - r["honest"][0] for r in rows]
    print(f"\n{attack} attack votes among {honest} honest ({seeds} seeds; medians; rank 1 = best of {len(TRUE)})")
    print(f"  target rank: honest only {med('honest', 0):.0f}, attack with protections off {med('off', 0):.0f}, "
          f"with the defaults {med('on', 0):.0f} (the test alone {med('test_only', 0):.0f}, the cap alone "
          f"{med('cap_only', 0):.0f}, worst {min(r['cap_only'][0] for r in rows)})")
    print(f"  target rating: honest {med('honest', 1):.0f}, off {med('off', 1):.0f}, on {med('on', 1):.0f}, "
          f"cap alone {med('cap_only', 1):.0f}")
    print(f"  attacker key flagged in {sum(r['flagged'] for r in rows)}/{seeds}; z with its votes in the fit "
          f"{med('z_in'):+.1f}, leave-one-key-out {med('z_loo'):+.1f} (flag below -{Z:g})")
    print(f"  attack votes still counted {med('kept'):.0f}/{attack}; rank moved up by more than one place "
          f"with the defaults in {sum(m < -1 for m in moved_on)}/{seeds} seeds (worst {min(moved_on):+d})")
    print(f"  honest votes left out: median {med('honest_out'):.0f}, max {max(r['honest_out'] for r in rows)} "
          f"of {honest}; honest keys flagged: {sum(r['honest_flagged_keys'] for r in rows)} over all seeds")


def cost(sizes: tuple[int, ...], repeat: int) -> None:
    print("\nCost of the leave-one-key-out test, run once before each board refit (8 models; keys of 25 "
          "votes each, all tested); baselines in the same process: the old in-fit rule (one fit, one pass) "
          "and the board it precedes (arena.ratings.compute_board, 100 bootstrap rounds, the default)")
    names = [str(m) for m in range(len(TRUE))]
    ratings.compute_board(ratings.PairCounts.from_arrays(names, [0, 1], [1, 2], [0, 1]), rounds=2)  # warm up
    for size in sizes:
        a, b, outcome, _ = honest_votes(np.random.default_rng(size), size)
        world = Arena(a, b, outcome, np.arange(size) // 25, np.arange(size) // 25, np.zeros(size, bool))
        cost_line(world, names, repeat)


def cost_line(world: Arena, names: list[str], repeat: int) -> None:
    a, b, outcome, key = world.a, world.b, world.outcome, world.rater
    n_keys = int(key.max()) + 1
    loo = timed(lambda: outliers.key_scores(len(TRUE), a, b, outcome, key, min_votes=20), repeat)
    steps = outliers.key_scores(len(TRUE), a, b, outcome, key, min_votes=20).steps
    old = timed(lambda: in_fit_z(world, key, 0), repeat)
    board = timed(lambda: ratings.compute_board(ratings.PairCounts.from_arrays(names, a, b, outcome), rounds=100,
                                                seed=0), repeat)
    print(f"  {len(a):>6} votes, {n_keys:>4} keys: test {loo * 1e3:6.1f} ms = {loo / n_keys * 1e6:5.0f} µs per "
          f"key's refit ({np.mean(steps[steps > 0]):.1f} Newton steps); old rule {old * 1e3:5.1f} ms "
          f"(test / old = {loo / old:.0f}x); board {board * 1e3:6.1f} ms (test / board = {loo / board:.2f})")


def timed(work, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="3 seeds and smaller cost runs (a few seconds)")
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    seeds = args.seeds or (3 if args.smoke else 30)
    scenario(500, 60, seeds)
    scenario(2000, 300, seeds)
    scenario(500, MIN_VOTES - 1, seeds)  # a key that stops just short of the test: only the cap holds it
    cost((500, 2000) if args.smoke else (500, 2000, 10000), 1 if args.smoke else 5)


if __name__ == "__main__":
    main()
