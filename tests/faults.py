"""Throwaway real parts for the fault tests: a Redis server of their own, on a free port in a
temporary directory, that a test may stop and start again. Never the machine's shared Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import free_port, missing_part


class ThrowawayRedis:
    def __init__(self, directory: Path, port: int):
        self.directory, self.port = directory, port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        """SIGKILL, as an outage would: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_own_redis(directory: Path) -> ThrowawayRedis:
    """A started :class:`ThrowawayRedis` on a free port, or ``missing_part`` (a failure under
    ARENA_REQUIRE_REAL_PARTS=1) when redis-server is not installed or does not start."""
    redis = ThrowawayRedis(directory, free_port())
    try:
        redis.start()
    except RuntimeError as exc:
        missing_part(f"cannot start a Redis of the test's own: {exc}")
    return redis


def start_daphne(repo: Path, port: int, env: dict, log_path: Path, timeout: float = 60.0) -> subprocess.Popen:
    """The real ASGI app served by daphne in a subprocess; returns once /healthz answers."""
    import sys

    import httpx

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            # config.web: daphne with hashed client addresses in its access log (no raw IP on disk).
            [sys.executable, "-m", "config.web", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
            return process
        except httpx.HTTPError:
            if process.poll() is not None:
                break
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"daphne did not start; see {log_path}")


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb in a temp dir of its own, run as the ``postgres`` user when
    this process is root, since PostgreSQL refuses root), on a free port; a test may restart it."""

    def __init__(self, port: int, template: Path | None = None):
        """``template``: a stopped cluster's data folder (:meth:`migrated`) to start from, copied."""
        import tempfile

        self.directory, self.port = Path(tempfile.mkdtemp(prefix="arena-pg-")), port
        self.data = self.directory / "data"
        self.template = template

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/arena"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        import os

        binary = shutil.which(argv[0]) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{argv[0]}"))), None)
        if binary is None:
            raise RuntimeError(f"{argv[0]} (PostgreSQL server binaries) is not installed")
        command = [str(binary), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        import os

        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres")
            if self.template is not None:
                subprocess.run(["cp", "-a", str(self.template), str(self.data)], check=True, timeout=120)
            else:
                self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-m", "fast", "-w", "restart")

    def stop(self, remove: bool = True, mode: str = "immediate") -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)

    @classmethod
    def migrated(cls, port: int, repo: Path, env: dict) -> ThrowawayPostgres:
        """A new cluster with the database ``arena`` migrated (``manage.py migrate`` under ``env``),
        stopped cleanly: its data folder is a template for the clusters of several tests, which
        then skip initdb and the migrations (half a minute on 2 cores)."""
        import sys

        postgres = cls(port)
        postgres.start()
        try:
            postgres.sql("CREATE DATABASE arena", "postgres")
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=repo,
                           env={**env, "DATABASE_URL": postgres.url}, check=True, capture_output=True, timeout=300)
        finally:
            postgres.stop(remove=False, mode="fast")
        return postgres

    def sql(self, statement: str, database: str = "arena") -> list[tuple]:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/{database}", autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []
