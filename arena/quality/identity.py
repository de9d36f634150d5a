"""Detecting answers that reveal a model's identity, which would bias the vote.

Contract: :func:`find_identity_words` matches each word case-insensitively where it starts a
word and is not continued by a letter, so version and size suffixes still match ("gemma" in
"Gemma3", "smollm" in "smollm2-135m-instruct", "qwen" in "Qwen2.5") while "phi" does not match
"philosophy"; a word ending in a digit also matches with any suffix ("gpt-4" in "GPT-4o").

It matches through the obfuscations a model (or a prompt asking for them) can produce:

* the text is NFKC-normalised and case-folded ("ＳｍｏｌＬＭ" is "smollm"), and format and
  combining characters (Unicode categories Cf, Mn, Me: zero-width spaces and joiners, soft
  hyphens, bidi controls, strike-through marks) are removed ("Smol\u200bLM2");
* the word and the text are compared on their letters and digits only, and a run of at most
  ``MAX_GAP`` other characters (a *gap*, on one line) between two of the word's letters is
  ignored when it is a gap the word itself has ("gpt 4", "hugging-face" for "hugging face"),
  or has no whitespace in it ("S-m-o-l-L-M", "s.m.o.l.l.m", "Smol_LM") and the word has at
  least 3 letters, or has whitespace and either the word has at least ``SPACED_MIN_CHARS``
  letters ("Smol LM") or every piece of the match is one character ("S m o l L M").
  Two-letter words ("yi") match only as written: "y_i" and "x, y, i" are ordinary notation.

:func:`model_identity_words` derives the words of one contestant (public name, engine model
id, organization, base family) so a deployment's own models are always in the list.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

#: The longest gap (characters between two letters of a word) that is still ignored.
MAX_GAP = 3
#: Words this long may be split by whitespace anywhere ("Smol LM"); shorter ones only when spelled out.
SPACED_MIN_CHARS = 5
_DROPPED_CATEGORIES = {"Cf", "Mn", "Me"}
_RUN = re.compile(r"[^\W_]+")  # letters and digits of any script

# The kinds of gap before a run of letters and digits.
_NONE, _MARK, _SPACE, _FAR = 0, 1, 2, 3


def _gap_kind(gap: str) -> int:
    if len(gap) > MAX_GAP or "\n" in gap or "\r" in gap:
        return _FAR
    return _SPACE if any(ch.isspace() for ch in gap) else _MARK


def _normalise(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    return text.casefold()


@dataclass(frozen=True)
class _Skeleton:
    """A text's letters and digits (``chars``) in runs: where each run starts in ``chars`` and
    the kind of gap before it (``_NONE`` for the first run of the text)."""

    chars: str
    starts: list[int]
    gaps: list[int]

    @classmethod
    def of(cls, text: str) -> _Skeleton:
        text = _normalise(text)
        chars, starts, gaps, offset, previous_end = [], [], [], 0, None
        for match in _RUN.finditer(text):
            starts.append(offset)
            gaps.append(_NONE if previous_end is None else _gap_kind(text[previous_end:match.start()]))
            chars.append(match.group())
            offset += match.end() - match.start()
            previous_end = match.end()
        return cls("".join(chars), starts, gaps)


@dataclass(frozen=True)
class _Word:
    word: str  # as reported
    chars: str  # its letters and digits
    own_gaps: frozenset[int]  # offsets in ``chars`` where the word itself has a gap

    @classmethod
    def of(cls, word: str) -> _Word | None:
        word = " ".join(word.strip().lower().split())
        skeleton = _Skeleton.of(word)
        if len(skeleton.chars) < 2:
            return None
        return cls(word, skeleton.chars, frozenset(skeleton.starts[1:]))


def _matches_at(text: _Skeleton, word: _Word, at: int) -> bool:
    """Whether ``word`` found at ``text.chars[at:]`` obeys the boundary and gap rules."""
    first = bisect_right(text.starts, at) - 1
    if text.starts[first] != at:
        return False  # continues a run of letters or digits: "reopenai"
    end = at + len(word.chars)
    last = bisect_right(text.starts, end - 1) - 1  # the run holding the match's last character
    ends_run = end == len(text.chars) or (last + 1 < len(text.starts) and text.starts[last + 1] == end)
    if not ends_run and text.chars[end].isalpha() and not word.chars[-1].isdigit():
        return False  # continued by a letter: "philosophy"
    bounds = [at, *text.starts[first + 1:last + 1], end]
    single = all(b - a == 1 for a, b in zip(bounds, bounds[1:], strict=False))
    for run in range(first + 1, last + 1):
        kind = text.gaps[run]
        if kind == _FAR:
            return False
        if text.starts[run] - at in word.own_gaps:
            continue
        n = len(word.chars)
        if n < 3 or (kind == _SPACE and n < SPACED_MIN_CHARS and not single):
            return False
    return True


def find_identity_words(answers: Iterable[str], words: Iterable[str]) -> list[str]:
    """Words from ``words`` that appear in any answer (see the module contract).

    Only model answers are checked, never the user's prompt: FastChat checks both,
    which throws away valid votes when a user merely asks "are you Claude?".
    """
    text = _Skeleton.of("\n".join(answers))
    found = set()
    for raw in words:
        word = _Word.of(raw)
        if word is None or word.word in found:
            continue
        at = text.chars.find(word.chars)
        while at >= 0:
            if _matches_at(text, word, at):
                found.add(word.word)
                break
            at = text.chars.find(word.chars, at + 1)
    return sorted(found)


# Leading words of model names that are ordinary English: never used alone as a family.
_NOT_A_FAMILY = {"model", "chat", "base", "instruct", "test", "tiny", "small", "large", "mini", "the", "open", "my"}


def family_of(name: str) -> str:
    """The base family of a model name: its leading letters ("smollm2-135m-instruct" → "smollm",
    "Qwen/Qwen2.5-0.5B" → "qwen", "gemma-3-270m" → "gemma"); "" when under three letters or an
    ordinary word."""
    last = name.strip().lower().rsplit("/", 1)[-1]
    match = re.match(r"[a-z]+", last)
    family = match.group(0) if match else ""
    return family if len(family) >= 3 and family not in _NOT_A_FAMILY else ""


def model_identity_words(names: Iterable[str], organization: str = "") -> set[str]:
    """Identity words of one contestant: each of its names (public name, engine model id, its
    parent's names) lower-case, with its last path part and its family, and its organization."""
    words: set[str] = set()
    for name in names:
        name = (name or "").strip().lower()
        if not name:
            continue
        words.update({name, name.rsplit("/", 1)[-1], family_of(name)})
    words.add(" ".join(organization.lower().split()))
    return {w for w in words if len(w) >= 2}
