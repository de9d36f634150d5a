"""A FAKE OpenAI-compatible streaming server, for load-testing the web stack alone.

It stands in for the engine at the HTTP boundary, and nowhere else: ``POST /v1/chat/completions``
(``stream: true``) answers at once with ``--tokens`` words as Server-Sent Events, the last chunk
carrying the finish reason and the usage; ``GET /v1/models`` and ``GET /health`` answer as vLLM's do.
No model runs, so a load test against it measures Django, Channels, the database and Redis,
not the engine. Never point a real arena at it.

    .venv/bin/python bench/fake_openai.py --port 8999 [--tokens 8] [--delay-ms 0]

Plain asyncio (no framework): one process holds thousands of connections on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

WORDS = ("This", " is", " a", " fake", " answer", " from", " the", " load", " test", " server", ".")


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


async def _stream(writer: asyncio.StreamWriter, request: dict, tokens: int, delay_s: float) -> None:
    model = request.get("model", "fake")
    tokens = min(tokens, int(request.get("max_tokens") or tokens))
    created = int(time.time())
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

    def send(data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    send(_chunk(model, created, {"role": "assistant", "content": ""}))
    for index in range(tokens):
        if delay_s:
            await asyncio.sleep(delay_s)
        send(_chunk(model, created, {"content": WORDS[index % len(WORDS)]}))
    send(_chunk(model, created, {}, finish="length" if tokens < 1000 else "stop"))
    send(_chunk(model, created, {}, usage={"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}))
    send(b"data: [DONE]\n\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tokens: int, delay_s: float) -> None:
    try:
        while True:  # keep-alive: the openai client pools its connections
            try:
                method, path, _headers, body = await _read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if method == "POST" and path.endswith("/chat/completions"):
                request = json.loads(body or b"{}")
                if request.get("stream"):
                    await _stream(writer, request, tokens, delay_s)
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


async def serve(port: int, tokens: int, delay_ms: float, host: str = "127.0.0.1") -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, tokens, delay_ms / 1000.0), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--tokens", type=int, default=8, help="words per answer (capped by the request's max_tokens)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="pause before each word")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.tokens, args.delay_ms))


if __name__ == "__main__":
    main()
