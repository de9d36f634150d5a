"""The pacing of both sides' answers (arena.battle.pacing): what the rater's frames can show is the text.

Engines are simulated as timed lists of text pieces (what a tokenizer and an engine would make
of a text), and the pacer is run on its own clock, exactly as the consumer runs it.
"""

import random

import pytest

from arena.battle.pacing import PaceConfig, Pacer, word_end

FINISH = None
TEXT_A = ("The quick brown fox jumps over the lazy dog, and then it runs into the forest where "
          "nobody can see it any more. ") * 3
TEXT_B = "A short answer: yes, it does. " * 4


def pieces(text: str, *, start: float, chars_per_s: float, sizes) -> list[tuple[float, str]]:
    """``text`` cut into pieces of the given sizes (a tokenizer), each arriving when its last character
    is produced at ``chars_per_s`` from ``start`` (an engine)."""
    out, i = [], 0
    while i < len(text):
        size = sizes(i)
        piece = text[i : i + size]
        i += len(piece)
        out.append((start + i / chars_per_s, piece))
    return out


def side_events(side: str, text: str, *, start: float, chars_per_s: float, sizes=lambda i: 4) -> list:
    timed = pieces(text, start=start, chars_per_s=chars_per_s, sizes=sizes)
    return [(t, side, piece) for t, piece in timed] + [(timed[-1][0], side, FINISH)]


def run(events: list, *, mode: str = "paced", config: PaceConfig | None = None, drop: set = frozenset(),
        stop_at: float | None = None) -> tuple[Pacer, list[tuple[int, str, str]]]:
    """Feed the events at their times and tick on the pacer's clock until both sides are complete
    (or until ``stop_at``); returns the pacer and its releases as (tick number, side, text)."""
    config = config or PaceConfig()
    pacer = Pacer(mode=mode, config=config, start=0.0)
    events = sorted(events, key=lambda e: e[0])
    released, now, index = [], 0.0, 0
    for tick in range(1, 100_000):
        now = tick * config.tick_s
        if stop_at is not None and now > stop_at:
            break
        while index < len(events) and events[index][0] <= now:
            _, side, piece = events[index]
            if piece is FINISH:
                pacer.finish(side, events[index][0], drop=side in drop)
            else:
                pacer.feed(side, piece, events[index][0])
            index += 1
        released += [(tick, side, text) for side, text in pacer.tick(now)]
        if pacer.all_complete and index == len(events):
            break
    return pacer, released


def text_of(released, side: str) -> str:
    return "".join(text for _, s, text in released if s == side)


class TestWords:
    def test_a_word_ends_before_the_whitespace_that_follows_it(self):
        assert word_end("Hello world", 0, 12) == 5
        assert word_end("Hello world", 5, 12) is None  # "world" may go on
        assert word_end("Hello world ", 5, 12) == 11
        assert word_end("  \n\nTitle\n", 0, 12) == 9

    def test_a_long_run_without_spaces_is_cut_every_max_word_chars(self):
        text = "这是一个没有空格的很长的中文句子" * 2
        assert word_end(text, 0, 12) == 12
        assert word_end(text, 12, 12) == 24


