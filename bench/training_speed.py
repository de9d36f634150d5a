"""Training speed on this machine, and the wall time from Launch to the first battle of the new model.

Part 1 runs the real recipe subprocess (``.venv-engine/bin/python -m training.recipes.run
JOB_DIR``) on the built-in datasets with the ``cpu-smoke`` presets -- SFT on
``oasst-en-messages``, DPO on ``hh-rlhf-helpful-base-test`` -- and prints seconds per
optimizer step and the runner's peak RSS. Baseline, run in the same process right after
each preset run: the same run with ``num_threads=2`` (every core of a 2-core machine)
instead of the preset's 1, so the ratio is what leaving a core to the vLLM engines costs
the training. A last run continues the SFT adapter with DPO (its reference is then a
frozen copy of that adapter, not the base with the adapter disabled), against the DPO
preset run on a new adapter as its baseline.

Part 2 (skip it with ``--skip-launch``) closes the loop on a scratch SQLite database:
a vLLM engine (started here, or reused with ``--vllm-url``; it must serve
``smollm2-135m-instruct`` with runtime LoRA loading), a real Celery worker on the training
queue (solo pool, filesystem broker in the scratch dir), daphne serving the ASGI app;
then ``training.services.job_launch`` with the SFT ``cpu-smoke`` preset and, once the job
succeeded, battles over ``/ws/arena/`` until one includes the new model (the base and the
new model are the only contestants, so the first does). It prints the phases: queued →
running, runner start and model load, training, adapter load into vLLM, first battle turn.

    .venv/bin/python bench/training_speed.py [--vllm-url URL] [--skip-launch] [--steps N] [--keep]

Every process it starts runs in its own session and is stopped on exit, Ctrl-C included.
Nothing here asserts on time: the machine is shared, so figures vary from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.builtin import get_builtin  # noqa: E402 - standard library only, no Django
from training.formats import parse_dataset, write_jsonl  # noqa: E402
from training.recipes import progress  # noqa: E402
from training.recipes.config import apply_overrides, preset  # noqa: E402

ARENA_ENGINE_PYTHON = os.environ.get("ARENA_ENGINE_PYTHON", str(REPO / ".venv-engine" / "bin" / "python"))
MODELS_DIR = Path(os.environ.get("ARENA_MODELS_DIR", str(REPO / "var" / "models")))
BASE_MODEL = MODELS_DIR / "smollm2-135m-instruct"
BUILTIN_DATA = Path(os.environ.get("ARENA_BUILTIN_DATA_DIR", str(REPO / "data")))
SFT_DATA, DPO_DATA = "oasst-en-messages", "hh-rlhf-helpful-base-test"
BATTLE_MAX_TOKENS = 32


class Processes:
    """Everything this script started; ``stop_all`` ends each one's whole process group."""

    def __init__(self) -> None:
        self.popens: list[tuple[str, subprocess.Popen]] = []
        self.engines: list[Any] = []

    def start(self, name: str, argv: list[str], log_path: Path, **kwargs: Any) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            # Its own session: Ctrl-C reaches only this script, which then stops the group
            # (a Celery worker's recipe subprocess included) in order.
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,
            )
        self.popens.append((name, process))
        return process

    def stop_all(self) -> None:
        for _name, process in reversed(self.popens):
            stop_group(process)
        self.popens.clear()
        for engine in reversed(self.engines):
            engine.stop()
        self.engines.clear()


def stop_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        # A solo Celery worker's warm shutdown waits for the running task: do not wait for a training.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------- part 1: the runner


def normalised(key: str, out_dir: Path) -> Path:
    builtin = get_builtin(key)
    result = parse_dataset(builtin.resolve(BUILTIN_DATA), builtin.format)
    if not result.ok:
        raise SystemExit(f"built-in dataset {key} has {result.error_count} bad rows")
    return write_jsonl(result.rows, out_dir / f"{key}.jsonl")


