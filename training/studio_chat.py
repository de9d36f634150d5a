"""The admin's chat with one model: any served model, or any checkpoint, outside battles.

Contract:
* :func:`chat_choices` lists what can be chatted with: every served model (``model:ID``) and every
  contestant checkpoint (``checkpoint:ID``), held-back, paused and never-served ones included.
* :func:`chat_target` resolves a choice to a :class:`ChatTarget` (a plain dataclass holding the
  ``serving.streaming.ModelTarget``), loading a LoRA adapter into its base's vLLM server first
  when the engine does not have it (vLLM's runtime LoRA loading, ``serving.services.adapter_load``),
  under the job's immutable contestant name and only if its directory still has the hash recorded
  when it was served. A reward model (scorer) cannot chat; a full fine-tune chats through its own
  engine.
* :func:`chat_messages` validates a conversation (multi-turn; the last message the user's).
* :func:`chat_stream` / :func:`chat_answer` stream or return the answer through
  ``serving.streaming.stream_chat``, the client battles use. Nothing here writes a Battle, a Vote
  or a Response: a chat is never a battle and never counts on the leaderboard.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import openai

from serving.adapter_hash import adapter_dir_sha256
from serving.errors import EngineError
from serving.models import Endpoint, ServedModel
from serving.services import adapter_load, endpoint_list_models
from serving.streaming import ModelTarget, StreamEvent, stream_chat
from training.errors import TrainingError
from training.models import Checkpoint

#: A conversation's limits: messages, characters in all, tokens per answer.
MAX_MESSAGES = 40
MAX_CHARS = 40_000
MAX_TOKENS = 2048
ROLES = {"system", "user", "assistant"}


@dataclasses.dataclass(frozen=True)
class ChatTarget:
    label: str
    target: ModelTarget


def chat_choices() -> list[tuple[str, str]]:
    """``(value, label)`` for the chat page's picker: served models, then contestant checkpoints."""
    models = [(f"model:{m.pk}", f"{m.public_name} ({m.get_kind_display()}{'' if m.active else ', paused'})")
              for m in ServedModel.objects.order_by("public_name")]
    checkpoints = [(f"checkpoint:{c.pk}", f"checkpoint of job {c.job_id} · {c.job.get_method_display()} on "
                                          f"{c.job.dataset.name}{'' if c.served_model_id else ' (not served)'}")
                   for c in Checkpoint.objects.filter(kind=Checkpoint.Kind.CONTESTANT)
                   .select_related("job__dataset").order_by("-job_id")]
    return models + checkpoints


def chat_messages(raw) -> list[dict]:
    """The conversation as role/content dicts, or TrainingError saying what is wrong."""
    if not isinstance(raw, list) or not raw:
        raise TrainingError("Send the conversation as a non-empty list of messages.")
    if len(raw) > MAX_MESSAGES:
        raise TrainingError(f"At most {MAX_MESSAGES} messages in one chat; start a new one.")
    messages = []
    for index, item in enumerate(raw):
        role, content = (item.get("role"), item.get("content")) if isinstance(item, dict) else (None, None)
        if role not in ROLES or not isinstance(content, str) or not content.strip():
            raise TrainingError(f"Message {index + 1} needs a role (system, user, assistant) and some text.")
        if role == "system" and index:
            raise TrainingError("Only the first message may be a system message.")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise TrainingError("The last message must be the user's.")
    if sum(len(m["content"]) for m in messages) > MAX_CHARS:
        raise TrainingError(f"The conversation is longer than {MAX_CHARS} characters; start a new one.")
    return messages


def chat_max_tokens(raw) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise TrainingError("max_tokens must be a whole number.") from None
    if not 1 <= value <= MAX_TOKENS:
        raise TrainingError(f"max_tokens must be between 1 and {MAX_TOKENS}.")
    return value


