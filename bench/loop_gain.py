"""The loop, proven? Votes from simulated raters train a model that another judge prefers (issue 23).

One run of the whole loop on the CPU, every part the real one:

1. Two reward models through the Reward method (``services.job_launch`` and ``execution.job_execute``:
   the real runner, the ``cpu-smoke`` preset), on disjoint halves of HH-RLHF helpful's test split
   (``data/hh_rlhf/helpful-base_test.jsonl.gz``, held out of HH-RLHF's own training data): the
   **rater**, which plays the raters, and the **judge**, which gates. Each one's accuracy on its
   held-out pairs is printed with its interval (chance is 0.5).
2. A scratch arena (SQLite, ``bench.arena_web``), daphne serving it (``ARENA_STREAM=whole``), a vLLM
   CPU engine for SmolLM2-135M-Instruct (started here, or ``--vllm-url``) and two contestants on it:
   the base model and a twin (the same weights under another name), so every battle is the base
   against itself, each side sampled at the local model's settings (temperature 0.7, top_p 0.9).
3. Votes through the WebSocket Battle API: ``--raters`` sockets at once, each playing one battle a
   round (``new_battle``, a prompt, both answers); the rater reward model scores the round's answer
   pairs in one call (``training.scorers.scorer_score_pairs``) and each socket votes for the side it
   scores higher ("tie" within ``--tie-margin``), no sooner than ``ARENA_MIN_VOTE_SECONDS`` after the
   answers, until ``--votes`` votes. Prompts: the arena's OASST and MT-Bench prompts and the
   arena-hard ones the gate does not hold out, up to 400 characters, each asked once.
4. A DPO job (``--method kto``: KTO) from the votes: ``services.dataset_from_arena_votes`` (decisive
   votes as pairs; every vote unpaired for KTO), the ``cpu-smoke`` preset with ``--steps``; the
   adapter is hot-loaded and entered as a contestant (``job_register_checkpoint``).
5. The gate (``training.gate.gate_run``) of the new model against its parent, the base, on
   ``--gate-prompts`` held-out arena-hard prompts, judged by the judge: not the model that voted.
6. The baseline, same judge and prompts: the gate of the twin against the base, i.e. what this judge
   says of two identical models (0.5 expected); ``--no-control`` skips it.

``--smoke`` runs every stage at a tiny size with one reward model in both roles (to save a training
job): it checks that the loop runs, and its figures mean nothing.

Prints the votes, each gate's win rate with its 95% bootstrap interval (over prompts), and the wall
and CPU seconds of each stage (this process, its children, the web process and the engine's process
tree; an engine given by ``--vllm-url`` is not counted).

    .venv/bin/python bench/loop_gain.py --smoke [--vllm-url URL]    # about two minutes: it runs
    .venv/bin/python bench/loop_gain.py [--votes 240] [--steps 60] [--gate-prompts 150]

Nothing here asserts: a small model on a shared CPU gives what it gives, and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.arena_web import REPO, Turn, scratch_arena, start_engine, start_web  # noqa: E402

HH_HELPFUL = REPO / "data" / "hh_rlhf" / "helpful-base_test.jsonl.gz"
MAX_PROMPT_CHARS = 400  # short rater prompts: a 135M model's answers to them fit the reward models' 256 tokens


# ---------------------------------------------------------------------- CPU accounting


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by the living processes ``roots`` and their descendants."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    wanted = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    ticks = sum(stats[pid][1] for pid in wanted if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """This process and its finished children (the recipe and scoring subprocesses)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Stages:
    """Wall and CPU seconds of each stage; ``pids``: living helpers (web, engine) whose trees count."""

    pids: list[int] = field(default_factory=list)
    rows: list[tuple[str, float, float]] = field(default_factory=list)
    _mark: tuple[float, float] = (0.0, 0.0)

    def now(self) -> tuple[float, float]:
        return time.monotonic(), own_cpu_s() + tree_cpu_s(self.pids)

    def start(self) -> None:
        self._mark = self.now()

    def done(self, name: str) -> None:
        wall, cpu = self.now()
        self.rows.append((name, wall - self._mark[0], cpu - self._mark[1]))
        print(f"  [{name}: {wall - self._mark[0]:.0f} s wall, {cpu - self._mark[1]:.0f} s CPU]", flush=True)
        self._mark = (wall, cpu)


# ---------------------------------------------------------------------- the arena and the reward models


