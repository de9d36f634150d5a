"""Retries and stream slots against FakeProvider: a fake at the HTTP boundary (a small local HTTP server
that answers 429 or 401 a set number of times, then streams a real OpenAI-style SSE answer with usage).
What a real provider's refusals look like cannot be produced on demand here, so this fake stands in."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from serving.retry import RetryPolicy
from serving.streaming import ModelTarget, stream_chat


class FakeProvider:
    """FAKE provider: ``refusals`` answers of ``status`` (with Retry-After: 0), then 200 streams."""

    def __init__(self, *, refusals: int = 0, status: int = 429, hold_s: float = 0.0):
        self.refusals, self.status, self.hold_s = refusals, status, hold_s
        self.requests = 0
        self.open_now = self.open_max = 0
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests += 1
                    fake.bodies.append(body)
                    refuse = fake.requests <= fake.refusals
                    fake.open_now += 1
                    fake.open_max = max(fake.open_max, fake.open_now)
                try:
                    self._refuse() if refuse else self._stream()
                finally:
                    with fake.lock:
                        fake.open_now -= 1

            def _refuse(self):
                payload = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                time.sleep(fake.hold_s)
                base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake"}
                chunks = [
                    {**base, "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}},
                ]
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_provider():
    providers = []

    def make(**kwargs) -> FakeProvider:
        providers.append(FakeProvider(**kwargs))
        return providers[-1]

    yield make
    for provider in providers:
        provider.close()


def target(url: str, *, retries: int = 2, slots: int = 0, extra_body: dict | None = None) -> ModelTarget:
    return ModelTarget(url, "key", "fake", {"max_tokens": 4}, timeout_s=10.0, max_concurrency=slots,
                       retry=RetryPolicy(max_retries=retries, backoff_s=0.0), extra_body=extra_body or {})


async def collect(t: ModelTarget) -> tuple[str, object]:
    events = [event async for event in stream_chat(t, [{"role": "user", "content": "hi"}])]
    return "".join(e.text for e in events), events[-1]


async def test_a_429_then_200_is_retried_within_the_policy_and_usage_comes_back(fake_provider):
    provider = fake_provider(refusals=2)
    text, last = await collect(target(provider.url, retries=2, extra_body={"top_k": 5}))
    assert text == "Hello" and provider.requests == 3
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == ("stop", 7, 1)
    assert provider.bodies[-1]["top_k"] == 5 and provider.bodies[-1]["stream_options"] == {"include_usage": True}


async def test_refusals_beyond_the_policy_and_key_errors_are_not_retried_further(fake_provider):
    limited = fake_provider(refusals=2)
    with pytest.raises(openai.RateLimitError):
        await collect(target(limited.url, retries=1))
    assert limited.requests == 2
    unauthorised = fake_provider(refusals=5, status=401)
    with pytest.raises(openai.AuthenticationError):
        await collect(target(unauthorised.url, retries=3))
    assert unauthorised.requests == 1


async def test_an_endpoints_stream_slots_bound_its_open_streams(fake_provider):
    unlimited = fake_provider(hold_s=0.5)
    await asyncio.gather(*(collect(target(unlimited.url)) for _ in range(3)))
    assert unlimited.open_max == 3
    limited = fake_provider(hold_s=0.2)
    await asyncio.gather(*(collect(target(limited.url, slots=1)) for _ in range(3)))
    assert limited.requests == 3 and limited.open_max == 1


def test_backoff_doubles_honours_retry_after_and_is_capped():
    policy = RetryPolicy(max_retries=5, backoff_s=1.0, max_delay_s=10.0)
    assert [policy.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.delay(0, retry_after=6.0) == 6.0 and policy.delay(3, retry_after=60.0) == 10.0
