#!/usr/bin/env bash
# Turn this machine (a rented GPU box, or any second machine) into a training worker of an arena
# that runs elsewhere: fetch the arena's code at its commit into a folder of its own, check what the
# worker needs, then become a Celery worker of the arena's `training` queue (exec: this script's
# pid is the worker's; Ctrl-C or SIGTERM stops it, a job in progress is re-run or reaped, see
# docs/gpu-workers.md).
#
#   scripts/join_training_queue.sh [--dir DIR] [--source GIT_URL_OR_PATH] [--ref REF] [--check]
#
#   --dir     where the worker's checkout goes (default: ~/arena-worker); reused when present
#   --source  the arena's repository (default: the repository this script is in)
#   --ref     the arena's commit or branch (default: the source's HEAD): it must match the arena's
#             database migrations, or the worker refuses to start
#   --check   run every check, print what the worker would run, and exit without joining
#
# Environment (the arena's own values, as its web processes have them):
#   DATABASE_URL        postgres://... of the arena (required: SQLite is one machine's)
#   REDIS_URL           redis://... of the arena (required: the broker of the training queue)
#   ARENA_DATA_DIR      the arena's data folder, mounted here AT THE SAME PATH (shared storage:
#                       NFS, a cloud volume): job folders, adapters and full models are written
#                       there, and the arena's vLLM loads them from the paths the worker records
#   ARENA_MODELS_DIR    where the base models are, if not under ARENA_DATA_DIR (same path as the arena)
#   ARENA_ENGINE_PYTHON the engine environment's python (torch, TRL, PEFT; CUDA torch on a GPU).
#                       Default: DIR/.venv-engine-cuda/bin/python, built by scripts/engine_venv_cuda.sh
#                       when this machine has an NVIDIA GPU; without one it must be given.
#   ARENA_WEB_PYTHON    the web environment's python (default: DIR/.venv, built by `make venv`)
#   ARENA_TRAINING_DEVICE  cuda or cpu (default: cuda when nvidia-smi lists a GPU, else cpu)
#   WORKER_NAME         the Celery node name's first part (default: train-<hostname>)
#   DJANGO_SECRET_KEY, ARENA_IP_SALT and the other production settings when DJANGO_DEBUG is false.
set -euo pipefail

die() { echo "join_training_queue: ERROR: $*" >&2; exit 1; }
say() { echo "join_training_queue: $*"; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$HOME/arena-worker"; SOURCE="$HERE"; REF=""; CHECK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR="${2:?--dir needs a folder}"; shift 2 ;;
        --source) SOURCE="${2:?--source needs a repository}"; shift 2 ;;
        --ref) REF="${2:?--ref needs a commit or branch}"; shift 2 ;;
        --check) CHECK=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

# 1. The shared parts: a worker elsewhere can only share a server database, broker and storage.
case "${DATABASE_URL:-}" in
    postgres://*|postgresql://*) ;;
    "") die "DATABASE_URL is not set: give the arena's PostgreSQL URL" ;;
    *) die "DATABASE_URL must be the arena's PostgreSQL (postgres://...): a SQLite file is one machine's" ;;
esac
case "${REDIS_URL:-}" in
    redis://*|rediss://*) ;;
    "") die "REDIS_URL is not set: give the arena's Redis URL (the broker of the training queue)" ;;
    *) die "REDIS_URL must be a redis:// URL: the embedded filesystem broker is one machine's" ;;
esac
[ -n "${ARENA_DATA_DIR:-}" ] || die "ARENA_DATA_DIR is not set: mount the arena's data folder here at the same path"
[ -d "$ARENA_DATA_DIR" ] && [ -w "$ARENA_DATA_DIR" ] \
    || die "ARENA_DATA_DIR=$ARENA_DATA_DIR is not a writable folder here: mount the arena's shared storage"

# 2. The arena's code, in a folder of its own.
[ -n "$REF" ] || REF="$(git -C "$SOURCE" rev-parse HEAD 2>/dev/null)" || die "cannot read HEAD of $SOURCE (--ref)"
if [ -d "$DIR/.git" ]; then
    git -C "$DIR" fetch --quiet "$SOURCE" "$REF" || git -C "$DIR" fetch --quiet "$SOURCE" \
        || die "git fetch from $SOURCE into $DIR failed"
