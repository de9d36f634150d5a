"""Local vLLM engine processes: start, wait until ready, stop.

Pure process management (no ORM), so the test suite can start its one
engine before Django's database exists. ``EngineError`` carries the tail of
the engine's log when it fails to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from serving.errors import EngineError
from serving.vllm_launch import build_vllm_command


@dataclass
class EngineSpec:
    name: str
    model_dir: str
    served_name: str
    port: int
    python: str
    log_path: Path
    chat_template: str | None = None
    device: str = "cpu"
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EngineProcess:
    def __init__(self, spec: EngineSpec):
        self.spec = spec
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        spec = self.spec
        if not Path(spec.python).exists():
            raise EngineError(f"engine python {spec.python} not found: run `make engine` (scripts/engine_venv.sh)")
        if not (Path(spec.model_dir) / "config.json").exists():
            raise EngineError(f"model directory {spec.model_dir} is not ready: run `manage.py prepare_models`")
        argv, env_add = build_vllm_command(
            python=spec.python, model_dir=spec.model_dir, served_name=spec.served_name, port=spec.port,
            host=spec.host, chat_template=spec.chat_template, device=spec.device, extra_args=tuple(spec.extra_args),
        )
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(spec.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        # Its own process group, so stop() takes down vLLM's worker processes too.
        self.process = subprocess.Popen(
            argv, env={**os.environ, **env_add}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.spec.root_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EngineError(
                    f"engine {self.spec.name} exited with code {self.process.returncode}:\n{log_tail(self.spec.log_path)}"
                )
            if self.is_ready():
                return
            time.sleep(1.0)
        raise EngineError(f"engine {self.spec.name} not ready after {timeout:.0f} s:\n{log_tail(self.spec.log_path)}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass


@contextmanager
def running_engine(spec: EngineSpec, timeout: float) -> Iterator[EngineProcess]:
    """Start an engine, wait until it is ready, and stop it on leaving. Raises EngineError (stopped)."""
    engine = EngineProcess(spec)
    engine.start()
    try:
        engine.wait_ready(timeout)
        yield engine
    finally:
        engine.stop()
