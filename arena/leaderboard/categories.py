"""What a rating snapshot is made of: its categories, their rules and the layout version (no Django).

The rules here are the one copy that the SQL of :mod:`arena.leaderboard.selectors` and the Elo
replay of :mod:`arena.leaderboard.elo` both follow: :func:`categories_of` says which boards a
counted vote belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

from arena.languages import LANGUAGE_NAMES

#: A battle with at least this many turns is "multi-turn".
MULTI_TURN_MIN = 2
#: A battle whose longest user prompt has at least this many (approximate) tokens is "long".
LONG_PROMPT_TOKENS = 500
#: Bumped when the layout of ``RatingSnapshot.data`` or ``elo_state`` changes.
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class CategorySpec:
    key: str
    label: str
    description: str


FIXED_CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("overall", "Overall", "Every counted vote."),
    CategorySpec("multi_turn", "Multi-turn", f"Battles of {MULTI_TURN_MIN} or more turns."),
    CategorySpec(
        "long_prompt", "Long prompts", f"Battles whose longest prompt has at least {LONG_PROMPT_TOKENS} tokens."
    ),
    CategorySpec("no_ties", "No ties", "Decisive votes only: ties and “both are bad” votes are left out."),
)
STYLE_SPEC = CategorySpec(
    "overall", "Overall, style control", "Every counted vote, with the answers' length and formatting controlled for."
)


def language_spec(code: str) -> CategorySpec:
    name = LANGUAGE_NAMES.get(code, code)
    return CategorySpec(f"lang-{code}", name, f"Battles whose first prompt is in {name} (detected).")


def categories_of(winner: str, language: str, multi: bool, long: bool) -> list[str]:
    """The categories a counted vote belongs to (besides the style board); the same rules as
    the SQL of :func:`arena.leaderboard.selectors.counted_vote_groups` and ``language_vote_groups``."""
    keys = ["overall"]
    if multi:
        keys.append("multi_turn")
    if long:
        keys.append("long_prompt")
    if winner in ("model_a", "model_b"):
        keys.append("no_ties")
    if language:
        keys.append(f"lang-{language}")
    return keys
