"""Load test: N concurrent scripted raters over the documented WebSocket API (README "Battle API").

Each rater loops: ``new_battle`` → ``prompt`` → read both streams to ``turn_done`` → ``vote`` →
``revealed``, with a random think time between battles, until the run's time is up; the run
stops by itself. It prints: raters held, battles and votes per second, p50/p95/p99 time to first
token and vote round-trip, WebSocket and server errors, lost and duplicated votes (database count
against what clients saw acknowledged; both must be 0) and each web process's memory at start and end.

Why an asyncio client and not Locust: the API is a WebSocket protocol, which Locust only speaks
through plugins (and greenlets); ``websockets`` (a pinned dev dependency) holds hundreds of
sockets in one process on one core, and this client reads every frame, so it can check that
no acknowledged vote is lost. No new dependency.

The script builds its own stack on loopback: a scratch database (a SQLite file, or
``<name>_load`` re-created on the PostgreSQL server of ``--database-url``), ``--webs`` daphne web
processes (raters split between them) sharing it and ``--redis-url``'s channel layer, two
contestants on ``--engine-url`` or, with ``--fake``, on ``bench/fake_openai.py`` (a FAKE engine
at the HTTP boundary that answers at once, so the web stack is what is measured). No Celery
worker runs: leaderboard refits queue up in Redis unserved, which the web side does not wait for.

    # A: the web stack alone, 200 raters, 3 minutes
    .venv/bin/python bench/load.py --fake --raters 200 --duration 180 \\
        --database-url postgres://postgres@127.0.0.1:5432/loadfaults --redis-url redis://127.0.0.1:6379/7
    # B: a CPU engine of its own, raters rising until it saturates
    .venv/bin/python bench/load.py --start-engine --tokens 256 --steps 1,2,4,8,16,32 --step-s 45 ...
    # C: two web processes
    .venv/bin/python bench/load.py --fake --webs 2 --raters 200 --duration 180 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.battle_latency import free_port, start_engine  # noqa: E402

PROMPTS = ["Name three rivers.", "Say hello in one short sentence.", "What is 2 + 2?", "Give me a fruit name."]


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    held: int = 0
    max_held: int = 0
    battles: int = 0
    ttft: list = field(default_factory=list)  # (t, seconds, step)
    vote_rtt: list = field(default_factory=list)  # (t, seconds, step)
    deltas: list = field(default_factory=list)  # (t, count, step)
    acked: list = field(default_factory=list)  # battle ids the server confirmed voted
    error_frames: dict = field(default_factory=dict)  # code -> count
    side_errors: dict = field(default_factory=dict)  # public message -> count
    dropped: dict = field(default_factory=dict)  # close code / exception -> count

    def count(self, table: dict, key: str) -> None:
        table[key] = table.get(key, 0) + 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def rater(url: str, stats: Stats, step: int, deadline: float, think_s: float, timeout_s: float) -> None:
    import websockets

    async def recv(ws) -> dict:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if frame["type"] == "error":
            stats.count(stats.error_frames, frame.get("code", "?"))
        return frame

    try:
        async with websockets.connect(url, open_timeout=60, ping_interval=None, max_size=2**22) as ws:
            stats.held += 1
            stats.max_held = max(stats.max_held, stats.held)
            try:
                while time.monotonic() < deadline:
                    await ws.send(json.dumps({"type": "new_battle"}))
                    battle = await recv(ws)
                    if battle["type"] != "battle":
                        await asyncio.sleep(1.0)
                        continue
                    sent = time.monotonic()
                    await ws.send(json.dumps({"type": "prompt", "battle_id": battle["battle_id"],
                                              "text": random.choice(PROMPTS)}))
                    firsts: set[str] = set()
                    deltas = 0
                    while (frame := await recv(ws))["type"] not in ("turn_done", "error"):
                        if frame["type"] == "delta":
                            deltas += 1
                            if frame["side"] not in firsts:
                                firsts.add(frame["side"])
                                stats.ttft.append((time.monotonic(), time.monotonic() - sent, step))
                        elif frame["type"] == "side_done" and frame["state"] != "done":
                            stats.count(stats.side_errors, frame["error"] or frame["state"])
                    stats.deltas.append((time.monotonic(), deltas, step))
                    if frame["type"] == "error":
                        continue
                    stats.battles += 1
                    voted = time.monotonic()
                    await ws.send(json.dumps({"type": "vote", "battle_id": battle["battle_id"],
                                              "winner": random.choice(["model_a", "model_b", "tie"])}))
                    frame = await recv(ws)
                    if frame["type"] == "revealed":
                        stats.vote_rtt.append((time.monotonic(), time.monotonic() - voted, step))
                        stats.acked.append(frame["battle_id"])
                    if think_s:
                        await asyncio.sleep(random.uniform(0, think_s))
            finally:
                stats.held -= 1
    except websockets.ConnectionClosed as exc:
        stats.count(stats.dropped, f"closed {exc.rcvd.code if exc.rcvd else 'without a close frame'}")
    except websockets.InvalidStatus as exc:
        stats.count(stats.dropped, f"handshake refused: HTTP {exc.response.status_code}")
    except (websockets.WebSocketException, OSError, TimeoutError) as exc:
        stats.count(stats.dropped, exc.__class__.__name__)


async def drive(urls: list[str], steps: list[int], step_s: float, think_s: float, timeout_s: float) -> Stats:
    """Start raters step by step (``steps`` = total raters at each step); all stop at the end."""
    stats = Stats()
    deadline = stats.started + step_s * len(steps)
    tasks, index = [], 0
    for step, total in enumerate(steps):
        while len(tasks) < total:
            url = urls[index % len(urls)]
            index += 1
            tasks.append(asyncio.create_task(rater(url, stats, step, deadline, think_s, timeout_s)))
            await asyncio.sleep(min(0.02, step_s / max(total, 1)))  # a short ramp, not a thundering herd
        await asyncio.sleep(max(0.0, stats.started + step_s * (step + 1) - time.monotonic()))
    await asyncio.wait(tasks, timeout=timeout_s + 30)
    return stats


# --- the stack -----------------------------------------------------------------------------------

def scratch_database(url: str) -> str:
    """A fresh database for this run: a temp SQLite file, or ``<name>_load`` re-created on the server."""
    if not url or url.startswith("sqlite"):
        return f"sqlite:///{Path(tempfile.mkdtemp(prefix='arena-load-')) / 'load.sqlite3'}"
    import psycopg

    base, _, name = url.rpartition("/")
    scratch = f"{name.split('?')[0]}_load"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{scratch}"')
    return f"{base}/{scratch}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_stack(args, env: dict) -> tuple[list[subprocess.Popen], list[str], list[Path]]:
    logs = REPO / "var" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes, urls, web_logs = [], [], []
    if args.fake:
        port = free_port()
        processes.append(subprocess.Popen([sys.executable, str(REPO / "bench" / "fake_openai.py"), "--port", str(port),
                                           "--tokens", str(args.tokens)], cwd=REPO))
        args.engine_url = f"http://127.0.0.1:{port}"
    from django.core.management import call_command

    from serving.models import Endpoint, ServedModel

    call_command("migrate", verbosity=0)
    model_id = "fake-model" if args.fake else args.engine_model
    for side in "ab":
        endpoint = Endpoint.objects.create(name=f"load-{side}", base_url=f"{args.engine_url}/v1", healthy=True)
        ServedModel.objects.create(public_name=f"load-{side}", endpoint=endpoint, engine_model_id=model_id,
                                   generation={"temperature": 0.7, "max_tokens": args.tokens})
    from tests.faults import start_daphne

    for index in range(args.webs):
        port = free_port()
        log = logs / f"load-web-{index}.log"
        log.write_text("")
        processes.append(start_daphne(REPO, port, env, log))
        urls.append(f"ws://127.0.0.1:{port}/ws/arena/")
        web_logs.append(log)
    return processes, urls, web_logs


def server_errors(logs: list[Path]) -> int:
    """ERROR lines of the web logs (daphne's "Exception inside application" is one of them)."""
    return sum(line.split(" ", 3)[2:3] == ["ERROR"] for log in logs for line in log.read_text(errors="replace").splitlines())


def report(args, stats: Stats, steps: list[int], stored: list[str], memory: dict, errors: int) -> None:
    elapsed = time.monotonic() - stats.started
    acked = stats.acked
    lost = set(acked) - set(stored)
    duplicated = len(acked) - len(set(acked)) + len(stored) - len(set(stored))
    print(f"\nwebs: {args.webs}  engine: {'FAKE (bench/fake_openai.py)' if args.fake else args.engine_url}  "
          f"tokens/answer: {args.tokens}  think: 0-{args.think}s  run: {elapsed:.0f}s")
    print(f"raters held: max {stats.max_held} (asked {steps[-1]})   battles: {stats.battles} "
          f"({stats.battles / elapsed:.1f}/s)   votes acknowledged: {len(acked)} ({len(acked) / elapsed:.1f}/s)")
    for step, total in enumerate(steps):
        ttft = [v for _, v, s in stats.ttft if s <= step]
        rtt = [v for _, v, s in stats.vote_rtt if s <= step]
        window = [(t, v) for t, v, _ in stats.deltas
                  if stats.started + args.step_s * step <= t < stats.started + args.step_s * (step + 1)]
        tokens_s = sum(v for _, v in window) / args.step_s
        if len(steps) > 1:
            ttft = [v for t, v, _ in stats.ttft if stats.started + args.step_s * step <= t < stats.started + args.step_s * (step + 1)]
            rtt = [v for t, v, _ in stats.vote_rtt if stats.started + args.step_s * step <= t < stats.started + args.step_s * (step + 1)]
        print(f"  raters {total:4d}: TTFT p50/p95/p99 {percentile(ttft, 50) * 1000:7.0f} / {percentile(ttft, 95) * 1000:7.0f} / "
              f"{percentile(ttft, 99) * 1000:7.0f} ms   vote round-trip p50/p95/p99 {percentile(rtt, 50) * 1000:6.0f} / "
              f"{percentile(rtt, 95) * 1000:6.0f} / {percentile(rtt, 99) * 1000:6.0f} ms   ~{tokens_s:.0f} tokens/s streamed")
    print(f"WebSocket drops: {stats.dropped or 0}   error frames: {stats.error_frames or 0}   "
          f"side errors: {stats.side_errors or 0}   server errors in web logs: {errors}")
    print(f"votes stored: {len(stored)}   lost (acknowledged, not stored): {len(lost)}   duplicated: {duplicated}   "
          f"stored without acknowledgement (rater gone first): {len(set(stored) - set(acked))}")
    for pid, (start, end) in memory.items():
        print(f"web pid {pid}: RSS {start:.0f} MB at start, {end:.0f} MB at end")


def main() -> None:
    parser = argparse.ArgumentParser(description="Concurrent scripted raters against a local web stack.")
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (one step)")
    parser.add_argument("--steps", default="", help="rising raters, e.g. 1,2,4,8 (each --step-s long)")
    parser.add_argument("--step-s", type=float, default=0.0)
    parser.add_argument("--webs", type=int, default=1, help="daphne web processes; raters are split between them")
    parser.add_argument("--fake", action="store_true", help="contestants on bench/fake_openai.py (a FAKE engine)")
    parser.add_argument("--engine-url", default="", help="a running vLLM server's root URL")
    parser.add_argument("--start-engine", action="store_true", help="start a SmolLM2 vLLM CPU engine of its own")
    parser.add_argument("--engine-model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=8, help="max_tokens of both contestants")
    parser.add_argument("--think", type=float, default=2.0, help="a rater pauses 0..THINK s between battles")
    parser.add_argument("--timeout", type=float, default=150.0, help="a rater gives up on a frame after this long")
    parser.add_argument("--generation-timeout", type=float, default=120.0, help="the web's ARENA_GENERATION_TIMEOUT_S")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    args = parser.parse_args()
    if not (args.fake or args.engine_url or args.start_engine):
        parser.error("give --engine-url (a running vLLM), --start-engine or --fake")
    steps = [int(s) for s in args.steps.split(",")] if args.steps else [args.raters]
    args.step_s = args.step_s or args.duration

    env = {**os.environ, "DATABASE_URL": scratch_database(args.database_url), "DJANGO_SETTINGS_MODULE": "config.settings",
           "ARENA_GENERATION_TIMEOUT_S": str(args.generation_timeout), "ARENA_LOG_LEVEL": "WARNING"}
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    else:
        env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    engine, processes = None, []
    try:
        if args.start_engine:
            engine = start_engine("load-engine.log")
            args.engine_url = engine.spec.root_url
        processes, urls, web_logs = start_stack(args, env)
        webs = processes[-args.webs:]
        memory = {p.pid: [rss_mb(p.pid), 0.0] for p in webs}
        stats = asyncio.run(drive(urls, steps, args.step_s, args.think, args.timeout))
        for p in webs:
            memory[p.pid][1] = rss_mb(p.pid)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)
        if engine:
            engine.stop()
    from arena.models import Vote

    stored = [str(v) for v in Vote.objects.values_list("battle__public_id", flat=True)]
    report(args, stats, steps, stored, memory, server_errors(web_logs))


if __name__ == "__main__":
    main()
