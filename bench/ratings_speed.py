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

(f) the same battles as votes in PostgreSQL, in the arena's real tables (a scratch database
    ``arena_bench``, created, migrated, filled with COPY, dropped at the end): the snapshot's SQL
    GROUP BY, then compute_board on its result, against (d);
(g) the whole ``arena.leaderboard_services.snapshot_create()``: every category, style control, Elo.
Skipped with a message when PostgreSQL is not reachable.

Then it prints how well the BT fit reproduces the published board from the real pair counts in
../shared/data (if present). Timings are the median of --repeat runs; the machine may be shared,
so figures move between runs.

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
    DEFAULT_PRIOR_SD,
    LMSYS_ANCHOR,
    TIE_MODELS,
    PairCounts,
    compute_board,
    elo_from_arrays,
    fit_bt,
    prior_reg,
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


def time_counts_source(
    label: str, load: Callable[[], PairCounts], repeat: int = 3
) -> tuple[PairCounts, float, float]:
    """Time a callable that returns PairCounts (e.g. an SQL GROUP BY + PairCounts.from_grouped)
    and compute_board on its result, print both; returns (counts, load time, board time)."""
    t_load, counts = timed(load, repeat)
    t_board, _ = timed(lambda: compute_board(counts), repeat)
    print(
        f"[{label}] counts: {t_load * 1e3:8.1f} ms   compute_board: {t_board * 1e3:8.1f} ms   "
        f"({counts.n_models} models, {len(counts.pairs)} pairs, {counts.n_battles:,.0f} battles)"
    )
    return counts, t_load, t_board  # type: ignore[return-value]


# -- (f, g) the database path ---------------------------------------------------------------------

BENCH_DB = "arena_bench"
# Shares of votes that do not count, and of the category facts: about what a public arena sees.
LANGUAGES = (("en", 0.60), ("zh-cn", 0.12), ("ru", 0.05), ("de", 0.04), ("fr", 0.04), ("es", 0.04),
             ("ja", 0.03), ("ko", 0.02), ("pt", 0.02), ("it", 0.02), ("", 0.02))


