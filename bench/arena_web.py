"""What the battle benches share: a scratch arena (SQLite, no Redis, no limits), real vLLM engines,
daphne serving the ASGI app (one per ``ARENA_STREAM`` mode if asked), and one battle turn over
``/ws/arena/`` with every frame and its arrival time.

Import it before Django is set up: :func:`scratch_arena` sets the environment, then sets Django up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Settings of the web processes the benches start: development mode, every rate limit off (a
#: bench battles faster than a rater may), no error-rate hold (a busy shared CPU can time out).
WEB_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "true",
    "ARENA_LIMIT_BATTLES_PER_MINUTE": "0",
    "ARENA_LIMIT_CONCURRENT_GENERATIONS": "0",
    "ARENA_LIMIT_VOTES_PER_HOUR": "0",
    "ARENA_LIMIT_VOTES_PER_DAY": "0",
    "ARENA_PAIRING_MAX_ERROR_RATE": "2",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scratch_arena(scratch: Path) -> dict[str, str]:
    """Point this process at a new SQLite database in ``scratch``, set Django up and migrate;
    returns the environment for the web processes."""
    os.environ.update({**WEB_ENV, "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
                       "ARENA_DATA_DIR": str(scratch)})
    os.environ.setdefault("ARENA_MODELS_DIR", str(REPO / "var" / "models"))
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return {**os.environ}


def start_engine(key: str):
    """The local model ``key``'s vLLM CPU engine (its chat template included) on a free port, ready
    (stop() it)."""
    from django.conf import settings

    from serving.engines import EngineProcess  # Django is set up in main(), after this module loads
    from serving.local_models import LOCAL_MODELS  # Django is set up in main(), after this module loads

    spec = LOCAL_MODELS[key].engine_spec()
    spec.port = free_port()
    spec.log_path = settings.ARENA_DATA_DIR / "logs" / f"bench-engine-{key}.log"
    engine = EngineProcess(spec)
    engine.start()
    print(f"starting vLLM for {key} on {spec.root_url} (log {spec.log_path}) ...", flush=True)
    engine.wait_ready(settings.ARENA_ENGINE_START_TIMEOUT_S)
    return engine


def start_web(env: dict[str, str], **overrides: str) -> tuple[subprocess.Popen, str]:
    """daphne serving the app with ``env`` and ``overrides``; returns it and its ``ws://…/ws/arena/``."""
    import httpx

    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "config.web", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=REPO, env={**env, **overrides}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        if web.poll() is not None:
            raise SystemExit(f"the web process ({overrides}) exited with {web.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return web, f"ws://127.0.0.1:{port}/ws/arena/"
        except httpx.HTTPError:
            time.sleep(0.2)
    web.terminate()
    raise SystemExit("the web process did not answer /healthz in 60 s")


@dataclass
class Turn:
    """One battle turn as the client saw it: ``(seconds since the prompt was sent, frame)``."""

    battle_id: str
    frames: list[tuple[float, dict]] = field(default_factory=list)

    def first_delta_s(self) -> float | None:
        return next((t for t, f in self.frames if f["type"] == "delta"), None)

    def text(self, side: str) -> str:
        return "".join(f["text"] for _, f in self.frames if f["type"] == "delta" and f["side"] == side)


async def play_turn(ws_url: str, prompt: str, *, timeout_s: float = 300) -> Turn:
    """A new battle and its first turn, recorded until ``turn_done`` (an ``error`` frame raises)."""
    import websockets

    async with websockets.connect(ws_url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "new_battle"}))
        battle = json.loads(await ws.recv())
        if battle["type"] != "battle":
            raise RuntimeError(f"no battle: {battle}")
        turn = Turn(battle["battle_id"])
        start = time.perf_counter()
        await ws.send(json.dumps({"type": "prompt", "battle_id": turn.battle_id, "text": prompt}))
        deadline = start + timeout_s
        while True:
            frame = json.loads(await ws.recv())
            turn.frames.append((time.perf_counter() - start, frame))
            if frame["type"] == "error":
                raise RuntimeError(f"battle error: {frame}")
            if frame["type"] == "turn_done" or time.perf_counter() > deadline:
                return turn
