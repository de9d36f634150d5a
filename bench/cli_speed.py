"""``manage.py compute_ratings`` against an independent BT CLI on the same file (prints figures).

    .venv/bin/python bench/cli_speed.py [--repeat 3] [--smoke] [-- extra compute_ratings arguments]

Writes the 1,670,250 battles behind the 2024-08-13 board (``../shared/data/arena_battles/
lmsys_clean_battle_20240814_pair_counts.json`` expanded to one JSON line per battle, ~150 MB,
as ``arena/tests/test_compute_ratings.py`` does) to a temporary file, then runs, as child
processes of this one and alternating (median of ``--repeat`` runs each, wall clock and the child's
CPU time (user + system; steadier on a shared machine), both including interpreter and Django
start-up):

(a) ``manage.py compute_ratings FILE`` with the given arguments (default: the board's settings);
(b) ``bench/bt_cli.py FILE``: stdlib ``json`` per line, a Counter, BT by scipy L-BFGS-B.

and prints both times and the ratios (a)/(b) (issue 21 asks for at most 0.3). It checks the two
agree on the order of the top 10 (ties as half a win, so only with ``--ties half``). The file
repeats a few thousand distinct lines (no time stamps), which the reader parses once each; a
file whose every line differs (an export with time stamps) takes the per-line path. The
machine may be shared: the times move between runs, the ratio less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pair_counts import DATA, write_battles  # noqa: E402


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, list[dict]]:
    """Wall seconds, CPU seconds (user + system, of the child) and the parsed output of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA, help="the pair-counts JSON (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="1%% of the battles, one run (seconds, for CI)")
    parser.add_argument("extra", nargs="*", help="arguments for compute_ratings (after --)")
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 1
    if not args.data.exists():
        sys.exit(f"missing {args.data}")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.setdefault("DJANGO_DEBUG", "true")  # the command needs no secrets; development settings suffice
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "battles.jsonl"
        n = write_battles(path, args.data, 0.01 if args.smoke else 1.0)
        ours_cmd = [sys.executable, "manage.py", "compute_ratings", str(path), *args.extra]
        theirs_cmd = [sys.executable, str(REPO / "bench" / "bt_cli.py"), str(path)]
        print(f"{n:,} battles, {path.stat().st_size / 1e6:.0f} MB of JSON Lines; median of {args.repeat} runs each")
        ours, theirs = [], []
        for _ in range(args.repeat):
            *t, rows = run(ours_cmd, env)
            ours.append(t)
            *t, ref = run(theirs_cmd, env)
            theirs.append(t)
        (w_ours, c_ours), (w_theirs, c_theirs) = (tuple(map(statistics.median, zip(*r, strict=True))) for r in (ours, theirs))
        if "--ties" not in args.extra or "half" in args.extra:
            top_ours, top_ref = [r["model"] for r in rows[:10]], [r["model"] for r in ref[:10]]
            print(f"same top 10: {top_ours == top_ref}")
        print(f"(a) compute_ratings {' '.join(args.extra) or '(defaults)'}: wall {w_ours:6.2f} s, CPU {c_ours:6.2f} s")
        print(f"(b) independent BT CLI (json per line): wall {w_theirs:6.2f} s, CPU {c_theirs:6.2f} s")
        print(f"ratio (a)/(b): wall {w_ours / w_theirs:.2f}, CPU {c_ours / c_theirs:.2f}")


if __name__ == "__main__":
    main()
