"""`make run`'s process supervisor: web (daphne), Celery workers with beat, and the vLLM engines.

Ctrl-C (or SIGTERM) stops everything it started. The engines are the engine supervisor's
(``serving.supervisor``, reconciled every 2 s): the local models, and each full fine-tune's engine
within seconds of its registration; one that dies is restarted (its adapters re-loaded before it
re-enters battles). Any other process that dies stops the whole stack, since running half of it
would mislead.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from serving.supervisor import EngineSupervisor


class Command(BaseCommand):
    help = "Run web, workers and the vLLM engines in the foreground until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--no-engines", action="store_true", help="Don't start vLLM engines (run `manage.py run_engines` elsewhere).")

    def handle(self, *args, **options):
        self.stopping = threading.Event()
        self.children: dict[str, subprocess.Popen] = {}
        self.engines = None if options["no_engines"] else EngineSupervisor(
            say=lambda text: self.stdout.write(text))
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        logs = settings.DATA_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        self._spawn("web", [python, "-m", "config.web", "-b", settings.ARENA_HOST, "-p", str(settings.ARENA_PORT),
                            "config.asgi:application"], logs / "web.log")
        self._spawn("worker", [python, "-m", "celery", "-A", "config", "worker", "-B", "-Q", "default", "-c", "2",
                               "-n", "default@%h", "-s", str(settings.DATA_DIR / "celerybeat-schedule"),
                               "--loglevel", "INFO"], logs / "worker.log")
        self._spawn("training-worker", [python, "-m", "celery", "-A", "config", "worker", "-Q", "training", "-c", "1",
                                        "--prefetch-multiplier", "1", "-n", "training@%h", "--loglevel", "INFO"],
                    logs / "training-worker.log")
        url = f"http://{settings.ARENA_HOST}:{settings.ARENA_PORT}/"
        self.stdout.write(self.style.SUCCESS(f"\nArena: {url}   (admin: {url}admin/)   logs: {logs}"))
        self.stdout.write("Engines take a minute or two to load; battles start once two models are healthy. Ctrl-C stops all.\n")
        try:
            self._supervise()
        finally:
            self._stop_all()

    def _spawn(self, name: str, argv: list[str], log_path) -> None:
        log = open(log_path, "ab")  # noqa: SIM115
        self.children[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               cwd=settings.BASE_DIR, start_new_session=True)
        log.close()

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            for name, child in self.children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with code {child.returncode}; stopping (see var/logs/{name}.log)")
                    self.stopping.set()
            if self.engines is not None and not self.stopping.is_set():
                try:
                    self.engines.reconcile()
                except Exception as exc:  # noqa: BLE001 - a lost database must not stop the stack
                    self.stderr.write(f"engine supervisor round failed: {exc}")
            self.stopping.wait(2.0)

    def _on_signal(self, signum, frame) -> None:
        self.stopping.set()

    def _stop_all(self) -> None:
        self.stdout.write("\nStopping…")
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        if self.engines is not None:
            self.engines.stop_all()
        for child in self.children.values():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        self.stdout.write("Stopped.")
