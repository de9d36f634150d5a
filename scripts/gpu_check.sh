#!/usr/bin/env bash
# GPU check, by hand on a machine with an NVIDIA GPU (never needed by CI or `make test`):
#   1. a CUDA engine environment: $GPU_PYTHON if set (an interpreter with vLLM's CUDA build, torch
#      with CUDA, trl, peft, transformers, gguf), else scripts/engine_venv_cuda.sh with WITH_VLLM=1
#      into .venv-engine-cuda (needs the package index);
#   2. SmolLM2-135M-Instruct converted from the GGUF shipped on PyPI (serving/tools/convert_gguf.py);
#   3. scripts/gpu_check.py: SFT and DPO smoke jobs on the GPU (cpu-smoke presets, real shipped
#      data), a reward model and GRPO against it with generation through vLLM colocated on the GPU
#      (use_vllm=true; TRL's default loss, then the GSPO variant); vLLM serving the model with
#      serving/vllm_launch.py's CUDA flags, every contestant adapter hot-loaded, one streamed answer
#      each; the figures are printed and written to $GPU_CHECK_OUT/figures.json (default var/gpu-check);
#   4. unless GPU_CHECK_BACKENDS=0: requirements/gpu.txt (Unsloth, DeepSpeed, bitsandbytes) into
#      that environment, then the same driver with --backends: SFT and DPO with backend=unsloth, a
#      QLoRA SFT (load_in_4bit=true, bitsandbytes NF4; adapters hot-loaded and answering), and a full
#      SFT under accelerate with each DeepSpeed config (deepspeed=zero2, zero3). Never run on the
#      project's CPU machines.
# Without an NVIDIA GPU it stops at once, saying so. `scripts/gpu_check.sh --dry-run` runs anywhere
# (no GPU, no install): it builds the datasets and every planned job's config and job.json under
# $GPU_CHECK_OUT and prints the plan, without training.
# Environment: GPU_PYTHON, GPU_CHECK_OUT, GPU_CHECK_KV_CACHE_GIB (default 2), GPU_CHECK_BACKENDS
# (default 1), ARENA_BUILTIN_DATA_DIR (default data/, the shipped built-in datasets), PYTHON (the
# interpreter of --dry-run, default python3: the driver needs only the standard library).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu_check: ERROR: $*" >&2; exit 1; }
OUT="${GPU_CHECK_OUT:-var/gpu-check}"
DATA="${ARENA_BUILTIN_DATA_DIR:-data}"
[ -d "$DATA" ] || die "data folder $DATA missing (ARENA_BUILTIN_DATA_DIR)"
if [ "${1:-}" = "--dry-run" ]; then
    exec "${PYTHON:-python3}" scripts/gpu_check.py --dry-run --data "$DATA" --out "$OUT"
fi
[ $# -eq 0 ] || die "unknown argument $1 (the only one is --dry-run)"
command -v nvidia-smi >/dev/null \
    || die "no nvidia-smi: this check needs an NVIDIA GPU (scripts/gpu_check.sh --dry-run checks the plan without one)"
nvidia-smi -L | grep -q GPU || die "nvidia-smi lists no GPU"

PY="${GPU_PYTHON:-}"
if [ -z "$PY" ]; then
    [ -x .venv-engine-cuda/bin/python ] || WITH_VLLM=1 bash scripts/engine_venv_cuda.sh .venv-engine-cuda
    PY=.venv-engine-cuda/bin/python
fi
"$PY" -c 'import torch, vllm, trl, peft; assert torch.cuda.is_available(), "torch sees no CUDA device"' \
    || die "$PY lacks vLLM/TRL/PEFT or CUDA torch (set GPU_PYTHON)"

mkdir -p "$OUT/models"
HF_HUB_OFFLINE=1 "$PY" serving/tools/convert_gguf.py --out "$OUT/models" --only smollm2 >/dev/null \
    || die "converting SmolLM2 failed"
BACKENDS=()
if [ "${GPU_CHECK_BACKENDS:-1}" != 0 ]; then
    "$PY" -m pip install -q --progress-bar off -r requirements/gpu.txt \
        || die "installing requirements/gpu.txt into $PY's environment failed"
    mapfile -t NODEPS < <(sed -n 's/^#nodeps:[[:space:]]*//p' requirements/gpu.txt | sed 's/[[:space:]]*$//' | grep -v '^$')
    "$PY" -m pip install -q --progress-bar off --no-deps "${NODEPS[@]}" || die "installing unsloth (--no-deps) failed"
    "$PY" -c 'import unsloth, deepspeed, bitsandbytes' || die "unsloth/deepspeed/bitsandbytes do not import"
    BACKENDS=(--backends)
fi
HF_HUB_OFFLINE=1 "$PY" scripts/gpu_check.py --model-dir "$OUT/models/smollm2-135m-instruct" \
    --data "$DATA" --out "$OUT" --kv-cache-gib "${GPU_CHECK_KV_CACHE_GIB:-2}" "${BACKENDS[@]}"
