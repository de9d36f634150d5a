"""Streaming chat completions from a served model, through the official openai client."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai

from serving.models import ServedModel

# Per event loop, since a client's connection pool belongs to the loop that opened it.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def client_for(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    """One client per endpoint and event loop, so connections are pooled across battles."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (base_url, api_key)
    if key not in per_loop:
        per_loop[key] = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120.0)
    return per_loop[key]


@dataclass(frozen=True)
class ModelTarget:
    """What a stream needs to know of a model, copied out of the ORM so async code needs no DB."""

    base_url: str
    api_key: str
    engine_model_id: str
    params: dict

    @classmethod
    def of(cls, model: ServedModel, *, max_tokens: int) -> ModelTarget:
        """The model's target, answering at most ``max_tokens`` tokens (the caller's limit)."""
        params = model.generation_params(max_tokens=max_tokens)
        return cls(model.endpoint.base_url, model.endpoint.api_key(), model.engine_model_id, params)


@dataclass
class StreamEvent:
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int | None = None


# Parameters the OpenAI schema does not have, which vLLM accepts in the request body.
_EXTRA_BODY_KEYS = {"repetition_penalty", "top_k", "min_p"}


async def stream_chat(target: ModelTarget, messages: list[dict]) -> AsyncIterator[StreamEvent]:
    """Yield text deltas, then one event with the finish reason and token count.

    Raises openai.OpenAIError (or asyncio.CancelledError when cancelled).
    """
    params = dict(target.params)
    extra_body = {key: params.pop(key) for key in list(params) if key in _EXTRA_BODY_KEYS}
    client = client_for(target.base_url, target.api_key)
    stream = await client.chat.completions.create(
        model=target.engine_model_id,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra_body or None,
        **params,
    )
    finish_reason = None
    tokens = None
    try:
        async for chunk in stream:
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    yield StreamEvent(text=choice.delta.content)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    finally:
        await stream.close()
    yield StreamEvent(finish_reason=finish_reason or "stop", completion_tokens=tokens)
