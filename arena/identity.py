"""Detecting answers that reveal a model's identity, which would bias the vote."""

from __future__ import annotations

import re
from collections.abc import Iterable


def find_identity_words(answers: Iterable[str], words: Iterable[str]) -> list[str]:
    """Words from ``words`` that appear (case-insensitive, as whole words) in any answer.

    Only model answers are checked, never the user's prompt: FastChat checks both,
    which throws away valid votes when a user merely asks "are you Claude?".
    """
    text = "\n".join(answers).lower()
    found = []
    for word in words:
        word = word.strip().lower()
        if word and re.search(rf"(?<![\w-]){re.escape(word)}(?![\w])", text):
            found.append(word)
    return sorted(set(found))
