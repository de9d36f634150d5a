"""Which tie model and which prior predict the next votes best (a script that prints a table).

    .venv/bin/python bench/predictive.py [--smoke] [--streams 20] [--models 20] [--test 1000]
    .venv/bin/python bench/predictive.py --battles FILE      # a file in the export_battles format

For every stream of battles, train on the first N votes and score the prediction of the next
``--test`` votes (win / loss / tie; "both bad" is a tie) with the mean log-loss (nats per vote)
and the Brier score (sum over the three outcomes of (p − y)², per vote), for N in 100, 300,
1,000, 3,000, 10,000; for each tie model (``half``, ``davidson``, ``rao-kupper``) × prior SD.

``half`` is Bradley–Terry with ties as half a win; it has no tie probability of its own, so it
predicts P(tie) = the training tie share (add-one smoothed) and splits the rest by BT's
probability. Davidson and Rao–Kupper predict all three from their fit. A model absent from the
training votes sits at the prior's mean (the arena mean).

Streams: by default battles drawn at random (seeded, with replacement) from the 1.67M public
battles' pair counts, restricted to the ``--models`` models with the most battles (a young
arena with a few contestants); each stream is a fresh draw. With ``--battles FILE`` the file's
own order (time order when it has tstamps) is the one stream, and sizes beyond it are skipped.

The prior SD 4000 is the public board's ridge (0.01): practically flat. Lower is stronger.
Figures depend only on the seeds, not on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arena.ratings import TIE_MODELS, PairCounts, fit_bt, fit_ties, outcome_probs, prior_reg  # noqa: E402
from arena.ratings.bt import _reg_logit  # noqa: E402
from arena.ratings.scale import POINTS_PER_LOGIT  # noqa: E402

PAIR_COUNTS = REPO.parent / "shared" / "data" / "arena_battles" / "lmsys_clean_battle_20240814_pair_counts.json"
SIZES = (100, 300, 1_000, 3_000, 10_000)
PRIOR_SDS = (50.0, 100.0, 200.0, 400.0, 4000.0)


def predict(model: str, train: PairCounts, sd: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), 3)`` probabilities of (a wins, b wins, tie) for the test pairs."""
    reg = prior_reg(sd)
    if model == "half":
        beta = (fit_bt(train, reg=reg) - 1000.0) / POINTS_PER_LOGIT
        ties = train.counts[:, 2:].sum()
        share = (ties + 1.0) / (train.n_battles + 3.0)
        p = 1.0 / (1.0 + np.exp(-(beta[a] - beta[b])))
        return np.column_stack([(1 - share) * p, (1 - share) * (1 - p), np.full(len(a), share)])
    fit = fit_ties(model, train, _reg_logit(reg))
    return np.column_stack(outcome_probs(model, fit.beta[a] - fit.beta[b], fit.tie))


def scores(prob: np.ndarray, outcome: np.ndarray) -> tuple[float, float]:
    """Mean log-loss and Brier score; ``outcome`` 0 = a wins, 1 = b wins, 2 = tie."""
    y = np.zeros_like(prob)
    y[np.arange(len(outcome)), outcome] = 1.0
    picked = np.clip(prob[np.arange(len(outcome)), outcome], 1e-15, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(np.sum((prob - y) ** 2, axis=1)))


def sampled_streams(n_models: int, length: int, streams: int, seed: int):
    """Battle streams (models, a, b, outcome 0/1/2) drawn from the public pair counts."""
    data = PairCounts.from_leaderbot_json(json.loads(PAIR_COUNTS.read_text()))
    top = np.argsort(-data.battles_per_model())[:n_models]
    counts = data.subset([data.models[k] for k in top])
    cells = np.column_stack([counts.counts[:, 0], counts.counts[:, 1], counts.counts[:, 2] + counts.counts[:, 3]])
    p = cells.ravel() / cells.sum()
    rng = np.random.default_rng(seed)
    for _ in range(streams):
        draw = rng.choice(len(p), size=length, p=p)
        pair, outcome = draw // 3, draw % 3
        i, j = counts.pairs[pair, 0], counts.pairs[pair, 1]
        flip = rng.random(length) < 0.5  # which side was shown as "A" does not matter to the fit
        a, b = np.where(flip, j, i), np.where(flip, i, j)
        outcome = np.where(flip & (outcome < 2), 1 - outcome, outcome)
        yield counts.models, a, b, outcome


def file_stream(path: str):
    from arena.battle_files.arrays import read_battle_arrays  # Django-free, but only needed with --battles

    battles = read_battle_arrays(path)
    yield battles.models, battles.model_a, battles.model_b, np.minimum(battles.outcome, 2)


def run(streams, sizes, test: int, priors) -> dict[tuple[str, float, int], list[tuple[float, float]]]:
    results: dict[tuple[str, float, int], list[tuple[float, float]]] = {}
    for models, a, b, outcome in streams:
        for n in sizes:
            if n + test > len(a):
                continue
            train = PairCounts.from_arrays(models, a[:n], b[:n], outcome[:n])
            ta, tb, to = a[n:n + test], b[n:n + test], outcome[n:n + test]
            for model in TIE_MODELS:
                for sd in priors:
                    results.setdefault((model, sd, n), []).append(scores(predict(model, train, sd, ta, tb), to))
    return results


def print_table(results, sizes, priors) -> None:
    print(f"{'tie model':11s} {'prior SD':>8s} " + " ".join(f"{'N=' + format(n, ','):>15s}" for n in sizes))
    print(f"{'':20s} " + " ".join(f"{'log-loss  Brier':>15s}" for _ in sizes))
    best = {n: min((np.mean([r[0] for r in v]), k) for k, v in results.items() if k[2] == n) for n in sizes
            if any(k[2] == n for k in results)}
    for model in TIE_MODELS:
        for sd in priors:
            cells = []
            for n in sizes:
                got = results.get((model, sd, n))
                if not got:
                    cells.append(f"{'—':>15s}")
                    continue
                ll, br = np.mean(got, axis=0)
                mark = "*" if best[n][1] == (model, sd, n) else " "
                cells.append(f"{ll:7.4f}{mark} {br:6.4f}")
            print(f"{model:11s} {sd:8.0f} " + " ".join(cells))
    print("* lowest mean log-loss at that N")
    for n, (ll, (model, sd, _)) in best.items():
        print(f"  N={n:>6,}: {model}, prior SD {sd:.0f} ({ll:.4f} nats/vote)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 2 streams, N = 100 and 300")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--models", type=int, default=20, help="models of the sampled arena (most battles first)")
    parser.add_argument("--test", type=int, default=1000, help="votes predicted after each training prefix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--battles", help="a battle file (export_battles format) instead of sampled streams")
    args = parser.parse_args()
    sizes = SIZES[:2] if args.smoke else SIZES
    priors = (100.0, 400.0) if args.smoke else PRIOR_SDS
    streams = 2 if args.smoke else args.streams
    started = time.perf_counter()
    if args.battles:
        source = file_stream(args.battles)
        print(f"stream: {args.battles} (its own order), next {args.test} votes predicted")
    else:
        source = sampled_streams(args.models, max(sizes) + args.test, streams, args.seed)
        print(f"{streams} streams drawn from the public pair counts, top {args.models} models, "
              f"next {args.test} votes predicted, seed {args.seed}")
    results = run(source, sizes, args.test, priors)
    print_table(results, sizes, priors)
    # The reference a reader can check by hand: always predicting the overall shares.
    print(f"(uniform 1/3 each: log-loss {math.log(3):.4f}, Brier {2 / 3:.4f})")
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