else
    [ ! -e "$DIR" ] || [ -z "$(ls -A "$DIR")" ] || die "$DIR exists and is not a checkout: choose another --dir"
    git clone --quiet --no-checkout "$SOURCE" "$DIR" || die "git clone $SOURCE $DIR failed"
fi
git -C "$DIR" -c advice.detachedHead=false checkout --quiet --force "$REF" 2>/dev/null \
    || git -C "$DIR" -c advice.detachedHead=false checkout --quiet --force FETCH_HEAD \
    || die "cannot check out $REF in $DIR"
say "code: $DIR at $(git -C "$DIR" rev-parse --short HEAD)"
cd "$DIR"

# 3. The two environments.
WEB_PY="${ARENA_WEB_PYTHON:-}"
if [ -z "$WEB_PY" ]; then
    make venv >/dev/null || die "make venv failed in $DIR"
    WEB_PY="$DIR/.venv/bin/python"
fi
[ -x "$WEB_PY" ] || die "ARENA_WEB_PYTHON=$WEB_PY is not an executable python"
HAS_GPU=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then HAS_GPU=1; fi
export ARENA_TRAINING_DEVICE="${ARENA_TRAINING_DEVICE:-$([ $HAS_GPU = 1 ] && echo cuda || echo cpu)}"
if [ "$ARENA_TRAINING_DEVICE" = cuda ] && [ $HAS_GPU = 0 ]; then
    die "ARENA_TRAINING_DEVICE=cuda but nvidia-smi lists no GPU on this machine"
fi
if [ -z "${ARENA_ENGINE_PYTHON:-}" ]; then
    [ $HAS_GPU = 1 ] || die "ARENA_ENGINE_PYTHON is not set and this machine has no GPU: give an engine python"
    [ -x .venv-engine-cuda/bin/python ] || bash scripts/engine_venv_cuda.sh .venv-engine-cuda \
        || die "scripts/engine_venv_cuda.sh failed"
    export ARENA_ENGINE_PYTHON="$DIR/.venv-engine-cuda/bin/python"
fi
"$ARENA_ENGINE_PYTHON" - "$ARENA_TRAINING_DEVICE" <<'PY' || die "the engine environment $ARENA_ENGINE_PYTHON is not usable (above)"
import sys
import peft, torch, transformers, trl  # noqa: F401
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
    print(f"join_training_queue: engine: torch {torch.__version__}, trl {trl.__version__}, "
          f"GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}")
else:
    print(f"join_training_queue: engine: torch {torch.__version__}, trl {trl.__version__}, CPU")
PY

# 4. The arena: its database at this code's migrations, its broker, its base models on this disk.
export PYTHONPATH="$DIR${PYTHONPATH:+:$PYTHONPATH}"
"$WEB_PY" manage.py migrate --check >/dev/null 2>&1 \
    || die "the arena's database is not at this code's migrations (or does not answer): check out the arena's commit (--ref)"
"$WEB_PY" - <<'PY' || die "the broker $REDIS_URL does not answer"
import os, redis
redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=5).ping()
PY
"$WEB_PY" manage.py shell -c '
from pathlib import Path
import config
from serving.models import Endpoint
print(f"join_training_queue: code imported from {Path(config.__file__).parent.parent}")
missing = sorted({e.model_dir for e in Endpoint.objects.exclude(model_dir="") if not Path(e.model_dir, "config.json").exists()})
for path in missing:
    print(f"join_training_queue: WARNING: base model {path} is not on this machine: a job on it fails; mount or copy it there")
' || die "reading the arena's endpoints failed"

NAME="${WORKER_NAME:-train-$(hostname -s)}"
CMD=("$WEB_PY" -m celery -A config worker -Q training -c 1 --prefetch-multiplier 1 -n "$NAME@%h" --loglevel INFO)
say "device: $ARENA_TRAINING_DEVICE; data: $ARENA_DATA_DIR; worker: $NAME"
if [ $CHECK = 1 ]; then
    say "checks passed; would run: ${CMD[*]}"
    exit 0
fi
say "joining the training queue"
exec "${CMD[@]}"