class TestPaced:
    def test_every_chunk_is_whole_words_and_together_they_are_the_text(self):
        events = side_events("a", TEXT_A, start=0.3, chars_per_s=400) + side_events("b", TEXT_B, start=0.5,
                                                                                       chars_per_s=300)
        _, released = run(events)
        for side, text in (("a", TEXT_A), ("b", TEXT_B)):
            assert text_of(released, side) == text
            chunks = [t for _, s, t in released if s == side]
            for chunk, following in zip(chunks, chunks[1:], strict=False):
                assert not chunk[-1].isspace() and following[0].isspace(), (chunk, following)

    def test_both_sides_start_at_the_same_tick_once_both_have_text(self):
        events = side_events("a", TEXT_A, start=0.1, chars_per_s=400) + side_events("b", TEXT_B, start=1.37,
                                                                                       chars_per_s=400)
        _, released = run(events)
        first = {side: min(tick for tick, s, _ in released if s == side) for side in "ab"}
        assert first["a"] == first["b"]
        assert first["a"] * PaceConfig().tick_s >= 1.37  # not before the late side had produced any text

    def test_the_frames_do_not_depend_on_the_tokenizer(self):
        rng = random.Random(7)
        tokenizers = [lambda i: 1, lambda i: 4, lambda i: rng.randint(1, 9)]
        runs = []
        for sizes in tokenizers:
            events = (side_events("a", TEXT_A, start=0.4, chars_per_s=500, sizes=sizes)
                      + side_events("b", TEXT_B, start=0.6, chars_per_s=350, sizes=sizes))
            runs.append(run(events)[1])
        assert runs[0] == runs[1] == runs[2]

    def test_swapping_the_engines_between_the_sides_changes_no_frame(self):
        # Both engines faster than the pace: ticks and chunks follow the texts alone.
        fast_a = side_events("a", TEXT_A, start=0.2, chars_per_s=900, sizes=lambda i: 5) + side_events(
            "b", TEXT_B, start=0.7, chars_per_s=250, sizes=lambda i: 2)
        fast_b = side_events("a", TEXT_A, start=0.7, chars_per_s=250, sizes=lambda i: 2) + side_events(
            "b", TEXT_B, start=0.2, chars_per_s=900, sizes=lambda i: 5)
        assert run(fast_a)[1] == run(fast_b)[1]

    def test_a_side_slower_than_the_pace_pauses_both_sides_and_lowers_the_shared_pace(self):
        config = PaceConfig(tick_s=0.1, start_chars_per_s=100, min_chars_per_s=50, margin=0.8)
        text = "ab cd ef gh ij kl mn op qr st uv wx yz " * 6  # words shorter than a tick's quota
        events = side_events("a", text, start=0.1, chars_per_s=1000) + side_events("b", text, start=0.1,
                                                                                     chars_per_s=70)
        pacer, released = run(events, config=config)
        assert pacer.pace == pytest.approx(max(50, 0.8 * 70), rel=0.15)
        # While both sides have text to come, no tick shows one side moving and the other waiting.
        end_of = {side: max(tick for tick, s, _ in released if s == side) for side in "ab"}
        ticks = sorted({tick for tick, _, _ in released if tick <= min(end_of.values())})
        for tick in ticks:
            assert {s for t, s, _ in released if t == tick} == {"a", "b"}, tick
        assert text_of(released, "a") == text_of(released, "b") == text

    def test_the_pace_never_goes_up_even_after_both_engines_have_ended(self):
        slow = side_events("a", TEXT_A, start=0.1, chars_per_s=60) + side_events("b", TEXT_B, start=0.1,
                                                                                  chars_per_s=60)
        pacer, released = run(slow)
        assert pacer.pace == pytest.approx(0.8 * 60, rel=0.1)
        engines_done_tick = (0.1 + len(TEXT_A) / 60) / PaceConfig().tick_s
        after = [len(t) for tick, s, t in released if s == "a" and tick > engines_done_tick + 1]
        assert after and max(after) <= 2 * pacer.pace * PaceConfig().tick_s + 12

    def test_the_pace_follows_the_slower_engine_up_while_both_produce(self):
        long_text = TEXT_A * 3
        events = side_events("a", long_text, start=0.1, chars_per_s=300) + side_events("b", long_text, start=0.1,
                                                                                         chars_per_s=200)
        pacer = Pacer(start=0.0)
        for t, side, piece in sorted(events, key=lambda e: e[0]):
            if t > 2.0:
                break
            pacer.feed(side, piece, t)
        pacer.tick(2.0)
        assert PaceConfig().start_chars_per_s < pacer.pace == pytest.approx(0.8 * 200, rel=0.05)

    def test_once_an_engine_has_ended_the_pace_can_only_go_down(self):
        # Side b is slow while a answers, then fast once a has ended: its new speed never shows.
        events = side_events("a", TEXT_B, start=0.1, chars_per_s=150)
        end_a = events[-1][0]
        slow = side_events("b", TEXT_A[:150], start=0.1, chars_per_s=100)[:-1]
        fast = side_events("b", TEXT_A[150:] * 2, start=slow[-1][0], chars_per_s=1000)
        pacer, released = run(events + slow + fast)
        assert end_a < slow[-1][0]
        assert pacer.pace <= 0.8 * 100 * 1.05
        assert text_of(released, "b") == TEXT_A[:150] + TEXT_A[150:] * 2

    def test_a_failed_side_sends_nothing_more_and_the_other_goes_on(self):
        events = [e for e in side_events("a", TEXT_A, start=0.1, chars_per_s=300) if e[0] < 1.0]
        events.append((1.0, "a", FINISH))
        events += side_events("b", TEXT_B, start=0.1, chars_per_s=300)
        pacer, released = run(events, drop={"a"})
        fed_before_failure = "".join(e[2] for e in events if e[1] == "a" and e[2])
        shown = text_of(released, "a")
        assert len(shown) < len(fed_before_failure) and fed_before_failure.startswith(shown)
        assert pacer.released("a") == shown and pacer.complete("a")
        assert text_of(released, "b") == TEXT_B

    def test_a_stop_leaves_exactly_what_was_sent(self):
        events = side_events("a", TEXT_A, start=0.1, chars_per_s=400) + side_events("b", TEXT_A, start=0.1,
                                                                                      chars_per_s=200)
        pacer, released = run(events, stop_at=1.5)
        for side in "ab":
            assert pacer.released(side) == text_of(released, side)
            assert 0 < len(pacer.released(side)) < len(TEXT_A)

    def test_an_unknown_mode_is_refused(self):
        with pytest.raises(ValueError, match="paced, whole, tokens"):
            Pacer(mode="fast")


class TestWholeAndTokens:
    def test_whole_sends_each_side_once_after_both_engines_ended(self):
        events = side_events("a", TEXT_A, start=0.1, chars_per_s=900) + side_events("b", TEXT_B, start=0.1,
                                                                                      chars_per_s=50)
        _, released = run(events, mode="whole")
        assert [(s, t) for _, s, t in released] == [("a", TEXT_A), ("b", TEXT_B)]
        assert released[0][0] == released[1][0] and released[0][0] * 0.08 >= len(TEXT_B) / 50

    def test_tokens_sends_what_each_engine_gave_as_it_came(self):
        events = side_events("a", "one two three", start=0.0, chars_per_s=1, sizes=lambda i: 4)
        events += side_events("b", "x", start=0.0, chars_per_s=1)
        _, released = run(events, mode="tokens", config=PaceConfig(tick_s=1.0))
        assert [t for _, s, t in released if s == "a"] == ["one ", "two ", "thre", "e"]
