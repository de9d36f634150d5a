"""``bench/load.py``'s simulated raters: their pace keeps them inside the limits, their prompts stay
under the repeat cap, each is its own address, and the smoke run against a real stack (web process in
production mode, the database server of ``DATABASE_URL`` or SQLite) refuses no honest rater and keeps
every vote."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.load_raters import REFERENCE, Pace, Prompts, Rater, Stats, Target, address
from bench.load_report import step_verdict

REPO = Path(__file__).resolve().parent.parent


def _eager_rater(pace: Pace) -> Rater:
    return Rater(0, Target("127.0.0.1", 1), pace, Prompts(["Name three rivers."]), Stats(), timeout=1.0)


def test_a_rater_as_eager_as_its_pace_allows_stays_inside_the_battle_and_vote_limits():
    # No human pause at all: only the limits hold it back. Each battle is voted 1 s after it starts.
    rater = _eager_rater(Pace(min_gap=0.0, battles_per_minute=6, votes_per_hour=60, votes_per_day=300, margin_s=0.5))
    starts, votes, t = [], [], 0.0
    while t < 3 * 3600:
        t = max(t, rater.ready_at())
        starts.append(t)
        votes.append(t + 1.0)
        rater.starts.append(t)
        rater.votes.append(t + 1.0)
        rater.idle_since = t + 1.0
    # The server's rule, counted independently: a new row is refused when the window before it
    # (created_at > now - window) already holds `limit` rows.
    for times, limit, window in ((starts, 6, 60), (votes, 60, 3600), (votes, 300, 86400)):
        for i, moment in enumerate(times):
            assert sum(moment - window < earlier for earlier in times[:i]) < limit
    assert len(votes) >= 150  # it did vote as often as allowed: about 60 an hour, with the margin


def test_a_human_pace_spaces_one_raters_battles_by_the_least_gap():
    rater = _eager_rater(Pace(min_gap=15.0))
    rater.starts.append(100.0)
    rater.idle_since = 105.0
    assert rater.ready_at() == 115.0


def test_prompts_go_round_robin_and_reach_the_repeat_cap_only_after_every_prompt_has():
    prompts = Prompts(["a", "b", "c"], repeat_cap=4)
    asked = Counter(prompts.next() for _ in range(3 * 4 + 6))
    assert asked["a"] == asked["b"] == asked["c"] == 4
    assert max(asked.values()) <= 4  # the two passes beyond the cap are new first prompts
    assert len(asked) == 3 + 6


def test_every_rater_has_an_address_of_its_own():
    addresses = [address(i) for i in range(70_000)]
    assert len(set(addresses)) == len(addresses)
    assert all(a.startswith("10.") and not a.endswith(".0.0.0") for a in addresses)


def _stats(idle_ttft: list[float], ttft: list[float], provider: list[float], vote: list[float]) -> Stats:
    stats = Stats()
    for kind, step, values in (("ttft", REFERENCE, idle_ttft), ("ttft", 0, ttft), ("direct", 0, provider),
                               ("vote", 0, vote)):
        for value in values:
            stats.add(kind, step, value)
    return stats


def test_a_step_is_judged_by_what_load_adds_to_the_idle_reference_not_by_the_paced_streams_fixed_start():
    # The paced stream starts 120 ms after the provider's first word at any load: not the load's doing.
    at_ease = _stats([0.42] * 9, [0.44] * 9, [0.30] * 9, [0.05] * 9)
    ok, figures = step_verdict(at_ease, 0)
    assert ok and round(figures["overhead"], 3) == 0.048 and round(figures["over_provider"], 3) == 0.467
    slowed = _stats([0.42] * 9, [0.47] * 9, [0.30] * 9, [0.05] * 9)  # +11.9% over idle
    assert not step_verdict(slowed, 0)[0]
    slow_votes = _stats([0.42] * 9, [0.42] * 9, [0.30] * 9, [0.05] * 98 + [0.3, 0.3])  # p99 300 ms
    assert not step_verdict(slow_votes, 0)[0]
    no_reference = _stats([], [0.42] * 9, [0.30] * 9, [0.05] * 9)
    assert not step_verdict(no_reference, 0)[0]


def test_the_smoke_load_run_refuses_no_honest_rater_and_keeps_and_counts_every_vote():
    # The run's own scratch database (<name>_load next to DATABASE_URL's, or SQLite); no --redis-url, so the
    # refits its votes queue go to a broker folder of its own, never to the Redis queue other tests read.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ARENA_"))}
    result = subprocess.run([sys.executable, "bench/load.py", "--smoke"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "rate_limited frames 0;" in out and "dropped sockets 0;" in out, out
    assert "lost 0, duplicated 0" in out and "(100.0%)" in out, out


def test_the_smoke_open_loop_plays_its_idle_reference_first_and_judges_its_step():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ARENA_"))}
    result = subprocess.run([sys.executable, "bench/load.py", "--smoke", "--rates", "0.5", "--step-s", "6",
                             "--reference-battles", "2"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "idle reference (2 battles one at a time): TTFT p50" in out, out
    assert "capacity, 1 web process:" in out and "rate_limited frames 0;" in out, out
    assert "lost 0, duplicated 0" in out and "(100.0%)" in out, out
