"""WebSocket consumers: the rater's battle loop and live leaderboard updates.

Protocol of ``/ws/arena/`` (JSON text frames; documented in docs/battle-api.md):
client → server ``new_battle``, ``prompt``, ``stop``, ``vote``; server → client
``battle``, ``turn_started``, ``delta``, ``side_done``, ``turn_done``,
``revealed``, ``error``. No frame names a model before the vote, and before the vote the
``delta`` frames' sizes and times follow the answers' text, not the engines (``arena.battle.pacing``,
``ARENA_STREAM``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import openai
from channels.db import DatabaseSyncToAsync
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from arena import services
from arena.abuse import clientip
from arena.battle.pacing import Pacer
from arena.leaderboard import services as leaderboard_services
from arena.markdown import render_markdown
from arena.models import Response
from serving.errors import input_refused
from serving.streaming import stream_chat

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
# The only finish reasons a rater sees before the vote.
PUBLIC_FINISH = {"stop": "done", "length": "length", "cancelled": "stopped"}
SIDES = ("a", "b")

#: The battle sockets' ORM calls run in this pool of threads (each with its own connection), not in
#: Channels' default one shared thread: there every socket's every call queued behind all the others,
#: and under load new sockets waited past daphne's connect timeout (HTTP 403).
_DB_POOL = ThreadPoolExecutor(max_workers=settings.ARENA_DB_THREADS, thread_name_prefix="arena-db")


def db(func):
    """``func`` as a coroutine run in ``_DB_POOL``, closing stale connections before and after (as Channels does)."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_DB_POOL)


def _side_error_message(exc: BaseException) -> str:
    """What the rater sees when a side fails: the kind of failure, never a model, URL or endpoint name."""
    if isinstance(exc, TimeoutError):
        return "This model took too long to answer."
    if isinstance(exc, openai.APIConnectionError):
        return "This model could not be reached."
    if isinstance(exc, openai.APIStatusError):
        return "This model's server answered with an error."  # no status: a 404 would say "a LoRA adapter"
    return "This model failed to answer."


@dataclass
class _SideResult:
    """One side's answer, how it ended (``battle_side_finish``'s fields) and the rater's error text."""

    content: str
    outcome: dict
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    public_error: str = ""

    def cut(self, shown: str) -> _SideResult:
        """The side stopped where the rater's view of it ended (the engine's token counts are kept)."""
        usage = {key: self.outcome[key] for key in ("completion_tokens", "prompt_tokens") if key in self.outcome}
        return replace(self, content=shown, outcome={"state": Response.State.CANCELLED, "finish_reason": "cancelled",
                                                     **usage}, public_error="")


@dataclass
class _Turn:
    """One turn in flight: the pacer both engines feed, their tasks, and what was stored and told."""

    plan: services.TurnPlan
    pacer: Pacer
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    producers: dict[str, asyncio.Task] = field(default_factory=dict)
    stores: dict[str, asyncio.Future] = field(default_factory=dict)
    results: dict[str, _SideResult] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)  # sides whose side_done was sent


