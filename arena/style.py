"""Style features of an answer, for style-controlled ratings (pure: standard library only).

The four per-answer counts FastChat's style control uses (``conv_metadata`` of the cleaned
battle files): answer length in tokens, markdown headers, list items and bold spans. Headers,
list items and bold spans are counted outside code: fenced blocks (``` or ~~~, an unclosed
fence runs to the end) and inline code spans are removed first, so ``# comment`` lines in a
Python block or ``**kwargs`` in backticks do not count as markdown.

Per battle, :func:`arena.ratings.style_features` turns the counts of the two answers into the
features ``(a − b) / (a + b + 1)``. For a multi-turn conversation pass the assistant turns
joined with a newline, as FastChat does.

Differences from FastChat's ``count_markdown_elements``, all on edge cases: it removes only
fenced blocks written with backticks and keeps inline code; a thematic break such as
``* * *`` or ``- - -`` is not counted as a list item here; ``1)`` items count as ordered list
items (CommonMark allows both ``1.`` and ``1)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["STYLE_FEATURES", "StyleCounts", "approx_tokens", "strip_code", "style_counts"]

#: Order of :class:`StyleCounts`' fields (and of the ratings module's columns).
STYLE_FEATURES: tuple[str, str, str, str] = ("tokens", "headers", "lists", "bold")

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")  # one line only: a stray ` must not eat a page
_HEADER = re.compile(r"^#{1,6}(?:[ \t]|$)", re.MULTILINE)
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*+])(?:[ \t]|$)")
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
# A token is a run of word characters or a single other non-space character.
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class StyleCounts:
    """Style counts of one answer (all non-negative)."""

    tokens: int
    headers: int
    lists: int
    bold: int

def strip_code(markdown: str) -> str:
    """The text with fenced code blocks and inline code spans removed.

    A fence is a line starting (after at most 3 spaces) with 3+ backticks or tildes; the block
    ends at a line with a fence of the same character at least as long, or at the end of the
    text. The fence lines go too.
    """
    kept: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
            else:
                kept.append(line)
        elif (
            m
            and m.group(1)[0] == fence[0]
            and len(m.group(1)) >= len(fence)
            and not line.strip().strip(fence[0])
        ):
            fence = None
    return _INLINE_CODE.sub("", "\n".join(kept))


def approx_tokens(text: str) -> int:
    """Approximate token count: words (runs of letters, digits, ``_``) plus punctuation marks.

    FastChat counts GPT-4 tokenizer (tiktoken) tokens; this approximation needs no tokenizer
    and is within roughly ±30% of it on English prose (tiktoken splits long or rare words, this
    does not). Since the style feature is the ratio ``(a − b)/(a + b + 1)`` of two such counts,
    a consistent approximation matters more than the absolute scale. Pass the real count to
    :func:`style_counts` when the serving layer reports one.
    """
    return len(_TOKEN.findall(text))


def style_counts(markdown: str, *, tokens: int | None = None) -> StyleCounts:
    """Count the style elements of an answer written in markdown.

    ``tokens``: the answer's real token count if known (e.g. the completion's usage); otherwise
    :func:`approx_tokens` of the whole answer, code included (FastChat counts code tokens too).
    Headers are ATX headers (``#`` to ``######`` followed by a space) at the start of a line;
    list items are lines starting, after optional indentation, with ``-``, ``*``, ``+``, ``1.``
    or ``1)`` and a space; bold spans are ``**text**`` or ``__text__`` on one line.
    """
    if tokens is not None and tokens < 0:
        raise ValueError("tokens must be non-negative")
    prose = strip_code(markdown)
    lists = sum(
        1 for line in prose.splitlines() if _LIST_ITEM.match(line) and not _THEMATIC_BREAK.match(line)
    )
    return StyleCounts(
        tokens=approx_tokens(markdown) if tokens is None else int(tokens),
        headers=len(_HEADER.findall(prose)),
        lists=lists,
        bold=len(_BOLD.findall(prose)),
    )
