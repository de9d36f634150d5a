"""GPU check driver (run by scripts/gpu_check.sh in a CUDA engine environment; never by CI).

On one NVIDIA GPU, each job of ``PLAN`` through the real runner (training.recipes.run, device
cuda, the cpu-smoke presets plus the job's settings, real shipped data): an SFT job and a DPO job
continuing it; a reward model, then GRPO against it with generation through vLLM colocated on the
training GPU (``use_vllm=true``), once with TRL's default loss and once with the GSPO variant.
Then vLLM serves the base model with serving/vllm_launch.py's CUDA flags, every contestant
adapter hot-loaded under a new name, and one streamed answer from each model. Prints every figure
and writes them to OUT/figures.json.

With ``--backends`` (the GPU-only training backends, requirements/gpu.txt installed): an SFT and
a DPO job with ``backend=unsloth``, a QLoRA SFT job (``load_in_4bit=true``: the base in
bitsandbytes 4-bit NF4, backend trl), whose adapters are hot-loaded and answer too, and a full SFT
fine-tune under ``accelerate launch`` with each DeepSpeed config (``deepspeed=zero2``, ``zero3``;
the runner checks the saved model is servable). None of these can run on this project's CPU
machines: this is where they run end to end.

Without an NVIDIA GPU (no ``nvidia-smi``) it refuses, saying so. ``--dry-run`` needs no GPU: it
builds the datasets and every planned job's validated config and job.json under OUT, and prints
the plan (what would run, and which settings need the GPU), without training anything.

    python scripts/gpu_check.py --model-dir DIR --data DIR --out DIR [--backends]
    python scripts/gpu_check.py --dry-run --data DIR --out DIR

Standard library plus the project's pure modules; torch and vLLM run in subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from serving.vllm_launch import build_vllm_command  # noqa: E402
from training import formats  # noqa: E402
from training.recipes import progress  # noqa: E402
from training.recipes.backends import accelerate_config, gpu_features  # noqa: E402
from training.recipes.config import RecipeConfig, preset  # noqa: E402
from training.recipes.grpo_variants import GRPO_VARIANTS  # noqa: E402

ROWS = 256
HELD_OUT_PROMPTS = 100  # the gate's default ARENA_GATE_HELDOUT_PROMPTS: never trained on
PROMPT = [{"role": "user", "content": "Name three primary colours, briefly."}]
NO_GPU = ("gpu_check: this check needs an NVIDIA GPU and this machine has none (no nvidia-smi on PATH). "
          "On a CPU machine, --dry-run builds and checks every planned job without training.")


@dataclass(frozen=True)
class PlannedJob:
    """One training run of the check: the method's cpu-smoke preset plus ``settings``."""

    label: str
    method: str
    data: str  # a key of datasets(): sft, pairs, prompts
    settings: dict = field(default_factory=dict)
    init: str = ""  # the label of the job whose adapter this one continues
    reward: str = ""  # GRPO: the label of the reward-model job
    backends: bool = False  # needs requirements/gpu.txt (Unsloth, DeepSpeed, bitsandbytes): --backends only
    serve: bool = True  # a LoRA contestant: hot-loaded into vLLM, one streamed answer


PLAN = [
    PlannedJob("sft", "sft", "sft"),
    PlannedJob("dpo", "dpo", "pairs", init="sft"),
    PlannedJob("reward", "reward", "pairs", serve=False),
    PlannedJob("grpo-vllm", "grpo", "prompts", {"use_vllm": True}, reward="reward"),
    PlannedJob("gspo-vllm", "grpo", "prompts", {**GRPO_VARIANTS["gspo"], "use_vllm": True}, reward="reward"),
    PlannedJob("unsloth-sft", "sft", "sft", {"backend": "unsloth"}, backends=True),
    PlannedJob("unsloth-dpo", "dpo", "pairs", {"backend": "unsloth"}, backends=True),
    PlannedJob("qlora-sft", "sft", "sft", {"load_in_4bit": True}, backends=True),
    *(PlannedJob(f"{stage}-full-sft", "sft", "sft", {"finetuning_type": "full", "deepspeed": stage,
                                                     "learning_rate": 2e-5}, backends=True, serve=False)
      for stage in ("zero2", "zero3")),
]


