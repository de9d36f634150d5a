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

    .venv/bin/python bench/fake_openai.py --port 8999 [--tokens 8] [--ttft-ms 0] [--token-ms 0]

Plain asyncio (no framework): one process holds thousands of connections on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

WORDS = ("Rivers", " carry", " water", " from", " the", " hills", " down", " to", " the", " sea", ",", " and",
         " towns", " grow", " along", " their", " banks", ".", " ")


def _chunk(model: str, created: int, delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "fake-0", "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
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


async def _stream(writer: asyncio.StreamWriter, request: dict, tokens: int, ttft_s: float, delay_s: float) -> None:
    model = request.get("model", "fake")
    tokens = min(tokens, int(request.get("max_tokens") or tokens))
    created = int(time.time())
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

    def send(data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    send(_chunk(model, created, {"role": "assistant", "content": ""}))
    for index in range(tokens):
        pause = ttft_s if index == 0 else delay_s
        if pause:
            await writer.drain()
            await asyncio.sleep(pause)
        send(_chunk(model, created, {"content": WORDS[index % len(WORDS)]}))
    send(_chunk(model, created, {}, finish="length" if tokens < 1000 else "stop"))
    send(_chunk(model, created, {}, usage={"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}))
    send(b"data: [DONE]\n\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tokens: int, ttft_s: float,
                 delay_s: float) -> None:
    try:
        while True:  # keep-alive: the openai client pools its connections
            try:
                method, path, _headers, body = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if method == "POST" and path.endswith("/chat/completions"):
                request = json.loads(body or b"{}")
                if request.get("stream"):
                    try:
                        await _stream(writer, request, tokens, ttft_s, delay_s)
                    except ConnectionError:  # the client went away mid-answer (a stopped or cancelled side)
                        return
                    continue
                writer.write(_response("400 Bad Request", b'{"error": "the fake server only streams"}'))
            elif method == "GET" and path.endswith("/models"):
                writer.write(_response("200 OK", json.dumps(
                    {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()))
            elif method == "GET" and path == "/health":
                writer.write(_response("200 OK", b""))
            else:
                writer.write(_response("404 Not Found", b"{}"))
            await writer.drain()
    finally:
        writer.close()


async def serve(port: int, tokens: int, token_ms: float, ttft_ms: float = 0.0, host: str = "127.0.0.1") -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, tokens, ttft_ms / 1000.0, token_ms / 1000.0),
                                        host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--tokens", type=int, default=8, help="words per answer (capped by the request's max_tokens)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="pause before the first word")
    parser.add_argument("--token-ms", "--delay-ms", type=float, default=0.0, help="pause before each next word")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.tokens, args.token_ms, args.ttft_ms))


if __name__ == "__main__":
    main()
