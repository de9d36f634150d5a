"""`make run`'s process supervisor: web (daphne), Celery workers with beat, and the local vLLM engines.

Ctrl-C (or SIGTERM) stops everything it started. An engine that dies is
restarted (its adapters are re-loaded by the health task); any other process
that dies stops the whole stack, since running half of it would mislead.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from serving import services
from serving.engines import EngineProcess
from serving.errors import EngineError
from serving.local_models import enabled_local_models
from serving.models import Endpoint


class Command(BaseCommand):
    help = "Run web, workers and local engines in the foreground until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--no-engines", action="store_true", help="Don't start local vLLM engines.")

    def handle(self, *args, **options):
        self.stopping = threading.Event()
        self.children: dict[str, subprocess.Popen] = {}
        self.engines: dict[str, EngineProcess] = {}
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
        if not options["no_engines"]:
            for local in enabled_local_models():
                engine = EngineProcess(local.engine_spec())
                self.engines[local.key] = engine
                threading.Thread(target=self._start_engine, args=(local.key, engine), daemon=True).start()
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

    def _start_engine(self, key: str, engine: EngineProcess) -> None:
        self.stdout.write(f"engine {key}: starting (log: {engine.spec.log_path})")
        try:
            engine.start()
            engine.wait_ready(settings.ENGINE_START_TIMEOUT_S)
        except EngineError as exc:
            self.stderr.write(f"engine {key} failed to start: {exc}")
            engine.stop()
            engine.process = None  # not restarted in a loop: fix the cause and restart `make run`
            return
        endpoint = Endpoint.objects.get(name=f"local-{key}")
        services.endpoint_refresh(endpoint)  # adapters re-loaded before it re-enters battles
        self.stdout.write(self.style.SUCCESS(f"engine {key}: ready on {engine.spec.root_url}"))

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            for name, child in self.children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with code {child.returncode}; stopping (see var/logs/{name}.log)")
                    self.stopping.set()
            for key, engine in self.engines.items():
                if engine.process is not None and not engine.alive() and not self.stopping.is_set():
                    self.stderr.write(f"engine {key} died; restarting")
                    engine.process = None
                    threading.Thread(target=self._start_engine, args=(key, engine), daemon=True).start()
            self.stopping.wait(2.0)

    def _on_signal(self, signum, frame) -> None:
        self.stopping.set()

    def _stop_all(self) -> None:
        self.stdout.write("\nStopping…")
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for engine in self.engines.values():
            engine.stop()
        for child in self.children.values():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        self.stdout.write("Stopped.")
