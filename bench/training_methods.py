"""Cost of each training method, and of the gate, on this machine: figures for the closing note.

Part 1 runs the real recipe subprocess (``training.recipes.run``, as ``bench/training_speed.py``
does) once per method on its ``cpu-smoke`` preset and real data:

* ``sft`` on ``oasst-en-messages`` -- the **baseline**: every other method's s/step and peak RSS
  is printed as a ratio to it (same process, same machine, same minute);
* ``dpo`` on ``hh-rlhf-helpful-base-test``;
* ``kto`` on the same pairs unpaired (chosen ``true``, rejected ``false``, as a decisive arena
  vote gives them);
* ``reward`` on the same pairs (also prints its accuracy on its held-out slice: chance is 0.5);
* ``grpo`` on the arena-hard prompts (less the gate's held-out ones) against that reward model;
* ``pretrain`` on raw text: this repository's README.md, packed.

Part 2 (skip it with ``--skip-gate``) times the gate (``training.gate.gate_run``) on a scratch
SQLite database: the SFT adapter of part 1 hot-loaded into a vLLM engine (started here, or
``--vllm-url``) against its base, judged by the reward model of part 1, on ``--gate-prompts``
held-out prompts and on 1 prompt (the fixed cost: loading the scorer), ``--gate-tokens`` per answer.

    .venv/bin/python bench/training_methods.py [--steps N] [--gate-prompts 20] [--gate-tokens 64]
        [--vllm-url URL] [--skip-gate] [--only sft,reward,...] [--keep]

``--steps`` overrides every preset's ``max_steps`` (a quick check: ``--steps 2 --gate-prompts 4``).
Nothing here asserts on time: the machine is shared, so figures vary from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.training_speed import (  # noqa: E402
    ARENA_ENGINE_PYTHON,
    BASE_MODEL,
    BUILTIN_DATA,
    DPO_DATA,
    SFT_DATA,
    Processes,
    free_port,
    normalised,
    run_in_scratch,
    run_recipe,
    scratch_env,
)
from training.formats import parse_dataset, write_jsonl  # noqa: E402
from training.recipes.config import preset  # noqa: E402

METHODS = ("sft", "dpo", "kto", "reward", "grpo", "pretrain")
HELD_OUT_PROMPTS = 100  # the gate's default ARENA_GATE_HELDOUT_PROMPTS: never trained on


def method_data(scratch: Path) -> dict[str, Path]:
    """One normalised dataset file per method, from the shipped real data."""
    data = scratch / "data"
    pairs = normalised(DPO_DATA, data)
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    unpaired = [{"prompt": r["prompt"], "completion": c, "label": label} for r in rows
                for c, label in ((r["chosen"], True), (r["rejected"], False))
                if c[0]["content"].strip()]  # 4 HH-RLHF replies are empty: a KTO row needs a completion
    questions = BUILTIN_DATA / "arena_prompts" / "arena_hard_v0.1_question.jsonl"
    prompts = [json.loads(line)["prompt"] for line in questions.read_text().splitlines() if line.strip()]
    text = parse_dataset((REPO / "README.md").read_bytes(), "raw-text")
    return {
        "sft": normalised(SFT_DATA, data), "dpo": pairs, "reward": pairs,
        "kto": write_jsonl(unpaired, data / "hh-unpaired.jsonl"),
        "grpo": write_jsonl([{"prompt": [{"role": "user", "content": p}]} for p in prompts[:-HELD_OUT_PROMPTS]],
                            data / "arena-hard-prompts.jsonl"),
        "pretrain": write_jsonl(text.rows, data / "readme-text.jsonl"),
    }


def bench_methods(procs: Processes, scratch: Path, steps: int | None, only: list[str]) -> dict[str, dict]:
    data = method_data(scratch)
    extra = [f"max_steps={steps}"] if steps else []
    print(f"Part 1: each method's cpu-smoke preset, base {BASE_MODEL.name}, {os.cpu_count()} CPUs")
    runs: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        if method not in only and method != "sft" and not (method == "reward" and "grpo" in only):
            continue
        reward = runs["reward"]["adapter"] if method == "grpo" else None
        runs[method] = run_recipe(procs, scratch, method, method, data[method], extra, reward_model=reward)

    base = runs["sft"]
    print()
    print(f"{'method':<9} {'steps':>5} {'rows':>5} {'s/step':>8} {'steady':>8} {'peak RSS MB':>12} {'load s':>7} "
          f"{'after s':>7} {'wall s':>7} {'s/step vs SFT':>14} {'RSS vs SFT':>11}")
    for method, r in runs.items():
        after = r["wall_s"] - r["load_s"] - r["s_per_step"] * r["steps"]
        print(f"{method:<9} {r['steps']:>5} {r['num_train_rows'] or 0:>5} {r['s_per_step']:>8.2f} "
              f"{r['steady_s_per_step']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['load_s']:>7.1f} {after:>7.1f} "
              f"{r['wall_s']:>7.1f} "
              f"{r['s_per_step'] / base['s_per_step']:>13.2f}x {r['peak_rss_mb'] / base['peak_rss_mb']:>10.2f}x")
    print("s/step = train_runtime / steps (TRL's figure); steady = median gap between logged steps after the first;")
    print("load = runner start to the first step; after = the rest of the wall time (saving the adapter, the")
    print("reward model's held-out scoring, exit); rows = training rows after sampling (max_train_rows) and")
    print("dropping over-long ones (pretrain: packed blocks). Baseline: the SFT run above, same process.")
    if "reward" in runs:
        metrics = runs["reward"]["metrics"]
        print(f"reward model: held-out accuracy {metrics.get('heldout_accuracy')} on {metrics.get('heldout_rows')} "
              "HH-RLHF pairs (chance 0.5)")
    return runs


def bench_gate(procs: Processes, scratch: Path, vllm_url: str, runs: dict[str, dict], prompts: int,
               tokens: int) -> None:
    scratch_env(scratch)
    os.environ.setdefault("DJANGO_DEBUG", "true")  # development mode, as `make bench`
    os.environ.update({"ARENA_GATE_JUDGE": "reward", "ARENA_GATE_MAX_TOKENS": str(tokens)})
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from serving.engines import EngineProcess  # Django is set up in main(), after this module loads
    from serving.local_models import LOCAL_MODELS  # Django is set up in main(), after this module loads
    from serving.models import Endpoint, ServedModel  # Django is set up in main(), after this module loads
    from serving.services import (
        served_model_register_adapter,  # Django is set up in main(), after this module loads
    )
    from training import gate  # Django is set up in main(), after this module loads
    from training.models import (  # Django is set up in main(), after this module loads
        Checkpoint,
        Dataset,
        Job,
    )

    print(f"\nPart 2: the gate, the SFT adapter against its base, judged by the reward model (scratch {scratch})")
    spec = LOCAL_MODELS["smollm2"].engine_spec()
    if not vllm_url:
        spec.port = free_port()
        spec.log_path = scratch / "logs" / "engine.log"
        engine = EngineProcess(spec)
        procs.engines.append(engine)
        print(f"  starting vLLM on {spec.root_url} ...", flush=True)
        engine.start()
        engine.wait_ready(settings.ARENA_ENGINE_START_TIMEOUT_S)
        vllm_url = spec.root_url
    call_command("migrate", verbosity=0)
    endpoint = Endpoint.objects.create(name="bench-local", base_url=f"{vllm_url.rstrip('/')}/v1", healthy=True,
                                       model_dir=spec.model_dir)
    base = ServedModel.objects.create(public_name="smollm2-135m-instruct", endpoint=endpoint,
                                      engine_model_id="smollm2-135m-instruct", generation={"temperature": 0.0})
    dataset = Dataset.objects.create(name="bench", kind="sft", format="messages", source="upload", file="-")

    def checkpoint(method: str, **fields) -> Checkpoint:
        job = Job.objects.create(base_model=base, method=method, dataset=dataset, status="succeeded",
                                 config=preset(method, "cpu-smoke").to_dict())  # the scorer reads max_length
        return Checkpoint.objects.create(job=job, weights_dir=str(runs[method]["adapter"]), base_model=base, **fields)

    scorer = checkpoint("reward", kind="scorer", final_metrics=runs["reward"]["metrics"])
    new = served_model_register_adapter(parent=base, name=f"bench-sft-{int(time.time())}",
                                        adapter_path=str(runs["sft"]["adapter"]))
    sft = checkpoint("sft", served_model=new)
    results = []
    for n in (1, prompts):
        t0 = time.monotonic()
        result = gate.gate_run(sft, judge_kind="reward", judge=scorer, num_prompts=n)
        if result.status != "done":
            raise SystemExit(f"gate run {result.status}: {result.error}")
        results.append((n, time.monotonic() - t0, result))
    print(f"  {'prompts':>7} {'wall s':>7} {'s/prompt':>9}  win rate (95% interval)")
    for n, wall, result in results:
        print(f"  {n:>7} {wall:>7.1f} {wall / n:>9.2f}  {result.win_rate:.2f} ({result.ci_low:.2f}-{result.ci_high:.2f})")
    (n1, w1, _), (n2, w2, _) = results
    if n2 > n1:
        print(f"  marginal cost: {(w2 - w1) / (n2 - n1):.2f} s per extra prompt; fixed cost (scorer load, "
              f"1 prompt) {w1:.1f} s; {prompts} prompts / 1 prompt = {w2 / w1:.2f}x")
    print(f"  answers: {tokens} tokens max each, greedy; the reward model scores each answer alone (one game a prompt).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=0, help="override every preset's max_steps")
    parser.add_argument("--only", default=",".join(METHODS), help="comma-separated methods (SFT always runs)")
    parser.add_argument("--gate-prompts", type=int, default=20)
    parser.add_argument("--gate-tokens", type=int, default=64)
    parser.add_argument("--vllm-url", default="", help="reuse a running vLLM serving smollm2-135m-instruct")
    parser.add_argument("--skip-gate", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--smoke", action="store_true", help="SFT and DPO, one step each, no gate (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.only, args.steps, args.skip_gate = "sft,dpo", 1, True
    if not Path(ARENA_ENGINE_PYTHON).exists() or not (BASE_MODEL / "config.json").exists():
        raise SystemExit(f"needs {ARENA_ENGINE_PYTHON} and {BASE_MODEL}: run `make models`")
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    if unknown := set(only) - set(METHODS):
        raise SystemExit(f"unknown methods: {', '.join(sorted(unknown))}")

    def work(procs: Processes, scratch: Path) -> None:
        runs = bench_methods(procs, scratch, args.steps or None, only)
        if not args.skip_gate:
            if "reward" not in runs:
                raise SystemExit("the gate needs the reward model: include reward in --only or pass --skip-gate")
            bench_gate(procs, scratch, args.vllm_url, runs, args.gate_prompts, args.gate_tokens)

    run_in_scratch("arena-methods-bench-", work, keep=args.keep)


if __name__ == "__main__":
    main()