def _ensure_adapter(endpoint: Endpoint, name: str, path: str, recorded_sha256: str) -> None:
    """Have the engine serve adapter ``name`` from ``path`` (loading it now if needed). Raises TrainingError."""
    try:
        digest = adapter_dir_sha256(path)
        if recorded_sha256 and digest != recorded_sha256:
            raise TrainingError(f"The adapter in {path} changed since it was served (sha256 {digest[:12]}, recorded "
                                f"{recorded_sha256[:12]}): not chatting with other weights under its name.")
        loaded = {entry.get("id"): entry for entry in endpoint_list_models(endpoint)}
        if name in loaded:
            root = loaded[name].get("root")
            if root and Path(root) != Path(path):
                raise TrainingError(f"{endpoint.name} serves {name} from {root}, not from {path}.")
            return
        adapter_load(endpoint, name=name, path=path)
    except EngineError as exc:
        raise TrainingError(f"Could not load the adapter into {endpoint.name}: {exc}") from None


def chat_target(choice: str, *, max_tokens: int) -> ChatTarget:
    """Resolve ``model:ID`` or ``checkpoint:ID``; see the module contract. Raises TrainingError."""
    kind, _, key = (choice or "").partition(":")
    if kind not in ("model", "checkpoint") or not key.isdigit():
        raise TrainingError("Pick a served model or a checkpoint.")
    if kind == "model":
        model = ServedModel.objects.select_related("endpoint").filter(pk=int(key)).first()
        if model is None:
            raise TrainingError("There is no such served model.")
        if model.kind == ServedModel.Kind.LORA:
            _ensure_adapter(model.endpoint, model.engine_model_id, model.adapter_path, model.adapter_sha256)
        return ChatTarget(model.public_name, ModelTarget.of(model, max_tokens=max_tokens))
    checkpoint = (Checkpoint.objects.select_related("job", "base_model__endpoint", "served_model__endpoint")
                  .filter(pk=int(key)).first())
    if checkpoint is None:
        raise TrainingError("There is no such checkpoint.")
    if checkpoint.kind == Checkpoint.Kind.SCORER:
        raise TrainingError("A reward model scores answers; it does not chat. Score a pair on its checkpoint page.")
    served = checkpoint.served_model
    if checkpoint.is_full():
        if served is None:
            raise TrainingError(f"The full fine-tune of job {checkpoint.job_id} has no engine: it was never served.")
        return ChatTarget(served.public_name, ModelTarget.of(served, max_tokens=max_tokens))
    name = served.engine_model_id if served else checkpoint.job.contestant_name()
    endpoint = checkpoint.base_model.endpoint
    _ensure_adapter(endpoint, name, checkpoint.weights_dir, checkpoint.adapter_sha256)
    target = ModelTarget.of(served or checkpoint.base_model, max_tokens=max_tokens)
    return ChatTarget(name, dataclasses.replace(target, engine_model_id=name))


async def chat_stream(chat: ChatTarget, messages: list[dict]) -> AsyncIterator[StreamEvent]:
    """The answer's events (``serving.streaming.stream_chat``); an error becomes a last event's
    ``finish_reason="error: …"`` instead of an exception in the middle of a response."""
    try:
        async for event in stream_chat(chat.target, messages):
            yield event
    except openai.OpenAIError as exc:
        yield StreamEvent(finish_reason=f"error: {exc.__class__.__name__}: {str(exc)[:300]}")


def chat_answer(chat: ChatTarget, messages: list[dict]) -> dict:
    """The whole answer at once (the page's non-streaming mode): text, finish reason, token counts."""

    async def collect() -> dict:
        parts, last = [], StreamEvent()
        async for event in chat_stream(chat, messages):
            parts.append(event.text)
            last = event
        return {"model": chat.label, "text": "".join(parts), "finish_reason": last.finish_reason,
                "completion_tokens": last.completion_tokens, "prompt_tokens": last.prompt_tokens}

    return asyncio.run(collect())
