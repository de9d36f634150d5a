"""GPU check driver (run by scripts/gpu_check.sh in a CUDA engine environment; never by CI).

On one NVIDIA GPU: an SFT smoke job and a DPO smoke job continuing it (training.recipes.run,
device cuda, the cpu-smoke presets on real shipped data), then vLLM serving the base model
with serving/vllm_launch.py's CUDA flags, both adapters hot-loaded under new names, and one
streamed answer from each model. Prints every figure and writes them to OUT/figures.json.

With ``--backends`` (the GPU-only training backends, requirements/gpu.txt installed): an SFT and
a DPO job with ``backend=unsloth`` (their adapters are hot-loaded and answer too), and a full SFT
fine-tune under ``accelerate launch`` with each DeepSpeed config (``deepspeed=zero2``, ``zero3``;
the runner checks the saved model is servable). These have never run on this project's CPU
machines: this is where they run end to end.

    python scripts/gpu_check.py --model-dir DIR --data DIR --out DIR [--backends]

Standard library plus the project's pure modules; torch and vLLM run in subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from serving.vllm_launch import build_vllm_command  # noqa: E402
from training import formats  # noqa: E402
from training.recipes import progress  # noqa: E402
from training.recipes.backends import accelerate_config  # noqa: E402
from training.recipes.config import preset  # noqa: E402

ROWS = 256
PROMPT = [{"role": "user", "content": "Name three primary colours, briefly."}]


def say(message: str) -> None:
    print(f"gpu_check: [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def dataset(data_dir: Path, relative: str, fmt: str, out: Path) -> Path:
    result = formats.parse_dataset(data_dir / relative, fmt)
    if not result.rows:
        raise SystemExit(f"{relative}: no usable rows ({result.error_lines()[:3]})")
    return formats.write_jsonl(result.rows[:ROWS], out)


def train(method: str, *, model_dir: str, data: Path, out: Path, init: str | None = None, label: str = "",
          overrides: dict | None = None) -> dict:
    label = label or method
    job_dir = out / f"job-{label}"
    config = preset(method, "cpu-smoke").updated(overrides or {})
    progress.write_job(job_dir, method=method, base_model_path=model_dir, dataset_path=data,
                       output_dir=job_dir / ("model" if config.full else "adapter"), config=config.to_dict(),
                       device="cuda", init_adapter_path=init)
    stage = config.deepspeed
    command = progress.runner_command(sys.executable, job_dir,
                                      accelerate_config=accelerate_config(stage) if stage != "none" else None)
    started = time.monotonic()
    with open(job_dir / "log.txt", "wb") as log:
        code = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - started
    final = progress.final_event(progress.read_events(job_dir / "progress.jsonl")) or {}
    if code != 0 or final.get("event") != "done":
        tail = (job_dir / "log.txt").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{label} job failed (exit {code}):\n{tail}")
    metrics = final["metrics"]
    figures = {"wall_s": round(wall, 1), "adapter": final["adapter_dir"]}
    for key in ("steps", "s_per_step", "train_runtime", "train_loss", "device", "num_train_rows"):
        if key in metrics:
            figures[key] = metrics[key]
    say(f"{label}: {figures}")
    return figures


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--kv-cache-gib", type=float, default=2.0)
    parser.add_argument("--backends", action="store_true", help="also Unsloth and DeepSpeed ZeRO 2/3 runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    figures: dict = {"gpu": gpu}
    say(f"GPU: {gpu}")
    sft_data = dataset(args.data, "sft_chat/oasst_en_messages.jsonl", "messages", args.out / "sft.jsonl")
    dpo_data = dataset(args.data, "hh_rlhf/helpful-base_test.jsonl.gz", "hh-rlhf", args.out / "dpo.jsonl")
    figures["sft"] = train("sft", model_dir=args.model_dir, data=sft_data, out=args.out)
    figures["dpo"] = train("dpo", model_dir=args.model_dir, data=dpo_data, out=args.out,
                           init=figures["sft"]["adapter"])
    adapters = {"gpu-check-sft-1": figures["sft"]["adapter"], "gpu-check-dpo-1": figures["dpo"]["adapter"]}
    if args.backends:
        unsloth = {"backend": "unsloth"}
        figures["unsloth-sft"] = train("sft", model_dir=args.model_dir, data=sft_data, out=args.out,
                                       label="unsloth-sft", overrides=unsloth)
        figures["unsloth-dpo"] = train("dpo", model_dir=args.model_dir, data=dpo_data, out=args.out,
                                       label="unsloth-dpo", overrides=unsloth)
        adapters.update({"gpu-check-unsloth-sft-1": figures["unsloth-sft"]["adapter"],
                         "gpu-check-unsloth-dpo-1": figures["unsloth-dpo"]["adapter"]})
        for stage in ("zero2", "zero3"):
            figures[f"{stage}-full-sft"] = train(
                "sft", model_dir=args.model_dir, data=sft_data, out=args.out, label=f"{stage}-full-sft",
                overrides={"finetuning_type": "full", "deepspeed": stage, "learning_rate": 2e-5})
    figures["serve"] = serve(args.model_dir, args.out, adapters, args.kv_cache_gib)
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
