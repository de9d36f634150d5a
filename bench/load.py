"""Load that looks like raters: simulated people over the Battle API, every protection on.

The script builds its own stack on loopback and stops it: a scratch database (a SQLite file, or
``<name>_load`` re-created on the PostgreSQL server of ``--database-url``), ``--webs`` web processes
(``python -m config.web``, daphne) in production mode (``DJANGO_DEBUG=false``, collected static
files, ``ARENA_TRUSTED_PROXIES=1``) sharing it and ``--redis-url``'s channel layer, and two
contestants on ``bench/fake_openai.py`` (a FAKE provider at the HTTP boundary with a provider's
pace: ``--ttft-ms`` to the first word, ``--token-ms`` per word) or on a real engine
(``--engine-url``, ``--start-engine``). No Celery worker runs: refits queue up unserved, which
the web side does not wait for. Every protection keeps its configured value: limits, minimum
vote time, prompt repeat cap, outlier test (run on the stored votes at the end).

Each simulated rater (``bench/load_raters.py``) is a client of its own (its own address through
the trusted proxy hop, its own session cookie, its own socket), types for a while, reads for
longer than ``ARENA_MIN_VOTE_SECONDS`` before voting, asks the arena's real prompts and starts
battles at a human pace inside the limits. Modes:

* closed loop (``--raters N --duration S``): N raters, each at its own pace;
* open loop (``--rates 2,4,8 --step-s S``): battles arrive at each rate for S seconds whatever the
  server does; each goes to an idle rater whose pace allows it, or a new one joins;
* ``--capacity``: the open loop for one web process, then for two (the client spreads its raters
  over both ports; they share PostgreSQL and the Redis channel layer); before the steps,
  ``--reference-battles`` battles are played one at a time (the idle reference); a step passes
  when vote round-trip p99 < 250 ms and the median time to first token is < 10% over the idle
  reference's (what load adds; the paced stream's fixed start over the provider's own first word,
  streamed to directly in the same run, is printed beside it); a configuration stops at its first
  failing step (judged once its battles have ended, so one more step has run) and its capacity is
  the step before.

CPU: the load generator (and the fake provider) run pinned to the last CPU this process may use
(``os.sched_setaffinity``), each web process to one of the others; PostgreSQL and Redis are not
ours to pin. The output says which, with the load average before and after and the generator's
own CPU use. It exits 1 when an honest rater was refused or a vote was lost, duplicated or left
out, or a socket dropped; it keeps the web logs then (or with ``--keep``) and removes them otherwise.

    .venv/bin/python bench/load.py --smoke                                 # CI, about a minute (SQLite)
    .venv/bin/python bench/load.py --capacity \\
        --database-url postgres://postgres@127.0.0.1:5432/arena --redis-url redis://127.0.0.1:6379/15  # <= 10 min
    .venv/bin/python bench/load.py --raters 40 --duration 120 --database-url ... --redis-url ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from django.conf import settings  # noqa: E402  (lazy: read once main() has set the environment)
from django.core.management import call_command  # noqa: E402

from bench.battle_latency import free_port, start_engine  # noqa: E402
from bench.load_raters import (  # noqa: E402
    Pace,
    Pool,
    Prompts,
    Rater,
    Stats,
    Target,
    closed_loop,
    idle_reference,
    open_loop,
    probe_provider,
)
from bench.load_report import (  # noqa: E402
    capacity_line,
    print_header,
    print_reference,
    print_steps,
    print_totals,
    step_verdict,
)
from tests.faults import start_daphne  # noqa: E402

CAPACITY_RATES = "0.5,1,2,3,4,6,8,12,16"


def scratch_database(url: str, scratch_dir: Path) -> str:
    """A fresh database for this run: a SQLite file in the scratch folder, or ``<name>_load`` re-created."""
    if not url or url.startswith("sqlite"):
        return f"sqlite:///{scratch_dir / 'load.sqlite3'}"
    import psycopg

    base, _, name = url.rpartition("/")
    scratch = f"{name.split('?')[0]}_load"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{scratch}"')
    return f"{base}/{scratch}"


def cpu_plan(pin: bool) -> tuple[set[int], list[set[int]]]:
    """(the load generator's CPU, the web processes' CPUs): the last allowed CPU, and each other one."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return set(), []
    return {cpus[-1]}, [{c} for c in cpus[:-1]]


