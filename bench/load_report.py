"""What ``bench/load.py`` prints: the conditions, one line per step, the totals checked against the
database, and the capacity verdict.

Contract: :func:`step_verdict` passes a step when its vote round-trip p99 is under
``VOTE_P99_S`` and its median time to first token (per side, prompt sent → first word received)
is less than ``TTFT_OVERHEAD`` over the arena's own median with no load (the idle reference:
battles played one at a time before the steps, step ``REFERENCE``); a step with no vote or no
reference fails. What the load adds is judged, not the paced stream's fixed start (both sides
begin together on the pacing clock: about 120 ms over the provider's first word at any load),
which the report shows beside it as the overhead over the provider's own median (streamed to
directly by the generator during the same step).
:func:`print_totals` returns False when an honest rater was refused (``rate_limited``) or met any
other error frame, a socket dropped, a side failed, a web process logged an ERROR, or a vote
acknowledged to a rater was lost, duplicated or left out of the ratings by a rule about raters
(``Vote.exclusion``: too fast, repeated prompt, outlier, after the outlier test ran; an identity
leak is the model's doing and only reported: a real engine may name itself), or the votes' rater ids and IP hashes do not pair up one to one (each
rater must be its own session and its own address).
"""

from __future__ import annotations

import math
import os

from django.conf import settings

from bench.load_raters import REFERENCE

VOTE_P99_S = 0.250
TTFT_OVERHEAD = 0.10


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(value: float) -> str:
    return "    -" if math.isnan(value) else f"{value * 1000:5.0f}"


