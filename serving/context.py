"""How much a served model can read: its context length, and how many tokens a chat takes in it.

* ``context_lengths_store``: the health round stores each model's context length from its
  endpoint's ``/v1/models`` entries (vLLM's ``max_model_len``; ``context_length`` where a
  provider lists one). Models the endpoint does not describe keep the admin's or the preset's value.
* ``chat_token_count``: the exact count of a chat's prompt tokens, chat template and generation
  prompt included, from vLLM's ``/tokenize`` (one call per endpoint: every model of a vLLM server
  shares its tokenizer and template); ``None`` where the endpoint has no such call or it fails.
* ``chat_token_bound``: an upper bound that needs no engine. Byte-level BPE and SentencePiece with
  byte fallback give at most one token per UTF-8 byte; the bound counts the bytes of the text and
  of its NFKC form (a normalising tokenizer may expand one character into many: U+FDFA is 18),
  plus ``TEMPLATE_TOKENS`` for a chat template's system prompt and ``MESSAGE_TOKENS`` per message.

Serving reads no arena setting: the caller says how many tokens the answer needs.
"""

from __future__ import annotations

import logging
import unicodedata

import httpx
from django.conf import settings

from serving.models import Endpoint, ServedModel

logger = logging.getLogger(__name__)

#: A chat template's fixed part (SmolLM2's default system prompt and generation prompt: 30 tokens).
TEMPLATE_TOKENS = 256
#: Role markers and separators around each message (ChatML: 5 tokens).
MESSAGE_TOKENS = 16


def context_lengths_store(endpoint: Endpoint, entries: list[dict]) -> int:
    """Store the context length each ``/v1/models`` entry gives for its model on ``endpoint``;
    returns how many rows changed."""
    changed = 0
    for entry in entries:
        length = entry.get("max_model_len") or entry.get("context_length")
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0 or not entry.get("id"):
            continue
        changed += ServedModel.objects.filter(endpoint=endpoint, engine_model_id=entry["id"]).exclude(
            context_length=length).update(context_length=length)
    return changed


def _text_bytes(text: str) -> int:
    return max(len(text.encode("utf-8", "surrogatepass")),
               len(unicodedata.normalize("NFKC", text).encode("utf-8", "surrogatepass")))


def chat_token_bound(messages: list[dict]) -> int:
    """At least as many tokens as any byte-level or byte-fallback tokenizer gives the chat (see above)."""
    return TEMPLATE_TOKENS + sum(MESSAGE_TOKENS + _text_bytes(str(m.get("content") or "")) for m in messages)


def chat_token_count(model: ServedModel, messages: list[dict]) -> int | None:
    """The chat's prompt tokens on the model's engine (template and generation prompt included), or None
    where the endpoint cannot count them (not vLLM, unreachable, refused)."""
    endpoint = model.endpoint
    if endpoint.kind != Endpoint.Kind.VLLM:
        return None
    url = f"{endpoint.root_url()}/tokenize"
    body = {"model": model.engine_model_id, "messages": messages, "add_generation_prompt": True}
    try:
        response = httpx.post(url, json=body, headers=endpoint.auth_headers(url),
                              timeout=settings.ARENA_HEALTH_TIMEOUT_S)
        response.raise_for_status()
        count = response.json().get("count")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        logger.warning("endpoint %s: /tokenize failed: %s", endpoint.name, exc.__class__.__name__)
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