def register_contestants(url: str, tokens: int):
    """The base SmolLM2 (with its weights directory, so it can be fine-tuned) and its twin."""
    from serving.local_models import LOCAL_MODELS  # after django.setup() in scratch_arena()
    from serving.models import Endpoint, ServedModel  # after django.setup() in scratch_arena()

    spec = LOCAL_MODELS["smollm2"]
    generation = {**spec.generation, "max_tokens": tokens}
    models = []
    for name in ("smollm2-base", "smollm2-twin"):  # one endpoint each: an endpoint serves a model id once
        endpoint = Endpoint.objects.create(name=f"loop-{name}", base_url=f"{url.rstrip('/')}/v1", healthy=True,
                                           kind=Endpoint.Kind.VLLM, model_dir=spec.engine_spec().model_dir)
        models.append(ServedModel.objects.create(
            public_name=name, endpoint=endpoint, engine_model_id=spec.served_name, kind=ServedModel.Kind.BASE,
            organization=spec.organization, license=spec.license, generation=generation))
    return models


def run_job(**launch):
    """Launch a job as the admin does and run it here, as the training worker would; its checkpoint."""
    from training import execution, services  # after django.setup() in scratch_arena()

    job = services.job_launch(preset_name="cpu-smoke", **launch)
    job = execution.job_execute(job.pk)
    if job.status != job.Status.SUCCEEDED:
        raise SystemExit(f"job {job.pk} ({job.method}) {job.status}: {job.error[-2000:]}")
    return job.checkpoint


def reward_models(base, args):
    """(rater, judge): reward models on the two disjoint halves of the HH-RLHF helpful test pairs."""
    from training import formats, services  # after django.setup() in scratch_arena()
    from training.scorers import accuracy_text  # after django.setup() in scratch_arena()

    rows = formats.parse_dataset(HH_HELPFUL, "hh-rlhf").rows
    out = []
    # --smoke checks that the stages run: one reward model plays both roles there, to save a training job
    for role, half in (("rater", rows[0::2]), ("judge", rows[1::2]))[: 1 if args.smoke else 2]:
        data = "".join(json.dumps(r) + "\n" for r in half).encode()
        dataset = services.dataset_import(name=f"hh-helpful-{role}", data=data, fmt="preference",
                                          license="MIT", description=f"HH-RLHF helpful test pairs, {role} half")
        overrides = [f"max_steps={args.rm_steps}", f"max_train_rows={args.rm_rows}", "heldout_fraction=0.2",
                     f"seed={len(out) + 1}", f"num_threads={args.threads}"]
        scorer = run_job(base_model=base, method="reward", dataset=dataset, overrides=overrides)
        metrics = scorer.final_metrics
        print(f"  {role}: {accuracy_text(metrics['heldout_accuracy'], metrics['heldout_rows'])}", flush=True)
        out.append(scorer)
    return out[0], out[-1]


def rater_prompts(count: int) -> list[str]:
    from django.conf import settings

    from arena.selectors import arena_prompts  # after django.setup() in scratch_arena()

    hard = arena_prompts("arena-hard")[: -settings.ARENA_GATE_HELDOUT_PROMPTS]  # never the gate's prompts
    prompts = [p for p in arena_prompts("oasst") + arena_prompts("mt-bench") + hard if len(p) <= MAX_PROMPT_CHARS]
    if len(prompts) < count:
        raise SystemExit(f"only {len(prompts)} rater prompts of at most {MAX_PROMPT_CHARS} characters; ask fewer votes")
    return prompts[:count]


# ---------------------------------------------------------------------- the raters


@dataclass
class RaterSocket:
    """One rater: its own socket (a rater id of its own, as a script without a session cookie gets)."""

    ws: object
    turn: Turn | None = None
    done_at: float = 0.0