def print_header(args, webs: int, rates: list[float], pace, cpus, votes_before: int) -> None:
    load = os.getloadavg()
    provider = (f"FAKE bench/fake_openai.py (first word {args.ttft_ms:.0f} ms, then {args.token_ms:.0f} ms a word)"
                if args.fake else f"{args.engine_url} ({args.engine_model})")
    mode = (f"open loop, {', '.join(f'{r:g}' for r in rates)} battles/s, {args.step_s:.0f} s a step" if rates
            else f"closed loop, {args.raters} raters, {args.duration:.0f} s")
    print(f"\n=== {webs} web process{'es' if webs > 1 else ''}: {mode}")
    print(f"provider: {provider}, {args.tokens} words an answer; database: {settings.DATABASES['default']['ENGINE']}"
          f" {settings.DATABASES['default']['NAME']}; channel layer: {settings.CHANNEL_LAYERS['default']['BACKEND']}")
    print(f"protections: battles/min {settings.ARENA_LIMIT_BATTLES_PER_MINUTE}, concurrent generations "
          f"{settings.ARENA_LIMIT_CONCURRENT_GENERATIONS}, votes/h {settings.ARENA_LIMIT_VOTES_PER_HOUR}, votes/day "
          f"{settings.ARENA_LIMIT_VOTES_PER_DAY}, min vote {settings.ARENA_MIN_VOTE_SECONDS:g} s, prompt repeat cap "
          f"{settings.ARENA_PROMPT_REPEAT_CAP}, outlier z {settings.ARENA_OUTLIER_Z:g}; trusted proxies "
          f"{settings.ARENA_TRUSTED_PROXIES!r}")
    print(f"a rater: types {pace.typing[0]:g}-{pace.typing[1]:g} s, reads {pace.reading[0]:g}-{pace.reading[1]:g} s, "
          f"thinks {pace.think[0]:g}-{pace.think[1]:g} s (closed loop), >= {pace.min_gap:g} s between its battles; "
          f"own X-Forwarded-For address and session cookie")
    where = ", ".join(str(min(cpus[i % len(cpus)])) for i in range(webs)) if cpus else ""
    pin = (f"generator{' + fake provider' if args.fake else ''} pinned to CPU {min(args.generator_cpu)}, web process{'es' if webs > 1 else ''} "
           f"to CPU {where}" if cpus else "nothing pinned")
    print(f"CPUs: {os.cpu_count()} ({pin}; PostgreSQL and Redis unpinned); load average before "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; votes already stored {votes_before}")


def step_figures(stats, step: int | None) -> dict:
    ttft, direct, vote = stats.values("ttft", step), stats.values("direct", step), stats.values("vote", step)
    ttft_p50, direct_p50 = percentile(ttft, 50), percentile(direct, 50)
    idle_p50 = percentile(stats.values("ttft", REFERENCE), 50)
    return {"ttft_p50": ttft_p50, "ttft_p99": percentile(ttft, 99), "direct_p50": direct_p50,
            "direct_p99": percentile(direct, 99), "idle_p50": idle_p50,
            "overhead": ttft_p50 / idle_p50 - 1 if not math.isnan(idle_p50) else float("nan"),
            "over_provider": ttft_p50 / direct_p50 - 1 if direct else float("nan"),
            "vote_p50": percentile(vote, 50), "vote_p99": percentile(vote, 99), "votes": len(vote),
            "start_p99": percentile(stats.values("start", step), 99), "join_p99": percentile(stats.values("join", step), 99)}


def step_verdict(stats, step: int | None) -> tuple[bool, dict]:
    f = step_figures(stats, step)
    ok = bool(f["votes"]) and f["vote_p99"] < VOTE_P99_S and f["overhead"] < TTFT_OVERHEAD
    return ok, f


def pct(value: float) -> str:
    return "       -" if math.isnan(value) else f"{value * 100:+7.1f}%"


def print_reference(stats) -> None:
    """The idle reference: the arena's unloaded time to first token against the provider's."""
    ttft, direct = stats.values("ttft", REFERENCE), stats.values("direct", REFERENCE)
    print(f"idle reference ({len(ttft) // 2} battles one at a time): TTFT p50 {ms(percentile(ttft, 50)).strip()} ms, "
          f"p99 {ms(percentile(ttft, 99)).strip()} ms; the provider's own p50 {ms(percentile(direct, 50)).strip()} ms "
          f"(the paced stream's fixed start {pct(percentile(ttft, 50) / percentile(direct, 50) - 1).strip()}); "
          f"a step passes with TTFT p50 under +{TTFT_OVERHEAD:.0%} of the idle reference and vote p99 under "
          f"{VOTE_P99_S * 1000:.0f} ms", flush=True)


def print_steps(args, stats, rates: list[float], steps: list[int], heading: bool, note: str = "") -> None:
    if heading:
        print(f"{'offered':>8} {'raters':>6} {'voted/s':>7} | {'TTFT p50  p99':>13} | {'provider p50  p99':>17} | "
              f"{'vs idle':>8} {'vs prov.':>8} | {'vote p50  p99':>13} | {'start p99':>9} {'join p99':>8} | "
              f"web CPU wait  verdict (ms)")
    for step in steps:
        ok, f = step_verdict(stats, step if rates else None)
        span = args.step_s if rates else args.duration
        offered = f"{rates[step]:g}/s" if rates else "closed"
        print(f"{offered:>8} {stats.held_max.get(step, 0):6d} {stats.voted.get(step, 0) / span:7.2f} | "
              f"{ms(f['ttft_p50'])} {ms(f['ttft_p99'])}   | {ms(f['direct_p50'])} {ms(f['direct_p99'])}       | "
              f"{pct(f['overhead'])} {pct(f['over_provider'])} | {ms(f['vote_p50'])} {ms(f['vote_p99'])}   | {ms(f['start_p99'])}     {ms(f['join_p99'])}  | "
              f"{stats.web_cpu.get(step, float('nan')) / span:4.0%} {stats.web_wait.get(step, float('nan')) / span:5.0%}  "
              f"{'pass' if ok else 'FAIL'} {note}", flush=True)


def server_errors(logs) -> int:
    """ERROR lines of the web logs (daphne's "Exception inside application" is one of them)."""
    return sum(line.split(" ", 3)[2:3] == ["ERROR"] for log in logs for line in log.read_text(errors="replace").splitlines())


def vote_audit(acked: list[str]) -> dict:
    """The acknowledged votes against the database, after the outlier test has run on every stored vote."""
    from django.db.models import Count

    from arena import quality  # models load only after django.setup() in bench/load.py
    from arena.models import Vote

    quality.outliers_refresh()
    rows = Vote.objects.filter(battle__public_id__in=set(acked))
    stored = [str(b) for b in rows.values_list("battle__public_id", flat=True)]
    reasons = {r["exclusion"] or "counted": r["n"] for r in rows.values("exclusion").annotate(n=Count("id"))}
    return {"stored": len(stored), "lost": len(set(acked) - set(stored)),
            "duplicated": len(acked) - len(set(acked)) + len(stored) - len(set(stored)),
            "counted": rows.counted().count(), "identity_leaks": rows.filter(identity_leak=True).count(),
            "side_errors": rows.filter(side_error=True).count(), "reasons": reasons,
            "rater_ids": rows.values("rater_id").distinct().count(), "ip_hashes": rows.values("ip_hash").distinct().count(),
            "pairs": rows.values("rater_id", "ip_hash").distinct().count()}


def cpu_per_battle(stats) -> float:
    """The web processes' CPU seconds per voted battle over the whole run (NaN without a vote)."""
    return stats.web_cpu_total / len(stats.acked) if stats.acked else float("nan")


def print_totals(args, stats, memory: dict, logs, generator_cpu: float, wall: float) -> bool:
    audit = vote_audit(stats.acked)
    errors = server_errors(logs)
    refused = stats.error_frames.get("rate_limited", 0)
    share = audit["counted"] / audit["stored"] if audit["stored"] else float("nan")
    load = os.getloadavg()
    print(f"raters joined {stats.joined}; votes acknowledged {len(stats.acked)}, stored {audit['stored']}, lost "
          f"{audit['lost']}, duplicated {audit['duplicated']}; counted {audit['counted']} ({share:.1%}) "
          f"by reason {audit['reasons']}, identity leaks {audit['identity_leaks']}, side errors {audit['side_errors']}")
    print(f"the votes came from {audit['rater_ids']} rater ids (session cookies) and {audit['ip_hashes']} IP hashes "
          f"(X-Forwarded-For through the trusted hop)")
    print(f"rate_limited frames {refused}; error frames {stats.error_frames or 0}; side errors {stats.side_errors or 0}; "
          f"dropped sockets {stats.dropped or 0}; ERROR lines in web logs {errors}")
    per_battle = cpu_per_battle(stats)
    print(f"web CPU {stats.web_cpu_total:.1f} s in {wall:.0f} s ({stats.web_cpu_total / wall:.0%} of one core; its threads "
          f"waited {stats.web_wait_total:.1f} s, runnable, for a CPU), "
          f"{per_battle * 1000:.0f} ms a voted battle: one core held full would serve at most "
          f"{1 / per_battle:.1f} battles/s; load generator CPU {generator_cpu:.0%} of one core; load average after "
          f"{load[0]:.1f}; web RSS " + ", ".join(f"{a:.0f} -> {b:.0f} MB" for a, b in memory.values()))
    return not (stats.error_frames or stats.dropped or stats.side_errors or errors or audit["lost"]
                or audit["duplicated"] or set(audit["reasons"]) != {"counted"} or not stats.acked
                or not audit["rater_ids"] == audit["ip_hashes"] == audit["pairs"])


def capacity_line(stats, args, webs: int, verdicts: list[bool]) -> str:
    label = f"{webs} web process{'es' if webs > 1 else ''}"
    held = (verdicts + [False]).index(False)  # the steps up to the first failing one
    if not held:
        return f"capacity, {label}: no step met vote p99 < 250 ms and TTFT p50 < +10% of the idle reference"
    best = held - 1
    f = step_figures(stats, best)
    return (f"capacity, {label}: {stats.held_max.get(best, 0)} raters held, {stats.voted.get(best, 0) / args.step_s:.2f} "
            f"battles/s voted (offered {args.rates[best]:g}/s): vote p99 {f['vote_p99'] * 1000:.0f} ms, TTFT p50 "
            f"{f['ttft_p50'] * 1000:.0f} ms against {f['idle_p50'] * 1000:.0f} ms idle ({f['overhead'] * 100:+.1f}%) "
            f"and the provider's {f['direct_p50'] * 1000:.0f} ms ({f['over_provider'] * 100:+.1f}%)")