def _server_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("DATABASE_URL", "")
    if env.startswith(("postgres://", "postgresql://")):
        return env
    return "postgres://postgres@127.0.0.1:5432/postgres"


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _copy_votes(connection, n_models: int, a: np.ndarray, b: np.ndarray, outcome: np.ndarray) -> None:
    """Battles and votes into the real tables with COPY (psycopg 3), in blocks of 100k rows."""
    rng = np.random.default_rng(42)
    n = len(a)
    model_ids = np.array(list(range(1, n_models + 1)))
    winners = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])[outcome]
    langs, shares = zip(*LANGUAGES, strict=True)
    language = np.array(langs)[rng.choice(len(langs), n, p=np.array(shares) / sum(shares))]
    mode = np.where(rng.random(n) < 0.03, "named", "anony")
    leak = rng.random(n) < 0.02
    side_error = rng.random(n) < 0.01
    turns = rng.choice([1, 2, 3, 4], n, p=[0.75, 0.15, 0.06, 0.04])
    tokens = np.minimum(rng.lognormal(3.7, 1.3, n), 30000).astype(np.int64)
    style = np.column_stack([
        rng.integers(20, 1500, n), rng.poisson(0.8, n), rng.poisson(3, n), rng.poisson(2, n),
        rng.integers(20, 1500, n), rng.poisson(0.8, n), rng.poisson(3, n), rng.poisson(2, n),
    ])
    times = np.datetime_as_string(
        np.datetime64("2025-01-01T00:00:00") + np.arange(n).astype("timedelta64[s]") * 30, unit="s"
    )
    public_ids = [bytes(x).hex() for x in rng.integers(0, 256, (n, 16), dtype=np.uint8)]
    with connection.cursor() as cursor:
        battle_cols = ("id, public_id, model_a_id, model_b_id, status, mode, conversation_a, conversation_b, "
                       "language, turn_total, prompt_tokens, rater_id, ip_hash, created_at, updated_at")
        # Every NOT NULL column without a database default is listed (Django's defaults live in Python, not in
        # the table): a new such column on Vote must be added here, and the smoke run in CI says so.
        vote_cols = ("id, battle_id, winner, rater_id, ip_hash, exclusion, prompt_hash, identity_leak, identity_words, "
                     "side_error, style, created_at")
        for start in range(0, n, 100_000):
            stop = min(n, start + 100_000)
            battles, votes = [], []
            for k in range(start, stop):
                ts = times[k] + "+00"
                rater = f"r{k % 50_000}"
                battles.append(
                    f"{k + 1}\t{public_ids[k]}\t{model_ids[a[k]]}\t{model_ids[b[k]]}\tvoted\t{mode[k]}\t[]\t[]\t"
                    f"{language[k]}\t{turns[k]}\t{tokens[k]}\t{rater}\t\t{ts}\t{ts}\n"
                )
                st = style[k]
                votes.append(
                    f"{k + 1}\t{k + 1}\t{winners[k]}\t{rater}\t\t\t\t{'t' if leak[k] else 'f'}\t[]\t"
                    f"{'t' if side_error[k] else 'f'}\t"
                    f'{{"a": {{"tokens": {st[0]}, "headers": {st[1]}, "lists": {st[2]}, "bold": {st[3]}}}, '
                    f'"b": {{"tokens": {st[4]}, "headers": {st[5]}, "lists": {st[6]}, "bold": {st[7]}}}}}\t{ts}\n'
                )
            with cursor.copy(f"COPY arena_battle ({battle_cols}) FROM STDIN") as copy:
                copy.write("".join(battles))
            with cursor.copy(f"COPY arena_vote ({vote_cols}) FROM STDIN") as copy:
                copy.write("".join(votes))
        for table in ("arena_battle", "arena_vote"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE arena_battle")
        cursor.execute("ANALYZE arena_vote")


def database_benchmark(args: argparse.Namespace, a: np.ndarray, b: np.ndarray, outcome: np.ndarray,
                       t_row_total: float | None) -> None:
    """(f) and (g): the snapshot's SQL aggregation and the whole snapshot on PostgreSQL."""
    try:
        import psycopg
    except ImportError:
        print("(f) database: skipped (psycopg is not installed)")
        return
    server = _server_url(args.pg_url)
    try:
        admin = psycopg.connect(_with_db(server, "postgres"), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"(f) database: skipped, PostgreSQL not reachable at {server} ({str(exc).strip().splitlines()[0]})")
        return
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    try:
        # The settings read DATABASE_URL once, at django.setup(): nothing Django is imported before.
        os.environ["DATABASE_URL"] = _with_db(server, BENCH_DB)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import logging

        import django
        from django.core.management import call_command

        django.setup()
        logging.getLogger("arena.leaderboard").setLevel(logging.WARNING)
        from django.db import connection

        from arena.leaderboard import (
            selectors as leaderboard_selectors,  # Django is set up in main(), after this module loads
        )
        from arena.leaderboard import (
            services as leaderboard_services,  # Django is set up in main(), after this module loads
        )
        from arena.models import Vote  # Django is set up in main(), after this module loads
        from serving.models import (  # Django is set up in main(), after this module loads
            Endpoint,
            ServedModel,
        )

        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        endpoint = Endpoint.objects.create(name="bench", base_url="http://bench.invalid/v1")
        ServedModel.objects.bulk_create([
            ServedModel(pk=k + 1, public_name=f"model-{k:03d}", endpoint=endpoint, engine_model_id=f"m{k}")
            for k in range(args.models)
        ])
        _copy_votes(connection, args.models, a, b, outcome)
        n_votes = Vote.objects.count()
        n_counted = Vote.objects.counted().count()
        print(f"(f) PostgreSQL {connection.pg_version // 10000}: {n_votes:,} votes ({n_counted:,} counted) "
              f"in {BENCH_DB}, loaded with COPY in {time.perf_counter() - t0:.1f} s")

        last = Vote.objects.order_by("-pk").values_list("pk", flat=True).first()
        names = dict(ServedModel.objects.values_list("pk", "public_name"))
        t_sql, groups = timed(lambda: leaderboard_selectors.counted_vote_groups(last), args.repeat)
        print(f"    SQL GROUP BY (pair, winner) with multi-turn and long-prompt counts {t_sql * 1e3:8.1f} ms   "
              f"({len(groups):,} rows for {sum(g[3] for g in groups):,} votes)")

        def overall_counts() -> PairCounts:
            rows = leaderboard_selectors.counted_vote_groups(last)
            return PairCounts.from_grouped((names[a], names[b], w, n) for a, b, w, n, _, _ in rows)

        _, t_load, t_board = time_counts_source(
            "    SQL GROUP BY -> overall PairCounts", overall_counts, repeat=args.repeat
        )
        total = t_load + t_board
        ratio = f"  ->  {t_row_total / total:,.0f}x faster than (d)" if t_row_total else ""
        print(f"    database to board (SQL + PairCounts + compute_board): {total:.2f} s{ratio}")

        t_lang, lang_groups = timed(lambda: leaderboard_selectors.language_vote_groups(last), 1)
        print(f"    SQL GROUP BY (pair, winner, language) {t_lang * 1e3:8.1f} ms   ({len(lang_groups):,} rows)")
        t_style, (_, style_arrays, _) = timed(lambda: leaderboard_selectors.style_vote_arrays(last, names), 1)
        print(f"    style counts of every counted vote {t_style * 1e3:8.1f} ms   ({len(style_arrays[0]):,} votes)")

        t_first = time.perf_counter()
        first = leaderboard_services.snapshot_create()
        t_first = time.perf_counter() - t_first
        t_next = time.perf_counter()
        second = leaderboard_services.snapshot_create()
        t_next = time.perf_counter() - t_next
        boards = sum(1 for c in first.data["categories"] if c["board"])
        style = first.data["style_control"]
        carried = second.data["style_control"]["computed_at"] == style["computed_at"]
        print(f"(g) snapshot_create: {boards} category boards + style control ({style['board']['rounds']} rounds, "
              f"{style['compute_ms'] / 1e3:.1f} s of it): first {t_first:.1f} s (Elo over every vote), next "
              f"{t_next:.1f} s (Elo: new votes only{'; style control carried over' if carried else ''})")
        connection.close()
    finally:
        if args.keep_db:
            print(f"    kept the scratch database {BENCH_DB}")
        else:
            with psycopg.connect(_with_db(server, "postgres"), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


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
    parser.add_argument("--skip-db", action="store_true", help="skip the PostgreSQL part (f, g)")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the scratch database {BENCH_DB} afterwards")
    parser.add_argument(
        "--pg-url", default=None,
        help="PostgreSQL server to create the scratch database on (default: DATABASE_URL if it is "
             "PostgreSQL, else postgres://postgres@127.0.0.1:5432/postgres)",
    )
    parser.add_argument("--smoke", action="store_true",
                        help="20,000 battles of 20 models, one run, one baseline round (seconds, for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.battles, args.models, args.repeat, args.baseline_rounds = 20_000, 20, 1, 1

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

    # The live board's choice (ARENA_LEADERBOARD_PRIOR_SD, ARENA_LEADERBOARD_TIES) against (b), the
    # public board's ridge with ties as half: the budget is 1.5x.
    for ties in TIE_MODELS:
        for ci in ("bootstrap", "sandwich"):
            t_live, _ = timed(lambda ties=ties, ci=ci: compute_board(
                counts, rounds=100, seed=0, reg=prior_reg(DEFAULT_PRIOR_SD), ties=ties, ci=ci), args.repeat)
            print(f"(b') compute_board, prior SD {DEFAULT_PRIOR_SD:.0f}, ties {ties:10s} {ci:9s} {t_live * 1e3:8.1f} ms"
                  f"   {t_live / t_board:5.2f}x (b)")

    start = np.full(args.models, 1000.0)
    t_elo, _ = timed(lambda: elo_from_arrays(a, b, outcome, start), max(1, args.repeat // 2))
    print(
        f"(c) Elo full recompute over {args.battles:,} battles {t_elo * 1e3:8.1f} ms "
        f"({t_elo / args.battles * 1e9:.0f} ns per battle)"
    )

    # The database path (f, g) runs after the baselines, to print its ratio against (d).
    t_row_total: float | None = None
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

    if not args.skip_db:
        database_benchmark(args, a, b, outcome, t_row_total)

    published_reproduction()


if __name__ == "__main__":
    main()
