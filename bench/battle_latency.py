"""First-token latency: what a WebSocket rater sees against the vLLM endpoint straight.

Runs in one process: starts (or reuses, with --vllm-url) a real vLLM CPU server
with SmolLM2, serves the ASGI app with daphne on a scratch SQLite database, then
alternates N direct streamed requests and N battles over /ws/arena/, and prints
the medians and the overhead ratio. Target: under 10% or under 20 ms added.

    .venv/bin/python bench/battle_latency.py [--rounds 20] [--vllm-url http://127.0.0.1:8101]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_engine(log_name: str):
    """A SmolLM2 vLLM CPU engine of the bench's own on a free port, ready (stop() it)."""
    from django.conf import settings

    from serving.engines import EngineProcess
    from serving.local_models import LOCAL_MODELS

    spec = LOCAL_MODELS["smollm2"].engine_spec()
    spec.port = free_port()
    spec.log_path = settings.DATA_DIR / "logs" / log_name
    engine = EngineProcess(spec)
    engine.start()
    print(f"starting vLLM on {spec.root_url} (log {spec.log_path}) ...", flush=True)
    engine.wait_ready(settings.ARENA_ENGINE_START_TIMEOUT_S)
    return engine


async def direct_ttft(client, prompt: str) -> float:
    """Two concurrent streams straight to vLLM, as a battle makes: time to the first token of either."""
    start = time.perf_counter()
    first: list[float] = []

    async def one() -> None:
        stream = await client.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": prompt}],
            stream=True, max_tokens=8, temperature=0.0,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not first:
                first.append(time.perf_counter() - start)

    await asyncio.gather(one(), one())
    return first[0]


async def websocket_ttft(ws_url: str, prompt: str) -> float:
    import websockets

    async with websockets.connect(ws_url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "new_battle"}))
        battle = json.loads(await ws.recv())
        assert battle["type"] == "battle", battle
        start = time.perf_counter()
        await ws.send(json.dumps({"type": "prompt", "battle_id": battle["battle_id"], "text": prompt}))
        ttft = None
        done = 0
        while done < 2:
            frame = json.loads(await ws.recv())
            if frame["type"] == "delta" and ttft is None:
                ttft = time.perf_counter() - start
            elif frame["type"] == "side_done":
                done += 1
        return ttft


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--vllm-url", default="")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="arena-bench-"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}", "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("REDIS_URL", None)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    from serving.models import Endpoint, ServedModel

    engine = None
    vllm_url = args.vllm_url.rstrip("/")
    if not vllm_url:
        engine = start_engine("bench-engine.log")
        vllm_url = engine.spec.root_url

    call_command("migrate", verbosity=0)
    # Both sides greedy with 8 tokens: first-token latency is what is measured.
    for index in range(2):
        endpoint = Endpoint.objects.create(name=f"bench-{index}", base_url=f"{vllm_url}/v1", healthy=True)
        ServedModel.objects.create(public_name=f"bench-{'ab'[index]}", endpoint=endpoint,
                                   engine_model_id="smollm2-135m-instruct",
                                   generation={"temperature": 0.0, "max_tokens": 8})
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "config.web", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        prompt = "Say hello in one short sentence."
        ws_url = f"ws://127.0.0.1:{port}/ws/arena/"

        async def run() -> tuple[list[float], list[float]]:
            import openai

            client = openai.AsyncOpenAI(base_url=f"{vllm_url}/v1", api_key="EMPTY", max_retries=0)
            await direct_ttft(client, prompt)  # warm-up both paths
            await websocket_ttft(ws_url, prompt)
            direct, web_side = [], []
            for _ in range(args.rounds):
                direct.append(await direct_ttft(client, prompt))
                web_side.append(await websocket_ttft(ws_url, prompt))
            await client.close()
            return direct, web_side

        direct, through_web = asyncio.run(run())
    finally:
        web.terminate()
        if engine:
            engine.stop()
    d, w = statistics.median(direct) * 1000, statistics.median(through_web) * 1000
    print(f"rounds: {args.rounds} (each: two direct concurrent streams, then one two-sided battle turn over the WebSocket)")
    print(f"direct vLLM time to first token, median: {d:.1f} ms  (p90 {sorted(direct)[int(0.9 * len(direct))] * 1000:.1f})")
    print(f"WebSocket battle time to first token, median: {w:.1f} ms  (p90 {sorted(through_web)[int(0.9 * len(through_web))] * 1000:.1f})")
    print(f"overhead: {w - d:+.1f} ms, ratio web/direct = {w / d:.2f}x  (target: < 1.10x or < 20 ms)")
    print("both paths send two concurrent streams to the same engine, so the difference is the web stack's:")
    print("WebSocket frame in, battle + turn rows written, two openai streams, frames out.")


if __name__ == "__main__":
    main()
