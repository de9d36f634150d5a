"""Streaming chat completions from a served model, through the official openai client.

Each endpoint's terms apply to its streams: at most ``max_concurrency`` open at
once per event loop (others wait for a slot), ``timeout_s`` for connecting and
between chunks, retries of a refused or unreachable opening (``serving.retry``),
and its extra request fields. Each request is fitted to the endpoint's provider
(``serving.providers.shape_request``: the token cap's field name, the temperature's bound, no
sampling field the provider does not accept). The last event carries the API's token usage
(asked for with ``stream_options.include_usage`` where the provider takes it; the last usage a
chunk carried counts) or ``None`` where the server sent none.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai

from serving.models import ServedModel
from serving.providers import ANY, ProviderRules, rules_for, shape_request
from serving.retry import RetryPolicy, with_retries

logger = logging.getLogger(__name__)

# Per event loop, since a client's connection pool belongs to the loop that opened it.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def client_for(base_url: str, api_key: str, timeout_s: float = 120.0) -> openai.AsyncOpenAI:
    """One client per endpoint and event loop, so connections are pooled across battles."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (base_url, api_key, timeout_s)
    if key not in per_loop:
        per_loop[key] = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s)
    return per_loop[key]


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def slots_for(base_url: str, limit: int) -> asyncio.Semaphore | None:
    """The endpoint's stream slots in this event loop (None: no limit)."""
    if limit <= 0:
        return None
    per_loop = _slots.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((base_url, limit), asyncio.Semaphore(limit))


@dataclass(frozen=True)
class ModelTarget:
    """What a stream needs to know of a model, copied out of the ORM so async code needs no DB."""

    base_url: str
    api_key: str
    engine_model_id: str
    params: dict
    timeout_s: float = 120.0
    max_concurrency: int = 0
    retry: RetryPolicy = RetryPolicy()
    extra_body: dict = field(default_factory=dict)
    rules: ProviderRules = ANY

    @classmethod
    def of(cls, model: ServedModel, *, max_tokens: int) -> ModelTarget:
        """The model's target, answering at most ``max_tokens`` tokens (the caller's limit)."""
        params = model.generation_params(max_tokens=max_tokens)
        endpoint = model.endpoint
        return cls(
            endpoint.base_url, endpoint.api_key(), model.engine_model_id, params,
            timeout_s=endpoint.timeout_s, max_concurrency=endpoint.max_concurrency,
            retry=RetryPolicy(max_retries=endpoint.retry_max, backoff_s=endpoint.retry_backoff_s),
            extra_body=dict(endpoint.extra_body or {}), rules=rules_for(endpoint.preset),
        )


@dataclass
class StreamEvent:
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int | None = None
    prompt_tokens: int | None = None


# Parameters the OpenAI schema does not have, which vLLM accepts in the request body.
_EXTRA_BODY_KEYS = {"repetition_penalty", "top_k", "min_p"}


async def stream_chat(target: ModelTarget, messages: list[dict]) -> AsyncIterator[StreamEvent]:
    """Yield text deltas, then one event with the finish reason and the API's token usage (None if absent).

    Raises openai.OpenAIError (or asyncio.CancelledError when cancelled).
    """
    slots = slots_for(target.base_url, target.max_concurrency)
    if slots is None:
        async for event in _stream(target, messages):
            yield event
        return
    async with slots:
        async for event in _stream(target, messages):
            yield event


async def _stream(target: ModelTarget, messages: list[dict]) -> AsyncIterator[StreamEvent]:
    params, extra_body, dropped = shape_request(target.rules, target.params, target.extra_body)
    if dropped:
        logger.warning("%s: not sending %s (%s does not accept it)", target.engine_model_id, ", ".join(dropped),
                       target.rules.name)
    extra_body.update({key: params.pop(key) for key in list(params) if key in _EXTRA_BODY_KEYS})
    client = client_for(target.base_url, target.api_key, target.timeout_s)
    usage_option = {"stream_options": {"include_usage": True}} if target.rules.stream_usage else {}

    def open_stream():
        return client.chat.completions.create(
            model=target.engine_model_id,
            messages=messages,
            stream=True,
            extra_body=extra_body or None,
            **usage_option,
            **params,
        )

    stream = await with_retries(open_stream, target.retry)
    finish_reason = None
    tokens = prompt_tokens = None
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                tokens, prompt_tokens = chunk.usage.completion_tokens, chunk.usage.prompt_tokens
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    yield StreamEvent(text=choice.delta.content)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    finally:
        await stream.close()
    yield StreamEvent(finish_reason=finish_reason or "stop", completion_tokens=tokens, prompt_tokens=prompt_tokens)
