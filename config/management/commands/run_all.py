"""`make run`'s process supervisor: web (daphne), Celery workers with beat, and the vLLM engines.

Every child restarts on its own: the web and the workers here, with the rules of
``config.supervision`` (backoff 5 s, 10 s, 20 s, ... and a give-up count; the same rules as the
engines'), the engines under the engine supervisor (``serving.supervisor``, reconciled every 2 s):
the local models, and each full fine-tune's engine within seconds of its registration; one that
dies is restarted (its adapters re-loaded before it re-enters battles). `make run` never stops by
itself: a child that keeps failing is given up (said here and in its log) while the rest runs on.
The web needs neither the workers nor the broker to play battles and record votes (refits wait
and coalesce: ``arena.leaderboard.refresh``), and a worker that loses Redis reconnects by itself
(``config.broker_restore``).

Ctrl-C (or SIGTERM) stops everything it started, each child's whole process group. Its children
die with it even when it is SIGKILLed: run_all's own children get ``PR_SET_PDEATHSIG``
(``serving.engines.die_with_parent``), and every process group it started (engines included) is
watched by a ``config.processes.GroupGuard`` that stops them once run_all is gone. Each round it
also rotates ``ARENA_DATA_DIR/logs/*.log`` past ``ARENA_LOG_MAX_BYTES`` (``config.processes.rotate_log``).

Production keeps its own supervisor (compose restart policies, Kubernetes); this one is for `make run`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from config.processes import GroupGuard, rotate_log
from config.supervision import after_exit
from serving.engines import die_with_parent, group_members, stop_group
from serving.supervisor import EngineSupervisor

POLL_S = 2.0


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0
    given_up: bool = False


def children_argv(python: str) -> dict[str, list[str]]:
    """The web and the workers `make run` runs (the engines are the engine supervisor's)."""
    celery = [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO"]
    return {
        "web": [python, "-m", "config.web", "-b", settings.ARENA_HOST, "-p", str(settings.ARENA_PORT),
                "config.asgi:application"],
        "worker": [*celery, "-B", "-Q", "default", "-c", "2", "-n", "default@%h",
                   "-s", str(settings.ARENA_DATA_DIR / "celerybeat-schedule")],
        "training-worker": [*celery, "-Q", "training", "-c", "1", "--prefetch-multiplier", "1", "-n", "training@%h"],
    }


class Command(BaseCommand):
    help = "Run web, workers and the vLLM engines in the foreground until Ctrl-C; restart any that exits."

    def add_arguments(self, parser):
        parser.add_argument("--no-engines", action="store_true", help="Don't start vLLM engines (run `manage.py run_engines` elsewhere).")

    def handle(self, *args, **options):
        self.stopping = threading.Event()
        self.logs = settings.ARENA_DATA_DIR / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.guard = GroupGuard()
        self.engines = None if options["no_engines"] else EngineSupervisor(
            say=lambda text: self.stdout.write(text))
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        self.children = [Child(name, argv, self.logs / f"{name}.log")
                         for name, argv in children_argv(sys.executable).items()]
        try:
            for child in self.children:
                self._spawn(child)
            url = f"http://{settings.ARENA_HOST}:{settings.ARENA_PORT}/"
            self.stdout.write(self.style.SUCCESS(f"\nArena: {url}   (admin: {url}admin/)   logs: {self.logs}"))
            self.stdout.write("Engines take a minute or two to load; battles start once two models are healthy. "
                              "Ctrl-C stops all.\n")
            self._supervise()
        finally:
            self._stop_all()

    def _say(self, text: str, log_path: Path | None = None) -> None:
        self.stderr.write(text)
        if log_path is not None:
            with open(log_path, "a") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} run_all: {text}\n")

    def _spawn(self, child: Child) -> None:
        log = open(child.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        try:
            child.process = subprocess.Popen(child.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             cwd=settings.BASE_DIR, start_new_session=True, preexec_fn=die_with_parent)
        finally:
            log.close()
        child.started_at = time.monotonic()
        self.guard.watch(child.process.pid)  # start_new_session: the leader's pid is the group id

    def _check(self, child: Child, now: float) -> None:
        """One child's round: note an exit (and clear its group), restart it when its backoff is over."""
        process = child.process
        if process is not None and process.poll() is not None:
            child.process = None
            if stop_group(None, process.pid, timeout=5.0):  # what it left behind (pool processes) goes too
                self.guard.forget(process.pid)
            decision = after_exit(child.failures, now - child.started_at, now)
            child.failures, child.retry_at, child.given_up = decision.failures, decision.retry_at, decision.give_up
            if child.given_up:
                self._say(f"{child.name} exited with code {process.returncode} {child.failures} times in a row; "
                          f"not restarted (see {child.log_path}); the rest runs on", child.log_path)
            else:
                self._say(f"{child.name} exited with code {process.returncode}; restarting in "
                          f"{decision.retry_at - now:.0f} s (see {child.log_path})", child.log_path)
        if child.process is None and not child.given_up and now >= child.retry_at and not self.stopping.is_set():
            self._spawn(child)

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
            if self.engines is not None and not self.stopping.is_set():
                try:
                    self.engines.reconcile()
                except Exception as exc:  # noqa: BLE001 - a lost database must not stop the stack
                    self._say(f"engine supervisor round failed: {exc}")
                self._watch_engines()
            for path in self.logs.glob("*.log"):
                rotate_log(path, settings.ARENA_LOG_MAX_BYTES, settings.ARENA_LOG_BACKUPS)
            self.stopping.wait(POLL_S)

    def _watch_engines(self) -> None:
        """Tell the guard about each engine's group, and forget the groups that are gone (no stale pgid)."""
        engines = {pgid for pgid in self.engines.pgids().values() if pgid is not None}
        for pgid in engines:
            self.guard.watch(pgid)
        ours = {child.process.pid for child in self.children if child.process is not None}
        for pgid in self.guard.known - engines - ours:
            if not group_members(pgid):
                self.guard.forget(pgid)

    def _on_signal(self, signum, frame) -> None:
        self.stopping.set()

    def _stop_all(self) -> None:
        self.stdout.write("\nStopping…")
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        if self.engines is not None:
            self.engines.stop_all()
        for child in self.children:
            if child.process is not None:
                stop_group(child.process, child.process.pid, timeout=15.0)
        self.guard.close()
        left = [c.name for c in self.children if c.process is not None and group_members(c.process.pid)]
        self.stdout.write(f"Stopped (still running: {', '.join(left)})." if left else "Stopped.")