def run_recipe(
    procs: Processes,
    scratch: Path,
    name: str,
    method: str,
    dataset: Path,
    overrides: list[str],
    init_adapter: Path | None = None,
    reward_model: Path | None = None,
) -> dict[str, Any]:
    job_dir = scratch / "runs" / name
    config = apply_overrides(preset(method, "cpu-smoke"), overrides)
    progress.write_job(
        job_dir,
        method=method,
        base_model_path=BASE_MODEL,
        dataset_path=dataset,
        output_dir=job_dir / "adapter",
        config=config.to_dict(),
        max_lora_rank=16,
        device="cpu",
        init_adapter_path=init_adapter,
        reward_model_path=reward_model,
    )
    print(
        f"  {name}: {method}, {config.max_steps} steps x batch {config.per_device_train_batch_size}, "
        f"max_length {config.max_length}, {config.num_threads} thread(s) ...",
        end="",
        flush=True,
    )
    t0 = time.monotonic()
    process = procs.start(
        name,
        [ARENA_ENGINE_PYTHON, "-m", "training.recipes.run", str(job_dir)],
        job_dir / "run.log",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    rc = process.wait()
    wall = time.monotonic() - t0
    events = progress.read_events(job_dir / progress.PROGRESS_FILE)
    final = progress.final_event(events) or {}
    if rc != progress.EXIT_OK or final.get("event") != "done":
        tail = (job_dir / "run.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"\n{name} failed (exit {rc}): {final.get('message')}\n{tail}")
    by_name = {e["event"]: e for e in events}
    logs = [e for e in events if e["event"] == "log"]
    # Steady state: the gaps between logged steps, without the first (warm-up allocations).
    gaps = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(logs[1:], logs[2:], strict=False)]
    metrics = final["metrics"]
    figures = {
        "name": name,
        "steps": metrics["steps"],
        "s_per_step": metrics["s_per_step"],
        "steady_s_per_step": statistics.median(gaps) if gaps else metrics["s_per_step"],
        "peak_rss_mb": metrics["peak_rss_mb"],
        "load_s": by_name["start"]["ts"] - by_name["init"]["ts"],
        "wall_s": wall,
        "reference": by_name["start"].get("reference"),
        "adapter": Path(final["adapter_dir"]),
        "metrics": metrics,
        "num_train_rows": by_name["start"].get("num_train_rows"),
    }
    print(
        f" {figures['s_per_step']:.2f} s/step, peak RSS {figures['peak_rss_mb']:.0f} MB, {wall:.0f} s in all"
    )
    return figures


def bench_runner(procs: Processes, scratch: Path, steps: int | None, smoke: bool = False) -> None:
    data_dir = scratch / "data"
    sft_data, dpo_data = normalised(SFT_DATA, data_dir), normalised(DPO_DATA, data_dir)
    extra = [f"max_steps={steps}"] if steps else []
    print(f"Part 1: the recipe runner, cpu-smoke presets, base {BASE_MODEL.name}, {os.cpu_count()} CPUs")
    sft = run_recipe(procs, scratch, "sft-preset", "sft", sft_data, extra)
    dpo_cont = run_recipe(
        procs, scratch, "dpo-continue-sft", "dpo", dpo_data, extra, init_adapter=sft["adapter"]
    )
    if smoke:  # one run of each method: the baselines and ratios are for real measurements
        print(f"smoke: sft {sft['s_per_step']:.2f} s/step, dpo continuing it {dpo_cont['s_per_step']:.2f} s/step "
              "(baselines not run)")
        return
    sft_2 = run_recipe(procs, scratch, "sft-2threads", "sft", sft_data, [*extra, "num_threads=2"])
    dpo = run_recipe(procs, scratch, "dpo-preset", "dpo", dpo_data, extra)
    dpo_2 = run_recipe(procs, scratch, "dpo-2threads", "dpo", dpo_data, [*extra, "num_threads=2"])

    print()
    print(
        f"{'run':<18} {'s/step':>8} {'steady':>8} {'peak RSS MB':>12} {'load s':>7} {'wall s':>7}  DPO reference"
    )
    for r in (sft, sft_2, dpo, dpo_2, dpo_cont):
        print(
            f"{r['name']:<18} {r['s_per_step']:>8.2f} {r['steady_s_per_step']:>8.2f} {r['peak_rss_mb']:>12.0f} "
            f"{r['load_s']:>7.1f} {r['wall_s']:>7.1f}  {r['reference'] or '-'}"
        )
    print(
        "s/step = train_runtime / steps (TRL's figure); steady = median gap between logged steps after the first;"
    )
    print("load = runner start to the first step (imports, model, tokenizer, dataset preparation).")
    print("Baseline: the same run with num_threads=2 instead of the preset's 1 thread.")
    for label, a, b in (("SFT", sft, sft_2), ("DPO", dpo, dpo_2)):
        print(
            f"  {label}: preset / baseline s/step = {a['s_per_step'] / b['s_per_step']:.2f}x  "
            f"(steady {a['steady_s_per_step'] / b['steady_s_per_step']:.2f}x)"
        )
    print(
        f"  DPO continuing the SFT adapter / DPO on a new adapter, s/step = "
        f"{dpo_cont['s_per_step'] / dpo['s_per_step']:.2f}x, peak RSS "
        f"{dpo_cont['peak_rss_mb'] / dpo['peak_rss_mb']:.2f}x  (the reference pass runs through a frozen adapter copy)"
    )


# ---------------------------------------------------------------------- part 2: Launch → battle


def scratch_env(scratch: Path) -> dict[str, str]:
    """The environment of this process and of every Django process it starts (set before django.setup())."""
    broker = scratch / "celery-broker"
    for sub in ("queue", "processed"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
        "ARENA_DATA_DIR": str(scratch),
        "ARENA_MODELS_DIR": str(MODELS_DIR),
        "CELERY_BROKER_URL": "filesystem://",
        "ARENA_TRAINING_DEVICE": "cpu",
        "ARENA_STARTER_JOBS": "false",
    }
    os.environ.update(env)
    os.environ.pop("REDIS_URL", None)  # no Redis: in-memory channel layer, file cache
    return {**os.environ}


def wait_for_log(path: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{path.name}: the process exited with {process.returncode}:\n{_tail(path)}")
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise SystemExit(f"{path.name}: no {text!r} after {timeout:.0f} s:\n{_tail(path)}")


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


async def battle_turn(ws_url: str, prompt: str) -> dict[str, Any]:
    """One battle, one turn, a tie vote; the times and the two revealed names."""
    import websockets

    async with websockets.connect(ws_url, max_size=2**22) as ws:
        t0 = time.monotonic()
        await ws.send(json.dumps({"type": "new_battle"}))
        battle = json.loads(await ws.recv())
        if battle["type"] != "battle":
            raise SystemExit(f"new_battle refused: {battle}")
        t_battle = time.monotonic()
        await ws.send(json.dumps({"type": "prompt", "battle_id": battle["battle_id"], "text": prompt}))
        ttft, states = None, []
        while len(states) < 2:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 300))
            if frame["type"] == "delta" and ttft is None:
                ttft = time.monotonic() - t_battle
            elif frame["type"] == "side_done":
                states.append(frame["state"])
            elif frame["type"] == "error":
                raise SystemExit(f"battle error: {frame}")
        t_done, end = time.monotonic(), time.time()
        await ws.send(json.dumps({"type": "vote", "battle_id": battle["battle_id"], "winner": "tie"}))
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] != "revealed":
            if frame["type"] == "error":
                raise SystemExit(f"vote error: {frame}")
        return {
            "new_battle_s": t_battle - t0,
            "ttft_s": ttft,
            "turn_s": t_done - t_battle,
            "end": end,
            "states": states,
            "names": {frame["model_a"]["name"], frame["model_b"]["name"]},
        }


