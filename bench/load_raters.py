"""Simulated raters for ``bench/load.py``: each one a person at a browser, paced like one.

Contract:

* A :class:`Rater` is one client of its own: its own address (``X-Forwarded-For``, believed by a
  web process started with ``ARENA_TRUSTED_PROXIES=1``: the load generator is that one proxy
  hop, and says ``X-Forwarded-Proto: https`` as a TLS proxy does), its own session (it loads the
  arena page first and sends that page's session cookie with its socket, as the page's script
  does), and its own WebSocket.
* It plays a battle as a person does (:class:`Pace`): ``new_battle``, types its prompt for a
  while, reads both answers for at least ``ARENA_MIN_VOTE_SECONDS`` plus a margin after the turn
  ended, then votes. It never starts a battle the limits would refuse: at least ``min_gap``
  seconds between its battles, and never more than ``ARENA_LIMIT_BATTLES_PER_MINUTE`` starts in
  any minute or ``ARENA_LIMIT_VOTES_PER_HOUR`` / ``_PER_DAY`` votes (with a margin). So an honest
  rater is never refused: each ``rate_limited`` frame the report counts is a defect.
* Prompts are the arena's real prompts, handed out round-robin over all raters (:class:`Prompts`),
  so no first prompt reaches ``ARENA_PROMPT_REPEAT_CAP`` votes before every prompt has been used
  that often; past that, each pass prefixes its number (a rater asking again, in other words).
* :func:`closed_loop` keeps N raters, each battling at its own pace (their rate follows the
  server's speed). :func:`open_loop` starts battles at a set Poisson rate per step whatever the
  server does: each goes to an idle rater whose pace allows it, or to a new rater who joins
  (page load, socket), so the raters held are what that rate needs. :func:`probe_provider`
  streams straight to the provider in the same run. :func:`idle_reference` plays a few battles one
  at a time (each turn ends before the next starts) before the load: the arena's own unloaded time
  to first token (paced stream included), kept as step :data:`REFERENCE`.
* Every sample is kept with the step its battle was started in (:class:`Stats`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field

import openai
import websockets

now = time.monotonic
REFERENCE = -1  # the step under which idle_reference's samples are kept


@dataclass
class Target:
    host: str
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/arena/"


@dataclass
class Pace:
    """A person's timings (seconds, uniform ranges) and the limits it stays inside (0: no limit)."""

    typing: tuple[float, float] = (2.0, 8.0)
    reading: tuple[float, float] = (4.0, 15.0)
    think: tuple[float, float] = (5.0, 20.0)
    min_gap: float = 15.0
    battles_per_minute: int = 0
    votes_per_hour: int = 0
    votes_per_day: int = 0
    margin_s: float = 5.0

    def draw(self, span: tuple[float, float]) -> float:
        return random.uniform(*span)


@dataclass
class Stats:
    """Samples as (step, value) per kind; counters; what the server acknowledged."""

    started: float = field(default_factory=now)
    step: int = 0
    held: int = 0
    held_max: dict = field(default_factory=dict)  # step -> most sockets open during it
    samples: dict = field(default_factory=dict)  # kind -> [(step, seconds)]
    voted: dict = field(default_factory=dict)  # step -> battles voted
    acked: list = field(default_factory=list)  # battle ids the server confirmed voted
    error_frames: dict = field(default_factory=dict)  # code -> count
    side_errors: dict = field(default_factory=dict)  # public message -> count
    dropped: dict = field(default_factory=dict)  # close code / exception -> count
    joined: int = 0
    web_cpu: dict = field(default_factory=dict)  # step -> CPU seconds the web processes used during it
    web_cpu_total: float = 0.0
    web_wait: dict = field(default_factory=dict)  # step -> seconds their threads waited, runnable, for a CPU
    web_wait_total: float = 0.0

    def add(self, kind: str, step: int, seconds: float) -> None:
        self.samples.setdefault(kind, []).append((step, seconds))

    def values(self, kind: str, step: int | None = None) -> list[float]:
        return [v for s, v in self.samples.get(kind, []) if step is None or s == step]

    def count(self, table: dict, key) -> None:
        table[key] = table.get(key, 0) + 1

    def hold(self, change: int) -> None:
        self.held += change
        self.held_max[self.step] = max(self.held_max.get(self.step, 0), self.held)


class Prompts:
    """The real prompts, shuffled once and handed out round-robin (see the module contract)."""

    def __init__(self, prompts: list[str], repeat_cap: int = 0, seed: int = 0):
        if not prompts:
            raise ValueError("no arena prompts to ask (ARENA_PROMPTS_DIR)")
        self.prompts = list(prompts)
        random.Random(seed).shuffle(self.prompts)
        self.repeat_cap = repeat_cap  # 0: no cap
        self.used = 0

    def next(self) -> str:
        passes, index = divmod(self.used, len(self.prompts))
        self.used += 1
        text = self.prompts[index]
        return text if not self.repeat_cap or passes < self.repeat_cap else f"Question {passes}: {text}"


