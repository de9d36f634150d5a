"""Process plumbing of `make run`'s supervisor: no child outlives it, and its logs stay bounded.

* :class:`GroupGuard` is a small process of its own (``python -m config.processes``) that the
  supervisor tells, on its stdin, which process groups it started (``+PGID``) and which are gone
  (``-PGID``). When that pipe closes -- the supervisor stopped, or was SIGKILLed -- the guard
  SIGTERMs every group still alive, SIGKILLs what is left after 5 s, and exits. It covers the
  grandchildren that ``PR_SET_PDEATHSIG`` (``serving.engines.die_with_parent``, set on run_all's
  own children) cannot: Celery's pool processes, vLLM's engine core, and the engines started from
  the engine supervisor's threads. It ignores SIGINT and SIGTERM (Ctrl-C reaches the terminal's
  whole process group) and runs in a session of its own, so it is the last to go.
* :func:`rotate_log` is the supervisor's log rotation (copy-then-truncate, as logrotate's
  ``copytruncate``): children write their logs in append mode, so after the truncation they go on
  writing at the start of the emptied file; ``name.log.1`` is the newest copy, ``name.log.N`` the
  oldest kept. Lines written between the copy and the truncation (a few milliseconds) are lost.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from serving.engines import group_members, signal_group

GRACE_S = 5.0
REPO = Path(__file__).resolve().parent.parent


class GroupGuard:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "config.processes"], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        self.known: set[int] = set()

    def _send(self, line: str) -> None:
        try:
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def watch(self, pgid: int) -> None:
        if pgid not in self.known:
            self.known.add(pgid)
            self._send(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        if pgid in self.known:
            self.known.discard(pgid)
            self._send(f"-{pgid}")

    def close(self, timeout: float = 2 * GRACE_S + 5) -> None:
        """Close the pipe (the guard stops what is left) and wait for the guard to exit."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


def stop_groups(pgids: set[int], grace_s: float = GRACE_S) -> None:
    alive = {pgid for pgid in pgids if group_members(pgid)}
    for pgid in alive:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {pgid for pgid in alive if group_members(pgid)}
    for pgid in alive:
        signal_group(pgid, signal.SIGKILL)


def guard_main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pgids: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] in "+-" and line[1:].isdigit():
            (pgids.add if line[0] == "+" else pgids.discard)(int(line[1:]))
    stop_groups(pgids)


def rotate_log(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate ``path`` when it is over ``max_bytes`` (0: never), keeping ``backups`` copies; True if rotated."""
    try:
        if max_bytes <= 0 or path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    if backups > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as handle:
        handle.truncate(0)
    return True


if __name__ == "__main__":
    guard_main()
