"""Detecting answers that reveal a model's identity, which would bias the vote.

Contract: :func:`find_identity_words` matches each word case-insensitively where it starts a
word and is not continued by a letter, so version and size suffixes still match ("gemma" in
"Gemma3", "smollm" in "smollm2-135m-instruct", "qwen" in "Qwen2.5") while "phi" does not match
"philosophy"; a word ending in a digit also matches with any suffix ("gpt-4" in "GPT-4o").
:func:`model_identity_words` derives the words of one contestant (public name, engine model
id, organization, base family) so a deployment's own models are always in the list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def _pattern(word: str) -> str:
    tail = "" if word[-1].isdigit() else r"(?![^\W\d_])"  # not followed by a letter
    return rf"(?<![^\W_]){re.escape(word)}{tail}"


def find_identity_words(answers: Iterable[str], words: Iterable[str]) -> list[str]:
    """Words from ``words`` that appear in any answer (see the module contract).

    Only model answers are checked, never the user's prompt: FastChat checks both,
    which throws away valid votes when a user merely asks "are you Claude?".
    """
    text = "\n".join(answers).lower()
    found = set()
    for word in words:
        word = " ".join(word.strip().lower().split())
        if len(word) >= 2 and re.search(_pattern(word), text):
            found.add(word)
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