def say(message: str) -> None:
    print(f"gpu_check: [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def dataset(data_dir: Path, relative: str, fmt: str, out: Path, rows: slice = slice(ROWS)) -> Path:
    result = formats.parse_dataset(data_dir / relative, fmt)
    if not result.rows:
        raise SystemExit(f"{relative}: no usable rows ({result.error_lines()[:3]})")
    return formats.write_jsonl(result.rows[rows], out)


def datasets(data_dir: Path, out: Path) -> dict[str, Path]:
    """The shipped real data of each kind: conversations, HH-RLHF pairs, arena-hard prompts (less the
    gate's held-out ones)."""
    return {"sft": dataset(data_dir, "sft_chat/oasst_en_messages.jsonl", "messages", out / "sft.jsonl"),
            "pairs": dataset(data_dir, "hh_rlhf/helpful-base_test.jsonl.gz", "hh-rlhf", out / "pairs.jsonl"),
            "prompts": dataset(data_dir, "arena_prompts/arena_hard_v0.1_question.jsonl", "prompts",
                               out / "prompts.jsonl", slice(None, -HELD_OUT_PROMPTS))}


def job_config(job: PlannedJob) -> RecipeConfig:
    """The job's validated config (a RecipeConfigError names every bad key)."""
    config = preset(job.method, "cpu-smoke").updated(job.settings)
    config.check_servable()
    return config


def write_job(job: PlannedJob, *, model_dir: str, data: dict[str, Path], out: Path,
              adapters: dict[str, str]) -> tuple[Path, RecipeConfig]:
    config = job_config(job)
    job_dir = out / f"job-{job.label}"
    progress.write_job(job_dir, method=job.method, base_model_path=model_dir, dataset_path=data[job.data],
                       output_dir=job_dir / ("model" if config.full else "adapter"), config=config.to_dict(),
                       device="cuda", init_adapter_path=adapters.get(job.init),
                       reward_model_path=adapters.get(job.reward))
    return job_dir, config


def train(job: PlannedJob, *, model_dir: str, data: dict[str, Path], out: Path, adapters: dict[str, str]) -> dict:
    job_dir, config = write_job(job, model_dir=model_dir, data=data, out=out, adapters=adapters)
    stage = config.deepspeed
    command = progress.runner_command(sys.executable, job_dir,
                                      accelerate_config=accelerate_config(stage) if stage != "none" else None)
    started = time.monotonic()
    with open(job_dir / "log.txt", "wb") as log:
        code = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - started
    events = progress.read_events(job_dir / "progress.jsonl")
    final = progress.final_event(events) or {}
    if code != 0 or final.get("event") != "done":
        tail = (job_dir / "log.txt").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{job.label} job failed (exit {code}):\n{tail}")
    metrics = final["metrics"]
    figures = {"wall_s": round(wall, 1), "adapter": final["adapter_dir"]}
    for key in ("steps", "s_per_step", "train_runtime", "train_loss", "device", "num_train_rows", "peak_rss_mb",
                "reward", "heldout_accuracy"):
        if key in metrics:
            figures[key] = metrics[key]
    start = next((e for e in events if e.get("event") == "start"), {})
    for key in ("use_vllm", "loss_type", "importance_sampling_level", "lora"):  # what the trainer really ran
        if key in start:
            figures[key] = start[key]
    say(f"{job.label}: {figures}")
    return figures


def dry_run(args) -> int:
    """Every planned job's config and job.json, built and checked on any machine; nothing trains."""
    data = datasets(args.data, args.out)
    say("datasets: " + ", ".join(f"{k} {sum(1 for _ in v.open())} rows" for k, v in data.items()))
    model_dir = args.model_dir or "<converted SmolLM2 directory>"
    adapters = {job.label: f"<adapter of {job.label}>" for job in PLAN}
    plan = []
    for job in PLAN:
        job_dir, config = write_job(job, model_dir=model_dir, data=data, out=args.out, adapters=adapters)
        gpu_only = gpu_features(config.to_dict())
        plan.append({"label": job.label, "method": job.method, "settings": job.settings, "job_dir": str(job_dir),
                     "needs": "--backends" if job.backends else "", "gpu_only": gpu_only})
        say(f"{job.label}: {job.method} cpu-smoke + {job.settings or 'nothing'}"
            f"{' (--backends)' if job.backends else ''}; GPU-only settings: {', '.join(gpu_only) or 'none'}")
    (args.out / "plan.json").write_text(json.dumps(plan, indent=2))
    say(f"dry run: {len(plan)} jobs checked, job.json files under {args.out}; nothing trained")
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 120) -> tuple[int, str]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def stream_answer(root: str, model: str) -> dict:
    """One streamed chat completion: time to first token, tokens per second, the text."""
    payload = {"model": model, "messages": PROMPT, "max_tokens": 64, "temperature": 0.0, "stream": True,
               "stream_options": {"include_usage": True}}
    request = urllib.request.Request(f"{root}/v1/chat/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    started, first, text, tokens = time.monotonic(), None, [], None
    with urllib.request.urlopen(request, timeout=300) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.monotonic()
                text.append(piece)
            if chunk.get("usage"):
                tokens = chunk["usage"].get("completion_tokens")
    end = time.monotonic()
    decode_s = end - (first or end)
    return {"ttft_ms": round(((first or end) - started) * 1000, 1), "completion_tokens": tokens,
            "tokens_per_s": round((tokens or 0) / decode_s, 1) if decode_s > 0 else None,
            "text": "".join(text)[:200]}


def serve(model_dir: str, out: Path, adapters: dict[str, str], kv_cache_gib: float) -> dict:
    port = free_port()
    argv, env_add = build_vllm_command(python=sys.executable, model_dir=model_dir, served_name="smollm2-135m-instruct",
                                       port=port, device="cuda", kv_cache_gib=kv_cache_gib)
    say("vLLM: " + " ".join(argv[1:]))
    root = f"http://127.0.0.1:{port}"
    figures: dict = {"argv": argv[1:]}
    started = time.monotonic()
    with open(out / "vllm.log", "wb") as log:
        engine = subprocess.Popen(argv, env={**os.environ, **env_add}, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        while True:
            if engine.poll() is not None:
                raise SystemExit("vLLM exited:\n" + (out / "vllm.log").read_text(errors="replace")[-3000:])
            try:
                if http_json(f"{root}/health", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > 900:
                raise SystemExit("vLLM did not answer /health within 900 s")
            time.sleep(2)
        figures["ready_s"] = round(time.monotonic() - started, 1)
        say(f"vLLM ready in {figures['ready_s']} s")
        figures["base"] = stream_answer(root, "smollm2-135m-instruct")
        say(f"base model: {figures['base']}")
        for name, path in adapters.items():
            loaded_at = time.monotonic()
            status, body = http_json(f"{root}/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
            if status != 200:
                raise SystemExit(f"load_lora_adapter {name}: {status} {body[:500]}")
            listed = {m["id"] for m in json.loads(http_json(f"{root}/v1/models")[1])["data"]}
            assert name in listed, f"{name} not in /v1/models after loading"
            figures[name] = {"load_s": round(time.monotonic() - loaded_at, 2), **stream_answer(root, name)}
            say(f"adapter {name}: {figures[name]}")
        status, body = http_json(f"{root}/metrics")
        figures["metrics_lines"] = len(body.splitlines()) if status == 200 else status
    finally:
        engine.terminate()
        try:
            engine.wait(60)
        except subprocess.TimeoutExpired:
            engine.kill()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", help="the converted SmolLM2 directory (not needed with --dry-run)")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--kv-cache-gib", type=float, default=2.0)
    parser.add_argument("--backends", action="store_true", help="also Unsloth, QLoRA and DeepSpeed ZeRO 2/3 runs")
    parser.add_argument("--dry-run", action="store_true", help="check every job's config on any machine; no training")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        return dry_run(args)
    if not args.model_dir:
        parser.error("--model-dir is required (except with --dry-run)")
    if shutil.which("nvidia-smi") is None:
        raise SystemExit(NO_GPU)
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    figures: dict = {"gpu": gpu}
    say(f"GPU: {gpu}")
    data = datasets(args.data, args.out)
    adapters: dict[str, str] = {}
    served: dict[str, str] = {}
    for job in PLAN:
        if job.backends and not args.backends:
            continue
        figures[job.label] = train(job, model_dir=args.model_dir, data=data, out=args.out, adapters=adapters)
        adapters[job.label] = figures[job.label]["adapter"]
        if job.serve:
            served[f"gpu-check-{job.label}-1"] = adapters[job.label]
    figures["serve"] = serve(args.model_dir, args.out, served, args.kv_cache_gib)
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
