"""Speed of ``manage.py compute_ratings`` on the 1.67M public battles (a script that prints figures).

    .venv/bin/python bench/read_speed.py [--repeat 3] [--rounds 100] [--arena-rank-python PATH] [--data FILE]

Writes the 1,670,250 battles behind the 2024-08-13 board (``../shared/data/arena_battles/
lmsys_clean_battle_20240814_pair_counts.json``, expanded to one JSON line per battle, ~150 MB,
as ``arena/tests/test_compute_ratings.py`` does) to a temporary file, then times in this one
process, median of ``--repeat`` runs each:

(a) the previous reader: the standard library's ``json.loads`` per line, every record checked
    and kept as a dict, then ``PairCounts.from_battles`` and ``elo_update`` on name triples;
(b) the current one: :func:`arena.battle_files.arrays.read_battle_arrays` (orjson, aggregated while
    reading), ``PairCounts.from_arrays`` and ``elo_from_arrays``;
(c) the board itself (``board_build``: BT fit, ``--rounds`` bootstrap rounds, ranks, matrices),
    the same for both, and with sandwich intervals.

End to end = read + board. With ``--arena-rank-python`` (a Python with ``arena-rank``
installed, never the project's environment) it also times arena-rank end to end on the same
file in a subprocess: ``pandas.read_json(lines=True)``, ``PairDataset.from_pandas``, and
``BradleyTerry.compute_ratings_and_cis(ci_method="sandwich")``. The machine may be shared: the
figures move between runs, the ratios less. A run here (2 shared cores, load average ~9):

    (a) previous reader (json per line, dicts)    10.42 s
    (b) current reader (orjson, aggregated)        3.24 s   3.2x faster
    (c) board, bootstrap 100 rounds            0.17 s;  sandwich 0.26 s
    end to end, bootstrap: previous 10.59 s, current 3.40 s (3.1x); sandwich: current 3.50 s
    arena-rank end to end (sandwich)             32.18 s   ours (sandwich) is 9.2x faster

``manage.py compute_ratings`` adds Django's start-up (1–3 s here) and peaks at ~0.57 GB
instead of ~1.8 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from arena.battle_files.arrays import read_battle_arrays  # noqa: E402
from arena.battle_files.parse import _check, file_bytes  # noqa: E402
from arena.leaderboard.boards import board_build  # noqa: E402
from arena.ratings import INITIAL_RATING, PairCounts, elo_from_arrays, elo_update  # noqa: E402
from bench.pair_counts import DATA, write_battles  # noqa: E402

ARENA_RANK_SCRIPT = """
import sys, time
t0 = time.perf_counter()
import pandas as pd
from arena_rank.models.bradley_terry import BradleyTerry
from arena_rank.utils.data_utils import PairDataset
frame = pd.read_json(sys.argv[1], lines=True)
dataset = PairDataset.from_pandas(frame)
BradleyTerry(n_competitors=dataset.n_competitors).compute_ratings_and_cis(dataset, ci_method="sandwich")
print(time.perf_counter() - t0)
"""



def previous_reader(path: Path) -> tuple[PairCounts, dict[str, float]]:
    """The reader before orjson: one ``json.loads`` and one kept dict per line (validation as now)."""
    text = file_bytes(path).decode("utf-8")
    battles = []
    for raw in text.splitlines():
        if raw.strip():
            record = json.loads(raw)
            if _check(record):
                raise ValueError(_check(record))
            battles.append(record)
    triples = [(b["model_a"], b["model_b"], b["winner"]) for b in battles]
    return PairCounts.from_battles(triples), elo_update({}, triples)


def current_reader(path: Path) -> tuple[PairCounts, dict[str, float]]:
    arrays = read_battle_arrays(path)
    counts = PairCounts.from_arrays(arrays.models, arrays.model_a, arrays.model_b, arrays.outcome)
    elo = elo_from_arrays(arrays.model_a, arrays.model_b, arrays.outcome, [INITIAL_RATING] * len(arrays.models))
    return counts, dict(zip(arrays.models, elo.tolist(), strict=True))


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--arena-rank-python", help="a Python with arena-rank installed (not this environment)")
    parser.add_argument("--data", type=Path, default=DATA, help="the pair-counts JSON (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="1%% of the battles, one run, 5 rounds (seconds, for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.repeat, args.rounds = 1, 5
    if not args.data.exists():
        sys.exit(f"missing {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "battles.jsonl"
        n = write_battles(path, args.data, 0.01 if args.smoke else 1.0)
        print(f"{n:,} battles, {path.stat().st_size / 1e6:.0f} MB of JSON Lines; median of {args.repeat} runs")
        t_old, (counts_old, elo_old) = timed(lambda: previous_reader(path), args.repeat)
        t_new, (counts_new, elo_new) = timed(lambda: current_reader(path), args.repeat)
        assert counts_old.models == counts_new.models and (counts_old.counts == counts_new.counts).all()
        assert max(abs(elo_old[m] - elo_new[m]) for m in elo_old) < 1e-9
        t_board, _ = timed(lambda: board_build(counts_new, rounds=args.rounds, elo=elo_new), args.repeat)
        t_sand, _ = timed(lambda: board_build(counts_new, ci="sandwich", elo=elo_new), args.repeat)
        print(f"(a) previous reader (json per line, dicts)  {t_old:6.2f} s")
        print(f"(b) current reader (orjson, aggregated)      {t_new:6.2f} s   {t_old / t_new:.1f}x faster")
        print(f"(c) board, bootstrap {args.rounds} rounds          {t_board:6.2f} s;  sandwich {t_sand:.2f} s")
        print(f"end to end, bootstrap: previous {t_old + t_board:.2f} s, current {t_new + t_board:.2f} s "
              f"({(t_old + t_board) / (t_new + t_board):.1f}x); sandwich: current {t_new + t_sand:.2f} s")
        if args.arena_rank_python:
            runs = [float(subprocess.run([args.arena_rank_python, "-c", ARENA_RANK_SCRIPT, str(path)], check=True,
                                         capture_output=True, text=True).stdout.split()[-1]) for _ in range(args.repeat)]
            t_rank = statistics.median(runs)
            print(f"arena-rank end to end (sandwich)            {t_rank:6.2f} s   ours (sandwich) is "
                  f"{t_rank / (t_new + t_sand):.1f}x faster")


if __name__ == "__main__":
    main()