class BattleConsumer(AsyncJsonWebsocketConsumer):
    # Battles never use the channel layer: without this, every socket also runs the layer's
    # receive loop, and a Redis outage closes battle sockets with 1011 mid-stream.
    channel_layer_alias = None

    async def connect(self) -> None:
        self.rater_id = await db(self._rater_id)()
        self.ip_hash = clientip.ip_hash(clientip.scope_client_ip(self.scope))
        self.generation: asyncio.Task | None = None
        await self.accept()
        if self.rater_id is None:
            await self._error("login_required", "Sign in to rate models.")
            await self.close(code=4401)

    def _rater_id(self) -> str | None:
        # With ARENA_REQUIRE_LOGIN the account is the rater (None: not signed in). Otherwise the
        # arena page stores an anonymous id in the session; scripts without a session cookie get
        # one per connection (limits also follow the IP hash, so reconnecting gains nothing).
        if settings.ARENA_REQUIRE_LOGIN:
            user = self.scope.get("user")
            return services.account_rater_id(user) if user is not None and user.is_authenticated else None
        session = self.scope.get("session")
        if session is not None and session.get("arena_rater"):
            return session["arena_rater"]
        return uuid.uuid4().hex

    async def disconnect(self, code: int) -> None:
        await self._cancel_generation()

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if self.rater_id is None:
            return
        if bytes_data is not None or text_data is None:
            await self._error("bad_frame", "Send JSON text frames.")
            return
        if len(text_data) > MAX_FRAME_BYTES:
            await self._error("frame_too_large", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._error("bad_json", "That frame is not valid JSON.")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("bad_message", 'A message is a JSON object with a "type".')
            return
        handler = {
            "new_battle": self._on_new_battle,
            "prompt": self._on_prompt,
            "stop": self._on_stop,
            "vote": self._on_vote,
        }.get(content["type"])
        if handler is None:
            await self._error("unknown_type", f"Unknown message type {content['type'][:40]!r}.")
            return
        try:
            await handler(content)
        except services.ArenaError as exc:
            await self._error(exc.code, exc.message, **exc.details)
        except DatabaseError:
            logger.exception("database error on %s", content["type"])
            await self._error("unavailable", "The arena's database is unavailable right now; try again in a moment.")

    async def _error(self, code: str, message: str, **details) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **details})

    async def _on_new_battle(self, content: dict) -> None:
        await self._cancel_generation()
        battle = await db(services.battle_create)(rater_id=self.rater_id, ip_hash=self.ip_hash)
        await self.send_json(
            {
                "type": "battle",
                "battle_id": str(battle.public_id),
                "max_turns": settings.ARENA_MAX_TURNS,
                "max_prompt_chars": settings.ARENA_MAX_PROMPT_CHARS,
            }
        )

    async def _on_prompt(self, content: dict) -> None:
        if self.generation and not self.generation.done():
            raise services.ArenaError("busy", "Wait for both answers before sending another prompt.")
        plan = await db(services.battle_turn_begin)(
            battle_id=content.get("battle_id"), rater_id=self.rater_id, text=content.get("text")
        )
        await self.send_json({"type": "turn_started", "battle_id": plan.battle_id, "turn": plan.turn_index + 1})
        self.generation = asyncio.create_task(self._generate(plan))

    async def _on_stop(self, content: dict) -> None:
        await self._cancel_generation()

    async def _on_vote(self, content: dict) -> None:
        if self.generation and not self.generation.done():
            raise services.ArenaError("not_finished", "Wait until both answers have finished.")
        vote = await db(services.battle_vote)(
            battle_id=content.get("battle_id"), rater_id=self.rater_id, winner=content.get("winner"),
            ip_hash=self.ip_hash,
        )
        reveal = await db(services.battle_reveal)(vote.battle)
        await self.send_json(
            {"type": "revealed", "battle_id": str(vote.battle.public_id), "winner": vote.winner,
             "flagged": vote.identity_leak, **reveal}
        )

    async def _cancel_generation(self) -> None:
        task, self.generation = self.generation, None
        if task and not task.done():
            task.cancel()
            # The sides record their partial answers as cancelled before the task ends.
            await asyncio.gather(task, return_exceptions=True)

    async def _generate(self, plan: services.TurnPlan) -> None:
        """Both engines feed one :class:`Pacer`, whose releases go out as ``delta`` frames
        (``ARENA_STREAM``); then both ``side_done`` frames together (in ``tokens``, each side's own
        as it ends) and ``turn_done``. A stop stores and shows what the rater saw, as cancelled."""
        loop = asyncio.get_running_loop()
        turn = _Turn(plan, Pacer(mode=settings.ARENA_STREAM, start=loop.time()))
        turn.producers = {side: asyncio.create_task(self._produce(turn, side)) for side in SIDES}
        try:
            await self._release(turn)
        except (asyncio.CancelledError, Exception) as exc:  # a stop, a disconnect, or a send that failed
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("battle %s: streaming the turn failed", plan.battle_id)
            for task in turn.producers.values():
                task.cancel()
            await asyncio.gather(*turn.producers.values(), return_exceptions=True)
            left = [side for side in SIDES if side not in turn.told]
            for side in left:
                task = turn.producers[side]
                # A producer cancelled before it ever ran has no result: nothing was asked or shown.
                result = _SideResult("", {}) if task.cancelled() else task.result()
                if not turn.pacer.complete(side):
                    result = result.cut(turn.pacer.released(side))
                turn.results[side] = await self._store(turn, side, result)
            for side in left:
                await self._side_done(side, turn.results[side])
                turn.told.add(side)
            raise
        await self.send_json({"type": "turn_done", "battle_id": plan.battle_id, "turn": plan.turn_index + 1,
                              "turns_left": settings.ARENA_MAX_TURNS - plan.turn_index - 1})

    async def _release(self, turn: _Turn) -> None:
        """Send the pacer's chunks on its clock (``paced``) or as the engines change (the others)."""
        loop, pacer = asyncio.get_running_loop(), turn.pacer
        ended: list[str] = []
        at = loop.time()
        while len(ended) < len(SIDES):
            if pacer.mode == "paced":
                at = pacer.next_tick_at(max(at, loop.time()))
                await asyncio.sleep(at - loop.time())
            else:
                await turn.changed.wait()
                turn.changed.clear()
                at = loop.time()
            for side, text in pacer.tick(at):
                await self.send_json({"type": "delta", "side": side, "text": text})
            for side in SIDES:
                if side not in ended and pacer.complete(side) and turn.producers[side].done():
                    ended.append(side)
                    if pacer.mode == "tokens":  # the old stream: a side's end shows when its engine ended
                        turn.results[side] = await self._store(turn, side, turn.producers[side].result())
                        await self._side_done(side, turn.results[side])
                        turn.told.add(side)
        left = [side for side in SIDES if side not in turn.told]
        stored = await asyncio.gather(*(self._store(turn, side, turn.producers[side].result()) for side in left))
        turn.results.update(zip(left, stored, strict=True))
        for side in left:
            await self._side_done(side, turn.results[side])
            turn.told.add(side)

    async def _produce(self, turn: _Turn, side: str) -> _SideResult:
        """Stream one side's engine into the pacer; any failure stays on this side. Never raises."""
        plan, pacer = turn.plan, turn.pacer
        loop = asyncio.get_running_loop()
        parts: list[str] = []
        started = time.perf_counter()
        first_token_at: float | None = None
        outcome: dict = {"state": Response.State.DONE}
        public_error = ""
        try:
            async with asyncio.timeout(settings.ARENA_GENERATION_TIMEOUT_S):
                async for event in stream_chat(plan.targets[side], plan.messages[side]):
                    if event.text:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        parts.append(event.text)
                        pacer.feed(side, event.text, loop.time())
                        turn.changed.set()
                    if event.finish_reason:
                        outcome.update(finish_reason=event.finish_reason, completion_tokens=event.completion_tokens,
                                       prompt_tokens=event.prompt_tokens)
        except asyncio.CancelledError:
            outcome = {"state": Response.State.CANCELLED, "finish_reason": "cancelled"}
        except Exception as exc:  # noqa: BLE001 - one side's failure must not break the other
            logger.warning("battle %s side %s failed: %r", plan.battle_id, side, exc)
            outcome = {"state": Response.State.ERROR, "finish_reason": "error", "rater_caused": input_refused(exc),
                       "error": f"{exc.__class__.__name__}: {exc}"}
            public_error = _side_error_message(exc)
        finished = time.perf_counter()
        pacer.finish(side, loop.time(), drop=outcome["state"] == Response.State.ERROR)
        turn.changed.set()
        tokens = outcome.get("completion_tokens") or (len(parts) or None)
        ttft_ms = (first_token_at - started) * 1000 if first_token_at else None
        tps = tokens / (finished - first_token_at) if tokens and first_token_at and finished > first_token_at else None
        return _SideResult("".join(parts), outcome, ttft_ms=ttft_ms, tokens_per_s=tps, public_error=public_error)

    async def _store(self, turn: _Turn, side: str, result: _SideResult) -> _SideResult:
        """Record the side once (shielded: a cancelled turn still records what it had)."""
        if side not in turn.stores:
            turn.stores[side] = asyncio.ensure_future(self._record_side(
                turn.plan, side, result.content, ttft_ms=result.ttft_ms, tokens_per_s=result.tokens_per_s,
                **result.outcome))
        if await asyncio.shield(turn.stores[side]):
            return result
        return replace(result, outcome={"state": Response.State.ERROR, "finish_reason": "error"},
                       public_error="This answer could not be saved; start a new battle.")

    async def _side_done(self, side: str, result: _SideResult) -> None:
        try:
            # Before the vote a side shows only its text and how it ended: no speed, token count or
            # engine finish reason (they tell models apart); the speeds come with the reveal.
            await self.send_json(
                {"type": "side_done", "side": side, "state": str(result.outcome["state"]),
                 "finish_reason": PUBLIC_FINISH.get(result.outcome.get("finish_reason", ""), ""),
                 "error": result.public_error, "html": render_markdown(result.content)}
            )
        except Exception:  # noqa: BLE001 - the socket may be gone after a disconnect
            pass

    async def _record_side(self, plan: services.TurnPlan, side: str, content: str, **outcome) -> bool:
        """Record a finished side; on failure, try once to close it as an error, so the turn never stays
        pending (what neither attempt records, ``arena.battle.reaper`` closes after the generation timeout)."""
        finish = db(services.battle_side_finish)
        response_id = plan.response_ids[side]
        try:
            await finish(response_id=response_id, content=content, **outcome)
            return True
        except Exception as exc:  # noqa: BLE001 - whatever failed, the side must still end
            logger.exception("battle %s side %s: recording the answer failed", plan.battle_id, side)
            error = f"recording the answer failed: {exc.__class__.__name__}: {exc}"
        try:
            await finish(response_id=response_id, state=Response.State.ERROR, finish_reason="error",
                         content=content.replace("\x00", ""), error=error)
        except Exception:  # noqa: BLE001
            logger.exception("battle %s side %s: closing the side as an error failed too", plan.battle_id, side)
        return False


class LeaderboardConsumer(AsyncJsonWebsocketConsumer):
    """Pushes ``{"type": "leaderboard", "snapshot_id": N}`` when a new snapshot is stored."""

    group = leaderboard_services.GROUP

    async def connect(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        await self.send_json({"type": "error", "code": "read_only", "message": "This socket only sends updates."})

    async def leaderboard_update(self, event: dict) -> None:
        await self.send_json({"type": "leaderboard", "snapshot_id": event["snapshot_id"]})