def address(index: int) -> str:
    """A distinct private IPv4 address per rater (10.0.0.1, 10.0.0.2, ...)."""
    n = index + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


async def page_session(target: Target, headers: dict[str, str], timeout: float) -> tuple[str, float]:
    """GET the arena page as a browser does; returns its ``sessionid=…`` cookie and the seconds taken."""
    started = now()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), timeout)
    try:
        lines = ["GET / HTTP/1.1", f"Host: {target.host}:{target.port}", "Connection: close",
                 "Accept: text/html", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/1.1 200"):
        raise RuntimeError(f"the arena page answered {head[0]!r}")
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "set-cookie" and value.strip().startswith("sessionid="):
            return value.strip().split(";", 1)[0], now() - started
    raise RuntimeError("the arena page set no session cookie")


class Rater:
    def __init__(self, index: int, target: Target, pace: Pace, prompts: Prompts, stats: Stats, timeout: float):
        self.index, self.target, self.pace, self.prompts, self.stats = index, target, pace, prompts, stats
        self.timeout = timeout
        self.ip = address(index)
        self.ws = None
        self.starts: deque[float] = deque()
        self.votes: deque[float] = deque()
        self.idle_since = 0.0
        self.turn_over = asyncio.Event()  # set once the current battle's turn has ended (or failed)

    async def join(self, step: int) -> None:
        headers = {"X-Forwarded-For": self.ip, "X-Forwarded-Proto": "https"}
        started = now()
        cookie, page_s = await page_session(self.target, headers, self.timeout)
        self.stats.add("page", step, page_s)
        self.ws = await websockets.connect(self.target.ws_url, additional_headers={**headers, "Cookie": cookie},
                                           open_timeout=self.timeout, ping_interval=None, max_size=2**22)
        self.stats.add("join", step, now() - started)
        self.stats.joined += 1
        self.stats.hold(+1)

    async def leave(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            self.stats.hold(-1)
            await ws.close()

    def ready_at(self) -> float:
        """The earliest time a new battle keeps this rater inside its pace and the limits."""
        pace, t = self.pace, self.idle_since
        if self.starts:
            t = max(t, self.starts[-1] + pace.min_gap)
        for times, limit, window in ((self.starts, pace.battles_per_minute, 60),
                                     (self.votes, pace.votes_per_hour, 3600), (self.votes, pace.votes_per_day, 86400)):
            if limit and len(times) >= limit:
                t = max(t, times[-limit] + window + pace.margin_s)
        return t

    async def recv(self) -> dict:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), self.timeout))
        if frame["type"] == "error":
            self.stats.count(self.stats.error_frames, frame.get("code", "?"))
        return frame

    async def battle(self, step: int) -> bool:
        """One battle as a person plays it; True when its vote was acknowledged."""
        ws, stats, pace = self.ws, self.stats, self.pace
        self.turn_over.clear()
        self.starts.append(now())
        while len(self.starts) > 64:
            self.starts.popleft()
        sent = now()
        await ws.send(json.dumps({"type": "new_battle"}))
        battle = await self.recv()
        if battle["type"] != "battle":
            return False
        stats.add("start", step, now() - sent)
        await asyncio.sleep(pace.draw(pace.typing))
        sent = now()
        await ws.send(json.dumps({"type": "prompt", "battle_id": battle["battle_id"], "text": self.prompts.next()}))
        firsts: set[str] = set()
        while (frame := await self.recv())["type"] not in ("turn_done", "error"):
            if frame["type"] == "delta" and frame["side"] not in firsts:
                firsts.add(frame["side"])
                stats.add("ttft", step, now() - sent)
            elif frame["type"] == "side_done" and frame["state"] != "done":
                stats.count(stats.side_errors, frame["error"] or frame["state"])
        self.turn_over.set()
        if frame["type"] == "error":
            return False
        await asyncio.sleep(pace.draw(pace.reading))
        voted = now()
        await ws.send(json.dumps({"type": "vote", "battle_id": battle["battle_id"],
                                  "winner": random.choice(["model_a", "model_b", "tie", "tie (bothbad)"])}))
        frame = await self.recv()
        self.idle_since = now()
        if frame["type"] != "revealed":
            return False
        stats.add("vote", step, self.idle_since - voted)
        stats.acked.append(frame["battle_id"])
        stats.count(stats.voted, step)
        self.votes.append(self.idle_since)
        while len(self.votes) > max(pace.votes_per_day, 64):
            self.votes.popleft()
        return True

    def lost(self, exc: BaseException) -> None:
        """Count how this rater's socket failed (it is not used again)."""
        if isinstance(exc, websockets.ConnectionClosed):
            key = f"closed {exc.rcvd.code if exc.rcvd else 'without a close frame'}"
        elif isinstance(exc, websockets.InvalidStatus):
            key = f"handshake refused: HTTP {exc.response.status_code}"
        else:
            key = f"{exc.__class__.__name__}: {str(exc)[:80]}"
        self.stats.count(self.stats.dropped, key)
        if self.ws is not None:
            self.ws = None
            self.stats.hold(-1)


