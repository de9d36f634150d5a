#!/usr/bin/env bash
# `make run` from a fresh clone, as a new user would run it (called by .ci/run).
#
#   scripts/ci_fresh_clone.sh
#
# 1. `git clone` this checkout's HEAD into a new temporary folder, with no ../shared beside it;
# 2. `make run` there in its own process group, with free ports (ARENA_PORT, ARENA_ENGINE_PORT)
#    and none of this shell's ARENA_*/DJANGO_*/CELERY_*/DATABASE_URL/REDIS_URL settings: the
#    clone builds its own .venv and .venv-engine (pip's cache makes that quick) and var/;
# 3. scripts/fresh_clone_battle.py waits for the page, takes a prompt suggestion from it and
#    plays one battle over the WebSocket API;
# 4. checks that the two starter fine-tunes (SFT and DPO) were queued and none failed;
# 5. sends SIGINT to the group (Ctrl-C) and checks that no process of the clone is left.
# Bounded: FRESH_CLONE_TIMEOUT_S (default 1500) for steps 2-3, 90 s for the stop. Building the two
# environments dominates: about 15 minutes to the page on a 2-core machine under heavy load.
# FRESH_CLONE_KEEP=1 keeps the folder for a look afterwards.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO/.venv/bin/python"
TIMEOUT_S="${FRESH_CLONE_TIMEOUT_S:-1500}"
log() { echo "fresh-clone: [$(date +%H:%M:%S)] $*"; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/arena-fresh.XXXXXX")"
CLONE="$TMP/arena"  # ../shared of the clone is $TMP/shared, which nothing creates
MAKE_PID=""

leftovers() {
    # Every live process whose command line or working folder lies in the clone, or in make's group.
    local pid state
    for pid in $(pgrep -f "$TMP" || true) ${MAKE_PID:+$(pgrep -g "$MAKE_PID" || true)} \
               $(for p in /proc/[0-9]*; do
                     case "$(readlink "$p/cwd" 2>/dev/null)" in "$CLONE"|"$CLONE"/*) echo "${p#/proc/}" ;; esac
                 done); do
        state="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
        case "$pid:$state" in "$$":*|"$BASHPID":*|*:|*:Z*) ;; *) echo "$pid" ;; esac
    done
}

cleanup() {
    local status=$? pids
    pids="$(leftovers | sort -u | tr '\n' ' ')"
    if [ -n "${pids// }" ]; then
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$TMP/make-run.log" ]; then
        log "FAILED; the last lines of make run and its logs:"
        tail -n 60 "$TMP/make-run.log" || true
        for f in "$CLONE"/var/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
    fi
    if [ "${FRESH_CLONE_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

[ ! -e "$TMP/shared" ] || { log "ERROR: $TMP/shared exists"; exit 1; }
git clone -q "$REPO" "$CLONE"
log "cloned $(git -C "$CLONE" rev-parse --short HEAD) into $CLONE"

# A free port for the web server and two consecutive ones for the engines.
read -r WEB_PORT ENGINE_PORT < <("$PY" - <<'EOF'
import random, socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
while True:
    web, engine = random.sample(range(20000, 60000, 2), 2)
    if free(web) and free(engine) and free(engine + 1):
        print(web, engine)
        break
EOF
)

# A new user's environment: none of the settings this CI shell exported for `make test`.
UNSET=()
for name in $(compgen -e); do
    case "$name" in ARENA_*|DJANGO_*|CELERY_*|DATABASE_URL|REDIS_URL) UNSET+=(-u "$name") ;; esac
done
RUN_ENV=(env "${UNSET[@]}" ARENA_PORT="$WEB_PORT" ARENA_ENGINE_PORT="$ENGINE_PORT")

log "make run on port $WEB_PORT (engines $ENGINE_PORT, $((ENGINE_PORT + 1)))"
T0=$SECONDS
# setsid: a process group of its own (the pid is its id), as a terminal gives `make run`.
setsid "${RUN_ENV[@]}" make -C "$CLONE" --no-print-directory run >"$TMP/make-run.log" 2>&1 </dev/null &
MAKE_PID=$!

RESULT="$("$PY" "$REPO/scripts/fresh_clone_battle.py" --url "http://127.0.0.1:$WEB_PORT" \
    --timeout "$TIMEOUT_S" --pid "$MAKE_PID")"
log "battle played, $((SECONDS - T0)) s after make run started: $RESULT"

JOBS="$(cd "$CLONE" && timeout 120 "${RUN_ENV[@]}" .venv/bin/python manage.py shell -v 0 -c '
import json
from training.models import Job
print(json.dumps([[j.method, j.dataset.name, j.status] for j in Job.objects.order_by("pk")]))' | tail -n 1)"
log "jobs: $JOBS"
"$PY" - "$JOBS" <<'EOF'
import json, sys
jobs = json.loads(sys.argv[1])
methods = sorted(method for method, _, _ in jobs)
failed = [job for job in jobs if job[2] == "failed"]
if methods != ["dpo", "sft"] or failed:
    sys.exit(f"fresh-clone: expected one SFT and one DPO starter job, none failed; got {jobs}")
EOF

log "stopping with SIGINT"
T1=$SECONDS
kill -INT -- "-$MAKE_PID"
LEFT="x"
while [ $((SECONDS - T1)) -lt 90 ]; do
    LEFT="$(leftovers | sort -u | paste -sd, -)"
    [ -z "$LEFT" ] && break
    sleep 1
done
wait "$MAKE_PID" 2>/dev/null || true
if [ -n "$LEFT" ]; then
    log "ERROR: processes left 90 s after SIGINT:"
    ps -o pid,pgid,args -p "$LEFT" || true
    exit 1
fi
log "stopped in $((SECONDS - T1)) s, no process left"
echo "--- make run output ($(wc -l <"$TMP/make-run.log") lines)"
cat "$TMP/make-run.log"
log "OK in $((SECONDS - T0)) s: page, battle, starter jobs queued, clean stop"