async def play(rater: RaterSocket, prompt: str, timeout_s: float) -> None:
    """A new battle and its first turn, recorded until ``turn_done``."""
    ws = rater.ws
    await ws.send(json.dumps({"type": "new_battle"}))
    battle = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    if battle["type"] != "battle":
        raise RuntimeError(f"no battle: {battle}")
    rater.turn = Turn(battle["battle_id"])
    await ws.send(json.dumps({"type": "prompt", "battle_id": rater.turn.battle_id, "text": prompt}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        rater.turn.frames.append((0.0, frame))
        if frame["type"] == "error":
            raise RuntimeError(f"battle error: {frame}")
        if frame["type"] == "turn_done":
            rater.done_at = time.monotonic()
            return


async def vote(rater: RaterSocket, winner: str, min_vote_s: float, timeout_s: float) -> str:
    """Vote once the answers have been read for ``min_vote_s``; the winner as the server revealed it."""
    await asyncio.sleep(max(0.0, rater.done_at + min_vote_s - time.monotonic()))
    await rater.ws.send(json.dumps({"type": "vote", "battle_id": rater.turn.battle_id, "winner": winner}))
    frame = json.loads(await asyncio.wait_for(rater.ws.recv(), timeout_s))
    if frame["type"] != "revealed":
        raise RuntimeError(f"vote refused: {frame}")
    return frame["winner"]


def verdict(a: float, b: float, margin: float) -> str:
    return "tie" if abs(a - b) <= margin else "model_a" if a > b else "model_b"


async def raters_vote(ws_url: str, rater_model, prompts: list[str], args) -> dict[str, int]:
    """Rounds of ``args.raters`` battles until every prompt was asked; the rater model votes each."""
    import websockets
    from django.conf import settings

    from training.scorers import scorer_score_pairs  # after django.setup() in scratch_arena()

    tally = {"model_a": 0, "model_b": 0, "tie": 0}
    sockets = [RaterSocket(await websockets.connect(ws_url, max_size=2**22, ping_interval=None))
               for _ in range(args.raters)]
    try:
        for first in range(0, len(prompts), args.raters):
            asked = prompts[first:first + args.raters]
            playing = sockets[:len(asked)]
            await asyncio.gather(*(play(r, p, args.timeout) for r, p in zip(playing, asked, strict=True)))
            items = [{"prompt": p, "a": r.turn.text("a"), "b": r.turn.text("b")} for r, p in zip(playing, asked,
                                                                                                   strict=True)]
            scores = await asyncio.to_thread(scorer_score_pairs, rater_model, items)
            winners = [verdict(a, b, args.tie_margin) for a, b in scores]
            for winner in await asyncio.gather(*(vote(r, w, settings.ARENA_MIN_VOTE_SECONDS, args.timeout)
                                                 for r, w in zip(playing, winners, strict=True))):
                tally[winner] += 1
            print(f"  {first + len(asked)} votes: {tally}", flush=True)
    finally:
        await asyncio.gather(*(r.ws.close() for r in sockets), return_exceptions=True)
    return tally


# ---------------------------------------------------------------------- training and the gate


def train_on_votes(base, args):
    """A DPO (or KTO) job on the arena's votes, as an admin would launch it; its checkpoint."""
    from training import services  # after django.setup() in scratch_arena()

    dataset = services.dataset_from_arena_votes(name=f"arena-votes-{args.method}", unpaired=args.method == "kto")
    print(f"  dataset {dataset.name}: {dataset.row_count} rows ({dataset.source_ref})", flush=True)
    overrides = [f"max_steps={args.steps}", f"per_device_train_batch_size={args.batch}", "max_train_rows=0",
                 f"learning_rate={args.lr}", f"beta={args.beta}", f"num_threads={args.threads}"]
    return run_job(base_model=base, method=args.method, dataset=dataset, overrides=overrides), dataset


def control_checkpoint(base, twin, dataset):
    """A checkpoint whose contestant is the twin (the base's own weights), so the gate compares the base
    with itself: what the judge says of two identical models."""
    from training.models import Checkpoint, Job  # after django.setup() in scratch_arena()

    twin.parent = base
    twin.save(update_fields=["parent"])
    job = Job.objects.create(base_model=base, method="dpo", dataset=dataset, status=Job.Status.SUCCEEDED, config={})
    return Checkpoint.objects.create(job=job, weights_dir="-", base_model=base, served_model=twin)


def gate(checkpoint, judge, args) -> object:
    from training.gate import gate_run  # after django.setup() in scratch_arena()

    run = gate_run(checkpoint, judge_kind="reward", judge=judge, num_prompts=args.gate_prompts)
    if run.status != "done":
        raise SystemExit(f"gate {run.status}: {run.error}")
    return run


def gate_line(name: str, run) -> str:
    return (f"{name:<34} win rate {run.win_rate:.3f}  95% interval {run.ci_low:.3f}-{run.ci_high:.3f}  "
            f"({run.wins} wins, {run.ties} ties, {run.losses} losses on {run.num_prompts} prompts)")


# ---------------------------------------------------------------------- the run


def the_loop(args, env: dict, stages: Stages) -> None:
    from django.conf import settings

    what = "one reward model as rater and judge (--smoke)" if args.smoke else "reward models on disjoint halves"
    print(f"1. {what} of the HH-RLHF helpful test pairs ({args.rm_steps} steps each)", flush=True)
    stages.start()
    engine = web = None
    url = args.vllm_url
    try:
        if not url:
            engine = start_engine("smollm2")
            url = engine.spec.root_url
            stages.pids.append(engine.process.pid)
        base, twin = register_contestants(url, args.tokens)
        rater, judge = reward_models(base, args)
        stages.done("reward models (rater, judge)")
        web, ws_url = start_web(env, ARENA_STREAM="whole")
        stages.pids.append(web.pid)
        print(f"2. {args.votes} votes by {args.raters} simulated raters over {ws_url} (the base against its twin, "
              f"{args.tokens} tokens an answer)", flush=True)
        tally = asyncio.run(raters_vote(ws_url, rater, rater_prompts(args.votes), args))
        stages.done("votes")
        print(f"3. {args.method.upper()} on the votes ({args.steps} steps of {args.batch})", flush=True)
        checkpoint, dataset = train_on_votes(base, args)
        stages.done(f"{args.method} job")
        print(f"4. the gate: {checkpoint.served_model} against its parent on {args.gate_prompts} held-out "
              f"arena-hard prompts, judged by the judge reward model", flush=True)
        run = gate(checkpoint, judge, args)
        stages.done("gate")
        control = None
        if args.control:
            control = gate(control_checkpoint(base, twin, dataset), judge, args)
            stages.done("control gate")
    finally:
        if web is not None:
            web.terminate()
            web.wait(30)
        if engine is not None:
            engine.stop()
    report(args, tally, dataset, checkpoint, run, control, stages, settings.ARENA_MIN_VOTE_SECONDS)


def report(args, tally, dataset, checkpoint, run, control, stages: Stages, min_vote_s: float) -> None:
    from arena.models import Vote  # after django.setup() in scratch_arena()

    counted = Vote.objects.counted().count()
    metrics = checkpoint.final_metrics
    print(f"\nloop gain, {os.cpu_count()} CPUs, SmolLM2-135M-Instruct, {args.tokens} tokens an answer:")
    print(f"votes: {sum(tally.values())} cast ({tally['model_a']} A, {tally['model_b']} B, {tally['tie']} ties), "
          f"{counted} counted; {dataset.row_count} {args.method.upper()} rows")
    print(f"training: {metrics.get('steps')} steps, train loss {metrics.get('train_loss', float('nan')):.4f}, "
          f"{metrics.get('s_per_step')} s/step")
    print(gate_line("new model vs its parent:", run))
    if control is not None:
        print(gate_line("baseline: the base vs itself:", control))
    above = run.ci_low > 0.5
    print(f"verdict: the interval is {'above' if above else 'not above'} 0.5"
          + ("" if above else " (no improvement shown at this size)"))
    wall = sum(r[1] for r in stages.rows)
    cpu = sum(r[2] for r in stages.rows)
    print(f"{'stage':<30} {'wall s':>8} {'CPU s':>8}")
    for name, w, c in stages.rows:
        print(f"{name:<30} {w:>8.0f} {c:>8.0f}")
    print(f"{'total':<30} {wall:>8.0f} {cpu:>8.0f}   (CPU/wall {cpu / wall:.2f}; votes waited "
          f">= {min_vote_s:g} s after the answers)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=240)
    parser.add_argument("--raters", type=int, default=16, help="raters battling at once (a round)")
    parser.add_argument("--tokens", type=int, default=96, help="max tokens of each answer, battles and gate")
    parser.add_argument("--tie-margin", type=float, default=0.0, help="a rater votes tie within this score gap")
    parser.add_argument("--rm-steps", type=int, default=60, help="steps of each reward model")
    parser.add_argument("--rm-rows", type=int, default=500, help="pairs sampled for each reward model (a fifth held out)")
    parser.add_argument("--method", choices=("dpo", "kto"), default="dpo")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--gate-prompts", type=int, default=150)
    parser.add_argument("--no-control", dest="control", action="store_false", help="skip the base-vs-itself gate")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training job")
    parser.add_argument("--timeout", type=float, default=600.0, help="a rater gives up on a frame after this long")
    parser.add_argument("--vllm-url", default="", help="a running vLLM serving smollm2-135m-instruct with LoRA")
    parser.add_argument("--keep", action="store_true", help="keep the scratch arena (database, models, logs)")
    parser.add_argument("--smoke", action="store_true",
                        help="every stage at a tiny size, one reward model as rater and judge (CI): it runs, no figure")
    args = parser.parse_args(argv)
    if args.smoke:
        args.votes, args.raters, args.tokens, args.rm_steps, args.rm_rows = 4, 4, 16, 2, 20
        args.steps, args.batch, args.gate_prompts = 2, 2, 4
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update({"ARENA_GATE_JUDGE": "off",  # the bench runs the gate itself, with the judge it names
                       "ARENA_GATE_MAX_TOKENS": str(args.tokens), "ARENA_TRAINING_DEVICE": "cpu",
                       "ARENA_GATE_HELDOUT_PROMPTS": str(max(100, args.gate_prompts))})
    scratch = Path(tempfile.mkdtemp(prefix="arena-loop-"))
    env = scratch_arena(scratch)
    print(f"scratch arena {scratch}", flush=True)
    try:
        the_loop(args, env, Stages())
    finally:
        if not args.keep:  # the adapters, datasets, database and logs of the run (tens of MB)
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
