"""A FAKE OpenAI-compatible streaming server, for load-testing the web stack alone.

It stands in for the engine at the HTTP boundary, and nowhere else: ``POST /v1/chat/completions``
(``stream: true``) answers with ``--tokens`` words as Server-Sent Events, the first word after
``--ttft-ms`` and each next one ``--token-ms`` later (a provider's pace: ``bench/load.py`` measures
the arena's time to first token against this server's own, streamed to directly in the same run),
the last chunk carrying the finish reason and the usage; ``GET /v1/models`` and ``GET /health``
answer as vLLM's do. No model runs, so a load test against it measures Django, Channels, the
database and Redis, not the engine. Never point a real arena at it.

The answer is plain English that names no model, organization or word of ``ARENA_IDENTITY_WORDS``
(nor the load test's contestant names), so votes on it are not flagged as identity leaks.

    .venv/bin/python bench/fake_openai.py --port 8999 [--tokens 8] [--ttft-ms 0] [--token-ms 0] [--provider openai]

It also plays a paid provider's documented quirks at the same boundary (``Quirks``; ``PROVIDERS``
holds one profile per preset, sources in docs/providers.md), for the tests of serving/providers.py:
a required key (401), unknown request fields refused (400, as OpenAI and Gemini do), ``max_tokens``
refused in favour of ``max_completion_tokens`` (OpenAI), a temperature bound, no model list
(Perplexity), and usage sent never, only when asked (OpenAI), on every chunk, or on the finishing
chunk. ``FakeProvider`` runs it in a thread of the test process and records each request body.

Plain asyncio (no framework): one process holds thousands of connections on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

WORDS = ("Rivers", " carry", " water", " from", " the", " hills", " down", " to", " the", " sea", ",", " and",
         " towns", " grow", " along", " their", " banks", ".", " ")


@dataclass(frozen=True)
class Quirks:
    """How the fake differs from a lenient server (the defaults: vLLM-like, usage when asked)."""

    api_key: str | None = None  # required as a Bearer token when set
    accepts: frozenset[str] | None = None  # request fields allowed; others answer 400
    reject_max_tokens: bool = False  # 400 unless the cap comes as max_completion_tokens
    temperature_max: float | None = None  # 400 above it
    usage: str = "asked"  # "asked" (own chunk, if include_usage), "never", "every" (each chunk), "finish"
    models_list: bool = True  # False: GET /models answers 404
    model_id_prefix: str = ""  # what GET /models puts before each id (Gemini: "models/")


_BASE = frozenset({"model", "messages", "stream", "stream_options", "temperature", "top_p", "stop", "n"})
PROVIDERS: dict[str, Quirks] = {
    "lenient": Quirks(),
    "openai": Quirks(accepts=_BASE | {"max_tokens", "max_completion_tokens", "frequency_penalty", "presence_penalty", "seed"},
                     reject_max_tokens=True),
    "anthropic": Quirks(accepts=_BASE | {"max_tokens", "max_completion_tokens"}, temperature_max=1.0,
                        models_list=False),
    "gemini": Quirks(accepts=_BASE | {"max_tokens", "max_completion_tokens"}, usage="finish", model_id_prefix="models/"),
    "perplexity": Quirks(accepts=(_BASE - {"stream_options", "stop", "n"}) | {
        "max_tokens", "frequency_penalty", "presence_penalty"}, usage="every", models_list=False),
}


def _error(status: str, message: str, kind: str = "invalid_request_error") -> bytes:
    return _response(status, json.dumps({"error": {"message": message, "type": kind, "param": None,
                                                   "code": None}}).encode())


def refusal(quirks: Quirks, headers: dict, request: dict | None) -> bytes | None:
    """The error answer a provider with these quirks gives to this request, or None."""
    if quirks.api_key and headers.get("authorization") != f"Bearer {quirks.api_key}":
        return _error("401 Unauthorized", "Incorrect API key provided.", "authentication_error")
    if request is None:
        return None
    if not request.get("messages"):
        return _error("400 Bad Request", "messages: at least one message is required")
    if quirks.accepts is not None:
        unknown = sorted(set(request) - quirks.accepts)
        if unknown:
            return _error("400 Bad Request", f"Unrecognized request argument supplied: {', '.join(unknown)}")
    if quirks.reject_max_tokens and "max_tokens" in request:
        return _error("400 Bad Request", "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                         "Use 'max_completion_tokens' instead.")
    if quirks.temperature_max is not None and float(request.get("temperature") or 0) > quirks.temperature_max:
        return _error("400 Bad Request", f"temperature: must be at most {quirks.temperature_max}")
    return None


def _chunk(model: str, created: int, delta: dict | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "fake-0", "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    return method, path, headers, body


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


async def _stream(writer: asyncio.StreamWriter, request: dict, tokens: int, ttft_s: float, delay_s: float,
                  quirks: Quirks = Quirks()) -> None:
    model = request.get("model", "fake")
    tokens = min(tokens, int(request.get("max_tokens") or request.get("max_completion_tokens") or tokens))
    created = int(time.time())
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

    def send(data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def usage(done: int) -> dict:
        return {"prompt_tokens": 10, "completion_tokens": done, "total_tokens": done + 10}

    every = quirks.usage == "every"
    send(_chunk(model, created, {"role": "assistant", "content": ""}, usage=usage(0) if every else None))
    for index in range(tokens):
        pause = ttft_s if index == 0 else delay_s
        if pause:
            await writer.drain()
            await asyncio.sleep(pause)
        send(_chunk(model, created, {"content": WORDS[index % len(WORDS)]}, usage=usage(index + 1) if every else None))
    finish_usage = usage(tokens) if quirks.usage in ("every", "finish") else None
    send(_chunk(model, created, {}, finish="length" if tokens < 1000 else "stop", usage=finish_usage))
    if quirks.usage == "asked" and (request.get("stream_options") or {}).get("include_usage"):
        send(_chunk(model, created, None, usage=usage(tokens)))
    send(b"data: [DONE]\n\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tokens: int, ttft_s: float,
                 delay_s: float, quirks: Quirks = Quirks(), record: list | None = None) -> None:
    try:
        while True:  # keep-alive: the openai client pools its connections
            try:
                method, path, headers, body = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                return  # a cancelled (shut down) connection ends quietly: nothing waits on it
            request = json.loads(body or b"{}") if method == "POST" else None
            if record is not None and request is not None:
                record.append(request)
            refused = refusal(quirks, headers, request) if path != "/health" else None
            if refused:
                writer.write(refused)
            elif method == "POST" and path.endswith("/chat/completions"):
                if request.get("stream"):
                    try:
                        await _stream(writer, request, tokens, ttft_s, delay_s, quirks)
                    except ConnectionError:  # the client went away mid-answer (a stopped or cancelled side)
                        return
                    continue
                writer.write(_response("400 Bad Request", b'{"error": "the fake server only streams"}'))
            elif method == "GET" and path.endswith("/models") and quirks.models_list:
                writer.write(_response("200 OK", json.dumps(
                    {"object": "list", "data": [{"id": f"{quirks.model_id_prefix}fake-model", "object": "model"}]}).encode()))
            elif method == "GET" and path == "/health":
                writer.write(_response("200 OK", b""))
            else:
                writer.write(_response("404 Not Found", b"{}"))
            await writer.drain()
    finally:
        writer.close()


async def serve(port: int, tokens: int, token_ms: float, ttft_ms: float = 0.0, host: str = "127.0.0.1",
                quirks: Quirks = Quirks()) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, tokens, ttft_ms / 1000.0, token_ms / 1000.0, quirks), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


@dataclass
class FakeProvider:
    """The fake with ``quirks``, served from a thread of this process on a free port while in a
    ``with`` block; ``requests`` holds every request body it received."""

    quirks: Quirks = Quirks()
    tokens: int = 6
    requests: list = field(default_factory=list)
    port: int = 0

    def __enter__(self) -> FakeProvider:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def start() -> None:
            self._server = await asyncio.start_server(
                lambda r, w: handle(r, w, self.tokens, 0.0, 0.0, self.quirks, self.requests), "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(start(), self._loop)
        if not started.wait(10):
            raise RuntimeError("the fake provider did not start")
        return self

    def __exit__(self, *exc) -> None:
        async def stop() -> None:  # the open keep-alive connections end with the server
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, path: str = "/v1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--tokens", type=int, default=8, help="words per answer (capped by the request's max_tokens)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="pause before the first word")
    parser.add_argument("--token-ms", "--delay-ms", type=float, default=0.0, help="pause before each next word")
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="lenient", help="whose quirks to play")
    parser.add_argument("--api-key", default=None, help="require this Bearer key")
    args = parser.parse_args()
    quirks = PROVIDERS[args.provider]
    if args.api_key:
        quirks = Quirks(**{**quirks.__dict__, "api_key": args.api_key})
    asyncio.run(serve(args.port, args.tokens, args.token_ms, args.ttft_ms, quirks=quirks))


if __name__ == "__main__":
    main()