@contextmanager
def pinned(cpus: set[int]):
    """Processes started inside inherit ``cpus`` (the affinity of the forking thread)."""
    if not cpus:
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def web_times(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds the processes have used, all their threads: ``/proc/PID/stat``; seconds their
    living threads have waited, runnable, for a CPU: ``/proc/PID/task/*/schedstat``)."""
    ticks, waited = 0, 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                waited += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):  # a thread that just ended
                pass
    return ticks / os.sysconf("SC_CLK_TCK"), waited / 1e9


def web_env(args, scratch: Path) -> dict:
    """The web processes' environment: production mode with throwaway secrets, the trusted hop, and
    every protection at its configured value (nothing here turns one off)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "false",
           "DJANGO_SECRET_KEY": secrets.token_hex(32), "ARENA_IP_SALT": secrets.token_hex(32),
           "ARENA_ADMIN_PASSWORD": secrets.token_hex(16), "ARENA_DATA_DIR": str(scratch / "data"),
           "DJANGO_STATIC_ROOT": str(scratch / "static"), "ARENA_TRUSTED_PROXIES": "1",
           "DATABASE_URL": scratch_database(args.database_url, scratch),
           "ARENA_GENERATION_TIMEOUT_S": str(args.generation_timeout), "ARENA_LOG_LEVEL": "WARNING"}
    env.pop("ARENA_TEST_VLLM_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


def prepare_database(args) -> None:
    """Migrate, collect static files, and register the two contestants."""
    from serving.models import Endpoint, ServedModel  # models load only after django.setup() in main()

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    for side in "ab":
        endpoint = Endpoint.objects.create(name=f"load-{side}", base_url=f"{args.engine_url}/v1", healthy=True)
        ServedModel.objects.create(public_name=f"load-{side}", endpoint=endpoint, engine_model_id=args.engine_model,
                                   generation={"temperature": 0.7, "max_tokens": args.tokens})


def start_webs(count: int, env: dict, cpus: list[set[int]], logs: Path) -> list[tuple[subprocess.Popen, int, Path]]:
    webs = []
    for index in range(count):
        port, log = free_port(), logs / f"load-web-{index}.log"
        with pinned(cpus[index % len(cpus)] if cpus else set()):
            webs.append((start_daphne(REPO, port, env, log), port, log))
    return webs


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def pace_from_settings(args) -> Pace:
    least_read = settings.ARENA_MIN_VOTE_SECONDS + 1.0
    return Pace(typing=(args.typing[0], args.typing[1]), reading=(least_read, least_read + args.reading_extra),
                think=(args.think[0], args.think[1]), min_gap=args.min_gap,
                battles_per_minute=settings.ARENA_LIMIT_BATTLES_PER_MINUTE,
                votes_per_hour=settings.ARENA_LIMIT_VOTES_PER_HOUR, votes_per_day=settings.ARENA_LIMIT_VOTES_PER_DAY)


async def drive(args, ports: list[int], pids: list[int], pace: Pace, prompts: Prompts, first_index: int,
                rates: list[float]) -> tuple[Stats, list[bool], int]:
    """One run against ``ports``: closed loop (no ``rates``) or open loop; returns the stats, each open-loop
    step's verdict and how many raters were made."""
    stats = Stats()
    targets = [Target("127.0.0.1", p) for p in ports]

    def make(index: int) -> Rater:
        return Rater(first_index + index, targets[index % len(targets)], pace, prompts, stats, args.timeout)

    probe = asyncio.create_task(probe_provider(f"{args.engine_url}/v1", args.engine_model, args.tokens, stats,
                                                 prompts.prompts))
    verdicts: list[bool] = []
    try:
        if not rates:
            raters = [make(i) for i in range(args.raters)]
            await closed_loop(raters, args.duration)
            return stats, verdicts, len(raters)

        progress: list[bool] = []

        marks = [web_times(pids)]

        def on_step(step: int) -> bool:
            marks.append(web_times(pids))
            stats.web_cpu[step] = marks[-1][0] - marks[-2][0]
            stats.web_wait[step] = marks[-1][1] - marks[-2][1]
            # Progress: a step is judged one step later, once the battles it started (up to ~25 s) have
            # ended, unless the server is saturated; the final table waits for every battle.
            if step:
                progress.append(step_verdict(stats, step - 1)[0])
                print_steps(args, stats, rates, [step - 1], heading=step == 1, note="progress")
            return not (args.capacity and progress and not progress[-1])  # stop short of a deep overload

        pool = Pool(make)
        reference = await idle_reference(pool, stats, args.reference_battles)
        print_reference(stats)
        ran = range(await open_loop(pool, stats, rates, args.step_s, on_step))
        await asyncio.gather(*reference)
        verdicts = [step_verdict(stats, step)[0] for step in ran]
        print("final (every battle ended):")
        print_steps(args, stats, rates, ran, heading=True)
        return stats, verdicts, len(pool.everyone)
    finally:
        probe.cancel()
        await asyncio.gather(probe, return_exceptions=True)


def run_config(args, env: dict, webs: int, prompts: Prompts, first_index: int, cpus, logs: Path) -> tuple:
    """Start ``webs`` web processes, drive them, stop them; print the figures. Returns (stats, each step's
    verdict, raters made, whether every honest-rater check held)."""
    from arena.models import Vote  # models load only after django.setup() in main()

    processes = start_webs(webs, env, cpus, logs)
    pids = [p.pid for p, _, _ in processes]
    memory = {pid: [rss_mb(pid), float("nan")] for pid in pids}
    pace = pace_from_settings(args)

    rates = args.rates
    votes_before = Vote.objects.count()
    print_header(args, webs, rates, pace, cpus, votes_before)
    cpu_before, wall_before, web_before = time.process_time(), time.monotonic(), web_times(pids)
    try:
        stats, verdicts, made = asyncio.run(drive(args, [port for _, port, _ in processes], pids, pace, prompts,
                                                  first_index, rates))
        for pid in pids:
            memory[pid][1] = rss_mb(pid)
        web_after = web_times(pids)
        stats.web_cpu_total, stats.web_wait_total = web_after[0] - web_before[0], web_after[1] - web_before[1]
    finally:
        stop([p for p, _, _ in processes])
    wall = time.monotonic() - wall_before
    generator_cpu = (time.process_time() - cpu_before) / wall
    if not rates:
        stats.web_cpu[0], stats.web_wait[0] = stats.web_cpu_total, stats.web_wait_total
        print_steps(args, stats, [], [0], heading=True)
    healthy = print_totals(args, stats, memory, [log for _, _, log in processes], generator_cpu, wall)
    return stats, verdicts, made, healthy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Simulated raters against a local web stack, protections on.")
    parser.add_argument("--raters", type=int, default=50, help="closed loop: raters, each at its own pace")
    parser.add_argument("--duration", type=float, default=60.0, help="closed loop: seconds")
    parser.add_argument("--rates", default="", help="open loop: battles per second of each step, e.g. 2,4,8")
    parser.add_argument("--step-s", type=float, default=30.0, help="open loop: seconds per step")
    parser.add_argument("--capacity", action="store_true",
                        help=f"open loop over --rates (default {CAPACITY_RATES}) for one web process, then two")
    parser.add_argument("--reference-battles", type=int, default=8,
                        help="open loop: battles played one at a time first, the idle TTFT reference")
    parser.add_argument("--smoke", action="store_true", help="a few raters for a few seconds (CI)")
    parser.add_argument("--webs", type=int, default=1, help="web processes; raters are spread over their ports")
    parser.add_argument("--fake", action="store_true", help="the FAKE provider (the default; kept for old commands)")
    parser.add_argument("--engine-url", default="", help="a running vLLM server's root URL (default: the FAKE)")
    parser.add_argument("--start-engine", action="store_true", help="start a SmolLM2 vLLM CPU engine of its own")
    parser.add_argument("--engine-model", default="", help="the engine's model id")
    parser.add_argument("--tokens", type=int, default=100, help="max_tokens of both contestants")
    parser.add_argument("--ttft-ms", type=float, default=300.0, help="the FAKE provider's time to first word")
    parser.add_argument("--token-ms", type=float, default=20.0, help="the FAKE provider's time per next word")
    parser.add_argument("--typing", type=float, nargs=2, default=(2.0, 8.0), help="seconds to type a prompt")
    parser.add_argument("--reading-extra", type=float, default=10.0,
                        help="a rater reads ARENA_MIN_VOTE_SECONDS + 1 to + 1 + this many seconds")
    parser.add_argument("--think", type=float, nargs=2, default=(5.0, 20.0), help="closed loop: pause after a vote")
    parser.add_argument("--min-gap", type=float, default=15.0, help="least seconds between one rater's battles")
    parser.add_argument("--timeout", type=float, default=150.0, help="a rater gives up on a frame after this long")
    parser.add_argument("--generation-timeout", type=float, default=120.0, help="the web's ARENA_GENERATION_TIMEOUT_S")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the generator and the web processes")
    parser.add_argument("--keep", action="store_true", help="keep the web logs (and SQLite file) of a good run")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""),
                        help="a PostgreSQL server and name: the run re-creates <name>_load there; default DATABASE_URL, else SQLite")
    parser.add_argument("--redis-url", default="",
                        help="a Redis database of the run's own (the refits its votes queue are never served); "
                             "default: none (in-memory channel layer, a broker folder in the scratch directory)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.raters, args.duration, args.typing, args.reading_extra, args.think = 4, 12.0, (0.5, 1.5), 1.0, (0.5, 1.5)
        args.min_gap, args.tokens = 2.0, 20
    if args.capacity and not args.rates:
        args.rates = CAPACITY_RATES
    args.rates = [float(r) for r in args.rates.split(",")] if args.rates else []
    if any(r <= 0 for r in args.rates):
        parser.error("--rates are battles per second, each above 0")
    if args.fake and (args.engine_url or args.start_engine):
        parser.error("--fake contradicts --engine-url / --start-engine")
    args.fake = not (args.engine_url or args.start_engine)
    args.engine_model = args.engine_model or ("fake-model" if args.fake else "smollm2-135m-instruct")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    scratch, keep = Path(tempfile.mkdtemp(prefix="arena-load-")), True
    generator_cpu, web_cpus = cpu_plan(not args.no_pin)
    if generator_cpu:
        os.sched_setaffinity(0, generator_cpu)  # before any thread exists: every later thread inherits it
    args.generator_cpu = generator_cpu
    env = web_env(args, scratch)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from arena import selectors  # needs the app registry: only after django.setup()

    helpers = []
    engine = None
    try:
        if args.start_engine:
            with pinned(set().union(*web_cpus) if web_cpus else set()):
                engine = start_engine("load-engine.log")
            args.engine_url = engine.spec.root_url
        elif args.fake:
            port = free_port()
            helpers.append(subprocess.Popen([sys.executable, str(REPO / "bench" / "fake_openai.py"), "--port", str(port),
                                             "--tokens", str(args.tokens), "--ttft-ms", str(args.ttft_ms),
                                             "--token-ms", str(args.token_ms)], cwd=REPO))
            args.engine_url = f"http://127.0.0.1:{port}"
        args.engine_url = args.engine_url.rstrip("/")
        began = time.monotonic()
        prepare_database(args)
        print(f"database migrated and static files collected in {time.monotonic() - began:.0f} s", flush=True)
        logs = scratch / "logs"
        logs.mkdir()
        healthy, lines, made = True, [], 0
        prompts = Prompts([p for source in selectors.PROMPT_SOURCES for p in selectors.arena_prompts(source)],
                          repeat_cap=settings.ARENA_PROMPT_REPEAT_CAP)  # one round-robin for the whole run
        for webs in ([1, 2] if args.capacity else [args.webs]):
            stats, verdicts, count, ok = run_config(args, env, webs, prompts, made, web_cpus, logs)
            made += count
            healthy &= ok
            if args.rates:
                lines.append(capacity_line(stats, args, webs, verdicts))
        for line in lines:
            print(line)
        keep = args.keep or not healthy
        print(f"web logs and scratch files: {scratch if keep else 'removed (--keep keeps them)'}")
        return 0 if healthy else 1
    finally:
        stop(helpers)
        if engine:
            engine.stop()
        # The collected static files always go (5 MB); logs and the SQLite file stay after a failure or --keep.
        shutil.rmtree(scratch / "static" if keep else scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
