"""First-token latency: what a WebSocket rater sees against the vLLM endpoint straight, and what
pacing the stream costs (``ARENA_STREAM``).

Runs in one process: starts (or reuses, with --vllm-url) a real vLLM CPU server with SmolLM2,
serves the ASGI app with daphne on a scratch SQLite database, one web process per stream mode
(``tokens``: one frame per engine chunk, the stream before pacing; ``paced``, the default;
``whole``), then alternates, N times, two direct concurrent streamed requests and one battle
turn in each mode, and prints the medians: the web stack's overhead (``tokens`` against
direct; target under 10% or under 20 ms) and, for each mode, the time to the first visible
word (the first ``delta``) and to the end of the turn, with its ratio to ``tokens``.

    .venv/bin/python bench/battle_latency.py [--rounds 20] [--max-tokens 48] [--smoke]
        [--vllm-url http://127.0.0.1:8101]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.arena_web import free_port, play_turn, scratch_arena, start_web  # noqa: E402

MODES = ("tokens", "paced", "whole")


def start_engine(log_name: str):
    """A SmolLM2 vLLM CPU engine of the bench's own on a free port, ready (stop() it)."""
    from django.conf import settings

    from serving.engines import EngineProcess  # Django is set up in main(), after this module loads
    from serving.local_models import LOCAL_MODELS  # Django is set up in main(), after this module loads

    spec = LOCAL_MODELS["smollm2"].engine_spec()
    spec.port = free_port()
    spec.log_path = settings.ARENA_DATA_DIR / "logs" / log_name
    engine = EngineProcess(spec)
    engine.start()
    print(f"starting vLLM on {spec.root_url} (log {spec.log_path}) ...", flush=True)
    engine.wait_ready(settings.ARENA_ENGINE_START_TIMEOUT_S)
    return engine


async def direct_ttft(client, prompt: str, max_tokens: int) -> float:
    """Two concurrent streams straight to vLLM, as a battle makes: time to the first token of either."""
    start = time.perf_counter()
    first: list[float] = []

    async def one() -> None:
        stream = await client.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": prompt}],
            stream=True, max_tokens=max_tokens, temperature=0.0,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not first:
                first.append(time.perf_counter() - start)

    await asyncio.gather(one(), one())
    return first[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=48, help="each side's answer length (both greedy)")
    parser.add_argument("--smoke", action="store_true", help="3 rounds of 16 tokens: checks the bench runs")
    parser.add_argument("--vllm-url", default="")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.max_tokens = 3, 16

    env = scratch_arena(Path(tempfile.mkdtemp(prefix="arena-bench-")))
    from serving.models import Endpoint, ServedModel  # Django is set up in main(), after this module loads

    engine = None
    vllm_url = args.vllm_url.rstrip("/")
    if not vllm_url:
        engine = start_engine("bench-engine.log")
        vllm_url = engine.spec.root_url
    for index in range(2):
        endpoint = Endpoint.objects.create(name=f"bench-{index}", base_url=f"{vllm_url}/v1", healthy=True)
        ServedModel.objects.create(public_name=f"bench-{'ab'[index]}", endpoint=endpoint,
                                   engine_model_id="smollm2-135m-instruct",
                                   generation={"temperature": 0.0, "max_tokens": args.max_tokens})
    webs = []
    try:
        ws_urls = {}
        for mode in MODES:
            web, ws_urls[mode] = start_web(env, ARENA_STREAM=mode)
            webs.append(web)
        prompt = "Explain in two sentences why the sky is blue."
        direct, first, end = asyncio.run(rounds(vllm_url, ws_urls, prompt, args))
    finally:
        for web in webs:
            web.terminate()
        if engine:
            engine.stop()
    report(direct, first, end, args)


async def rounds(vllm_url: str, ws_urls: dict[str, str], prompt: str, args) -> tuple[list, dict, dict]:
    import openai

    client = openai.AsyncOpenAI(base_url=f"{vllm_url}/v1", api_key="EMPTY", max_retries=0)
    await direct_ttft(client, prompt, args.max_tokens)  # warm-up every path
    for mode in MODES:
        await play_turn(ws_urls[mode], prompt)
    direct: list[float] = []
    first: dict[str, list[float]] = {mode: [] for mode in MODES}
    end: dict[str, list[float]] = {mode: [] for mode in MODES}
    for index in range(args.rounds):
        direct.append(await direct_ttft(client, prompt, args.max_tokens))
        for mode in MODES[index % 3:] + MODES[: index % 3]:
            turn = await play_turn(ws_urls[mode], prompt)
            first[mode].append(turn.first_delta_s())
            end[mode].append(turn.frames[-1][0])
    await client.close()
    return direct, first, end


def report(direct: list[float], first: dict, end: dict, args) -> None:
    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:7.1f} ms (p90 {sorted(values)[int(0.9 * len(values))] * 1000:7.1f})"

    print(f"rounds: {args.rounds}; each: two direct concurrent streams, then one two-sided battle turn in each stream "
          f"mode (rotating order); SmolLM2, greedy, {args.max_tokens} tokens a side")
    d, w = statistics.median(direct) * 1000, statistics.median(first["tokens"]) * 1000
    print(f"direct vLLM time to first token: {ms(direct)}")
    print(f"web overhead (tokens mode, first delta): {w - d:+.1f} ms, ratio web/direct = {w / d:.2f}x  "
          "(target: < 1.10x or < 20 ms)")
    base_first, base_end = statistics.median(first["tokens"]), statistics.median(end["tokens"])
    for mode in MODES:
        f, e = statistics.median(first[mode]), statistics.median(end[mode])
        print(f"{mode:6}  first visible word: {ms(first[mode])}  {f / base_first:5.2f}x tokens ({(f - base_first) * 1000:+.0f} ms)"
              f"   turn done: {ms(end[mode])}  {e / base_end:5.2f}x")


if __name__ == "__main__":
    main()
