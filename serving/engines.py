"""Local vLLM engine processes: start, wait until ready, stop.

Pure process management (no ORM), so the test suite can start its one
engine before Django's database exists. ``EngineError`` carries the tail of
the engine's log when it fails to start.
"""

from __future__ import annotations

import ctypes
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

#: linux/prctl.h: deliver a signal to this process when its parent dies.
PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


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
        #: The process group of the latest start; outlives ``process`` (run_all drops a dead one).
        self.pgid: int | None = None

    def start(self) -> None:
        """Spawn the engine in a new process group, first killing what is left of the previous one."""
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
        self.stop()
        log = open(spec.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        # Its own process group, so stop() takes down vLLM's worker processes too.
        self.process = subprocess.Popen(
            argv, env={**os.environ, **env_add}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pgid = self.process.pid  # start_new_session: the leader's pid is the group id
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
        """Stop the engine's whole process group, also when its API server already died.

        vLLM's API server forks ``VLLM::EngineCore`` into the same group; a SIGKILLed
        server leaves that child running (holding memory and, on a GPU, the device), so a
        dead leader is no reason to return early. Returns once no process of the group is left.
        """
        if self.pgid is not None and stop_group(self.process, self.pgid, timeout):
            self.pgid = None  # never signal a reused group id later


def stop_group(process: subprocess.Popen | None, pgid: int, timeout: float = 20.0) -> bool:
    """SIGTERM a process group (its leader ``process`` first, when it lives), SIGKILL what is left after
    ``timeout``; True once no process of the group is left (also when the leader had already died)."""
    if process is not None and process.poll() is None:
        signal_group(pgid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(pgid, signal.SIGKILL)
            process.wait(5)
    # The leader is gone (stopped or died): whatever is left of its group goes now.
    if group_members(pgid):
        signal_group(pgid, signal.SIGTERM)
        if not _wait_group_gone(pgid, timeout):
            signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(pgid, 5)
    return not group_members(pgid)


def die_with_parent() -> None:
    """``preexec_fn`` of a supervised child: SIGKILL when its parent dies (Linux
    ``prctl(PR_SET_PDEATHSIG)``; a no-op elsewhere). Runs in the child between fork and exec, so
    it only calls a function looked up beforehand (no import, no allocation-heavy work there).

    The signal fires when the *thread* that forked the child ends, so only children started from a
    thread that lives as long as the supervisor use it (run_all's main thread); engines, started
    from the engine supervisor's short-lived threads, are covered by ``config.processes.GroupGuard``."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, read from /proc (Linux)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces or parentheses, so split after the last ")".
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.2)
    return not group_members(pgid)


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