def bench_launch(procs: Processes, scratch: Path, vllm_url: str) -> None:
    env = scratch_env(scratch)
    import django

    django.setup()
    # kombu warns "No hostname was supplied" for every filesystem:// connection
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    from django.conf import settings
    from django.core.management import call_command

    from serving.engines import EngineProcess  # Django is set up in main(), after this module loads
    from serving.local_models import LOCAL_MODELS  # Django is set up in main(), after this module loads
    from serving.models import Endpoint, ServedModel  # Django is set up in main(), after this module loads
    from training import services  # Django is set up in main(), after this module loads
    from training.models import Job  # Django is set up in main(), after this module loads

    print(f"\nPart 2: Launch → first battle of the new model (scratch {scratch})")
    spec = LOCAL_MODELS["smollm2"].engine_spec()
    if not vllm_url:
        spec.port = free_port()
        spec.log_path = scratch / "logs" / "engine.log"
        engine = EngineProcess(spec)
        procs.engines.append(engine)
        print(f"  starting vLLM on {spec.root_url} (log {spec.log_path}) ...", flush=True)
        t0 = time.monotonic()
        engine.start()
        engine.wait_ready(settings.ARENA_ENGINE_START_TIMEOUT_S)
        print(f"  vLLM ready after {time.monotonic() - t0:.0f} s (not counted below)")
        vllm_url = spec.root_url
    vllm_url = vllm_url.rstrip("/")

    call_command("migrate", verbosity=0)
    endpoint = Endpoint.objects.create(
        name="bench-local", base_url=f"{vllm_url}/v1", healthy=True, model_dir=spec.model_dir
    )
    # Greedy and short: the turn measures serving the new adapter, not long generations.
    base = ServedModel.objects.create(
        public_name="smollm2-135m-instruct",
        endpoint=endpoint,
        engine_model_id="smollm2-135m-instruct",
        organization="Hugging Face",
        license="Apache-2.0",
        generation={"temperature": 0.0, "max_tokens": BATTLE_MAX_TOKENS},
    )
    dataset = services.dataset_from_builtin(SFT_DATA)

    port = free_port()
    web_log = scratch / "logs" / "daphne.log"
    web = procs.start(
        "daphne",
        [sys.executable, "-m", "config.web", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        web_log,
        env=env,
    )
    worker_log = scratch / "logs" / "celery.log"
    worker = procs.start(
        "celery",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            "solo",
            "-Q",
            "training",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "-n",
            "bench@%h",
            "--loglevel",
            "INFO",
        ],
        worker_log,
        env=env,
    )
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
            break
        except httpx.HTTPError:
            if web.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daphne did not start:\n{_tail(web_log)}") from None
            time.sleep(0.3)
    wait_for_log(worker_log, " ready.", worker, 120)
    print("  web server and training worker ready; launching the SFT cpu-smoke job", flush=True)

    t_launch = time.time()
    job = services.job_launch(
        base_model=base, method=Job.Method.SFT, dataset=dataset, preset_name="cpu-smoke"
    )
    while True:
        job.refresh_from_db()
        if job.status == Job.Status.SUCCEEDED:
            break
        if job.is_finished():
            raise SystemExit(f"job {job.pk} ended {job.status}: {job.error}\n{job.log_tail}")
        if worker.poll() is not None:
            raise SystemExit(f"the Celery worker exited:\n{_tail(worker_log)}")
        time.sleep(0.2)
    t_seen = time.time()
    contestant = job.checkpoint.served_model
    events = {e["event"]: e for e in progress.read_events(job.directory() / progress.PROGRESS_FILE)}

    battles = []
    for _ in range(5):  # the base and the new model are the only contestants: the first battle has both
        battles.append(
            asyncio.run(battle_turn(f"ws://127.0.0.1:{port}/ws/arena/", "Say hello in one sentence."))
        )
        if contestant.public_name in battles[-1]["names"]:
            break
    else:
        raise SystemExit(f"no battle included {contestant.public_name} in {len(battles)} tries")
    last = battles[-1]

    started, done_ts = job.started_at.timestamp(), events["done"]["ts"]
    phases = [
        ("queued → running (broker, worker claims the job)", started - t_launch),
        ("runner start + model load (imports, model, dataset)", events["start"]["ts"] - started),
        (f"training ({job.total_steps} steps)", done_ts - events["start"]["ts"]),
        ("adapter saved → loaded by vLLM, contestant created", contestant.created_at.timestamp() - done_ts),
        ("job marked succeeded → seen here", t_seen - contestant.created_at.timestamp()),
        (f"battles until one has the new model ({len(battles)})", last["end"] - t_seen),
    ]
    print(
        f"  job {job.pk}: {contestant.public_name}, {job.total_steps} steps, "
        f"{job.checkpoint.final_metrics.get('s_per_step')} s/step in the worker"
    )
    for label, seconds in phases:
        print(f"  {label:<55} {seconds:>7.1f} s")
    print(
        f"  {'total: Launch → first battle turn with the new model done':<55} {last['end'] - t_launch:>7.1f} s"
    )
    print(
        f"  that battle: new_battle {last['new_battle_s'] * 1000:.0f} ms, first token {last['ttft_s'] * 1000:.0f} ms, "
        f"both answers ({BATTLE_MAX_TOKENS} tokens max, greedy) {last['turn_s']:.2f} s, sides {last['states']}, "
        f"then a tie vote to reveal {sorted(last['names'])}"
    )
    print(
        "  the 'adapter' phase includes up to 1 s of job_execute's progress polling before it sees the runner exit."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-url", default="", help="reuse a running vLLM serving smollm2-135m-instruct")
    parser.add_argument("--skip-launch", action="store_true", help="only part 1 (the runner)")
    parser.add_argument("--skip-runner", action="store_true", help="only part 2 (Launch → battle)")
    parser.add_argument("--steps", type=int, default=0, help="override the presets' max_steps in part 1")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--smoke", action="store_true", help="part 1 only, one step per method (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.skip_launch, args.steps = True, 1
    if not Path(ARENA_ENGINE_PYTHON).exists() or not (BASE_MODEL / "config.json").exists():
        raise SystemExit(f"needs {ARENA_ENGINE_PYTHON} and {BASE_MODEL}: run `make models`")

    def work(procs: Processes, scratch: Path) -> None:
        if not args.skip_runner:
            bench_runner(procs, scratch, args.steps or None, smoke=args.smoke)
        if not args.skip_launch:
            bench_launch(procs, scratch, args.vllm_url)

    run_in_scratch("arena-training-bench-", work, keep=args.keep)


def run_in_scratch(prefix: str, work: Callable[[Processes, Path], None], *, keep: bool) -> None:
    """Run ``work(procs, scratch)`` in a new scratch directory; on the way out (SIGTERM and Ctrl-C
    included) stop every process it started, and remove the scratch unless ``keep`` or it failed
    (then its path is printed: logs and job directories). Exits 130 when interrupted."""

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    procs = Processes()
    ok = False
    try:
        work(procs, scratch)
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what was started", file=sys.stderr)
    finally:
        procs.stop_all()
        if ok and not keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"scratch directory (logs, job dirs): {scratch}", file=sys.stderr)
    if not ok:
        sys.exit(130)


if __name__ == "__main__":
    main()