FAILURES = (websockets.WebSocketException, OSError, TimeoutError, RuntimeError)


async def sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - now()))


async def closed_loop(raters: list[Rater], duration: float) -> None:
    """Each rater joins at a random moment of its first think time and battles at its own pace until
    ``duration`` has passed (a battle under way is finished)."""
    deadline = raters[0].stats.started + duration if raters else now()

    async def life(rater: Rater) -> None:
        await asyncio.sleep(rater.pace.draw((0.0, min(rater.pace.think[1], duration / 2))))
        try:
            await rater.join(0)
            while (start := max(now(), rater.ready_at())) < deadline:
                await sleep_until(start)
                await rater.battle(0)
                rater.idle_since = now() + rater.pace.draw(rater.pace.think)
            await rater.leave()
        except FAILURES as exc:
            rater.lost(exc)

    await asyncio.gather(*(life(r) for r in raters))


class Pool:
    """Raters of an open-loop run: idle ones wait in arrival order; a new one joins when none may start."""

    def __init__(self, make):
        self.make, self.idle, self.everyone = make, deque(), []

    def take(self, t: float) -> Rater:
        for rater in self.idle:
            if rater.ready_at() <= t:
                self.idle.remove(rater)
                return rater
        rater = self.make(len(self.everyone))
        self.everyone.append(rater)
        return rater

    async def play(self, rater: Rater, step: int) -> None:
        try:
            if rater.ws is None:
                await rater.join(step)
            await rater.battle(step)
            self.idle.append(rater)
        except FAILURES as exc:
            rater.lost(exc)


async def open_loop(pool: Pool, stats: Stats, rates: list[float], step_s: float, on_step=None) -> int:
    """Battles arrive at ``rates[k]`` per second (Poisson) during step k, whether or not the server keeps
    up. ``on_step(k)`` may return False to end the run after step k (all battles under way finish).
    Returns the number of steps run."""
    tasks: set[asyncio.Task] = set()
    began = arrival = now()
    for step, rate in enumerate(rates):
        stats.step = step
        stats.held_max[step] = stats.held
        end = began + step_s * (step + 1)
        while (arrival := arrival + random.expovariate(rate)) < end:
            await sleep_until(arrival)
            task = asyncio.create_task(pool.play(pool.take(now()), step))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        arrival = end
        await sleep_until(end)
        if on_step is not None and on_step(step) is False:
            break
    ran = stats.step + 1
    stats.step = ran  # sockets opened or closed from now on belong to no measured step
    if tasks:
        await asyncio.wait(tasks)
    await asyncio.gather(*(r.leave() for r in pool.everyone if r.ws is not None), return_exceptions=True)
    return ran


async def idle_reference(pool: Pool, stats: Stats, battles: int) -> list[asyncio.Task]:
    """``battles`` battles one at a time, each by a rater of its own: the next one starts when the
    previous turn has ended (its rater still reads and votes meanwhile, which costs the server next to
    nothing), so no two answers ever stream together. Samples go to step :data:`REFERENCE`; returns the
    battles still under way (reading, voting), for the caller to await."""
    stats.step = REFERENCE
    under_way = []
    for _ in range(battles):
        rater = pool.take(now())
        task = asyncio.create_task(pool.play(rater, REFERENCE))
        under_way.append(task)
        ended = asyncio.create_task(rater.turn_over.wait())
        await asyncio.wait([task, ended], return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
    return under_way


async def probe_provider(base_url: str, model: str, max_tokens: int, stats: Stats, prompts: list[str],
                         every: float = 1.0) -> None:
    """Two concurrent streams straight to the provider (as a battle makes, with one of the raters'
    prompts) every ``every`` seconds, until cancelled: the provider's own time to first token, kind
    ``direct``, for each stream."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60)

    async def one(step: int, prompt: str) -> None:
        sent = now()
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}],
            stream=True, max_tokens=max_tokens, temperature=0.7)
        first = True
        async for chunk in stream:
            if first and chunk.choices and chunk.choices[0].delta.content:
                first = False
                stats.add("direct", step, now() - sent)

    try:
        while True:
            step = stats.step
            prompt = random.choice(prompts)
            await asyncio.gather(one(step, prompt), one(step, prompt), return_exceptions=True)
            await asyncio.sleep(every)
    finally:
        await client.close()
