"""Release of both sides' answers to the rater before the vote, so the stream tells the models apart
by nothing but their text (pure; no Django, no I/O; times are the caller's monotonic seconds).

An engine's own stream is a fingerprint: one chunk per token gives the token count and the
tokenizer (characters per chunk), and its timing gives the engine (time to the first token,
tokens per second, when each side ends). A :class:`Pacer` takes both engines' text as it comes
(:meth:`Pacer.feed`, :meth:`Pacer.finish`) and says what to send at each tick
(:meth:`Pacer.tick`). Its contracts, by mode:

``paced`` (the default)
    * Releases happen only at ticks of one clock (``start + k * tick_s``), and every side still
      releasing gets its chunk at the same tick; a side's chunks are whole words (a word is the
      whitespace before it and its letters; a run of letters longer than ``max_word_chars``
      without a space, as in Chinese, is cut every ``max_word_chars`` characters), whatever the
      tokens were.
    * The first release waits until every side can fill its first chunk (or has ended), so both
      start at the same tick.
    * All sides share one pace (characters per second), and a tick releases either a full quota of
      words from every side still releasing or nothing at all: when one engine falls behind, both
      sides pause together. The pace starts at ``start_chars_per_s`` (a first chunk of about one
      word); once every producing side has produced text for ``measure_after_s``, it is
      ``margin`` times the slowest producing side's mean rate so far (within ``min_chars_per_s``
      and ``max_chars_per_s``), so it tells the rater how fast the slower engine is, never which
      side that is. From the moment the first engine ends it can only go down: a side left alone
      then would otherwise show its own engine's speed. As the pace stays under the slower
      engine's rate, that side rarely has to pause. Nor is the rest sped up once the engines
      have ended: when that happened would tell which side had the slower engine.
    * So a side's frames count, chunk sizes and times follow its text's length and the shared pace.
      The consumer sends both ``side_done`` frames together, after the last chunk of both.

``whole``
    Nothing is released until every engine has ended; then each side's whole text at once.

``tokens``
    The engines' chunks as they come (the old stream; for benchmarks only, since it tells the
    models apart): each :meth:`Pacer.tick` releases whatever was fed since the last one.

A side that fails is finished with ``drop=True``: what it had not yet released is never sent
(its ``side_done`` carries the error instead). On a stop, :meth:`Pacer.released` is what the
rater saw of each side, and so what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("paced", "whole", "tokens")


@dataclass(frozen=True)
class PaceConfig:
    tick_s: float = 0.08
    start_chars_per_s: float = 60.0  # about a word a tick, until the engines' rates are measured
    min_chars_per_s: float = 15.0
    max_chars_per_s: float = 400.0
    margin: float = 0.8  # the pace stays this far under the slowest producing side's rate
    measure_after_s: float = 0.5  # a side's rate is measured once it has produced text this long
    max_word_chars: int = 12


@dataclass
class _Side:
    pending: str = ""  # fed, not yet released
    shown: list[str] = field(default_factory=list)  # the chunks released
    fed_chars: int = 0
    finished: bool = False
    first_at: float | None = None
    credit: float = 0.0  # characters this side may still release (may go negative after a long word)


def word_end(text: str, start: int, max_word_chars: int) -> int | None:
    """End of the word that starts at ``start`` in ``text``: just before the next whitespace that
    follows a non-space, or ``max_word_chars`` letters in; None when the word may still go on."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    letters_from = i
    while i < len(text):
        if text[i].isspace():
            return i
        if i - letters_from >= max_word_chars:
            return i
        i += 1
    return None


@dataclass
class Pacer:
    sides: tuple[str, ...] = ("a", "b")
    mode: str = "paced"
    config: PaceConfig = field(default_factory=PaceConfig)
    start: float = 0.0  # the clock's origin (the turn's start)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"stream mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        self._state = {side: _Side() for side in self.sides}
        self.pace = self.config.start_chars_per_s  # characters per second, shared by the sides

    # --- input -------------------------------------------------------------------------------

    def feed(self, side: str, text: str, now: float) -> None:
        state = self._state[side]
        if state.finished or not text:
            return
        if state.first_at is None:
            state.first_at = now
        state.pending += text
        state.fed_chars += len(text)

    def finish(self, side: str, now: float, *, drop: bool = False) -> None:
        """The side's engine ended (``drop``: it failed; its unreleased text is never sent)."""
        state = self._state[side]
        self._measure(now)  # the rate this side had, before it stops counting
        state.finished = True
        if drop:
            state.pending = ""

    # --- output ------------------------------------------------------------------------------

    def released(self, side: str) -> str:
        return "".join(self._state[side].shown)

    def complete(self, side: str) -> bool:
        state = self._state[side]
        return state.finished and not state.pending

    @property
    def all_complete(self) -> bool:
        return all(self.complete(side) for side in self.sides)

    def next_tick_at(self, now: float) -> float:
        """The first tick of the clock strictly after ``now``."""
        step = self.config.tick_s
        return self.start + (int((now - self.start) / step) + 1) * step

    def tick(self, now: float) -> list[tuple[str, str]]:
        """What to send now, as ``(side, text)`` in side order (empty: nothing this tick)."""
        if self.mode == "tokens":
            return [(side, self._take(side, len(self._state[side].pending))) for side in self.sides
                    if self._state[side].pending]
        if self.mode == "whole":
            if not all(s.finished for s in self._state.values()):
                return []
            return [(side, self._take(side, len(self._state[side].pending))) for side in self.sides
                    if not self.complete(side)]
        return self._tick_paced(now)

    # --- paced -------------------------------------------------------------------------------

    def _tick_paced(self, now: float) -> list[tuple[str, str]]:
        self._measure(now)
        quota = self.pace * self.config.tick_s
        plans = {}
        for side in self.sides:
            state = self._state[side]
            if self.complete(side):
                continue
            plan = self._plan(state, state.credit + quota)
            if plan is None:
                return []  # one side cannot fill its chunk: every side waits for it
            plans[side] = plan
        out = []
        for side, end in plans.items():
            state = self._state[side]
            state.credit += quota - end
            if end:  # nothing when a long word spent this tick's quota in advance
                out.append((side, self._take(side, end)))
        return out

    def _plan(self, state: _Side, credit: float) -> int | None:
        """Where this tick's chunk of a side's pending text ends (its length); None when it cannot be
        filled."""
        end = 0
        while credit - end > 0:
            nxt = word_end(state.pending, end, self.config.max_word_chars)
            if nxt is None:
                if state.finished and end < len(state.pending):
                    end = len(state.pending)  # the last word
                    continue
                if state.finished:
                    break  # all of it fits: a short last chunk
                return None
            end = nxt
        return end

    def _measure(self, now: float) -> None:
        """Set the shared pace from the slowest producing side's mean rate, once every producing side
        has one; after the first engine ended, only lower it."""
        rates = []
        for state in self._state.values():
            if state.finished:
                continue
            if state.first_at is None or now - state.first_at < self.config.measure_after_s:
                return
            rates.append(state.fed_chars / (now - state.first_at))
        if not rates:
            return
        config = self.config
        target = min(config.max_chars_per_s, max(config.min_chars_per_s, config.margin * min(rates)))
        one_ended = any(state.finished for state in self._state.values())
        self.pace = min(self.pace, target) if one_ended else target

    def _take(self, side: str, end: int) -> str:
        state = self._state[side]
        text, state.pending = state.pending[:end], state.pending[end:]
        state.shown.append(text)
        return text
