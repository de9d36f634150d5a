"""The leaderboard page's prose: what the intervals, exclusions, Elo column and style control mean.

The intervals' text depends on the board (bootstrap or sandwich, reweighted or not, its prior and
tie model):
:func:`about_intervals`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arena.ratings import ABOUT_REWEIGHTED, DEFAULT_MIN_PAIR_COUNT, INTERVAL_METHODS

#: The reasons themselves are the table under this text, one row per reason of arena.quality.exclusions.
ABOUT_EXCLUDED = (
    "Only anonymous battles whose answers both came through count. Each row below is one reason a "
    "stored vote is left out: facts of the battle (an answer named a model or its maker, so the "
    "voter may have known who was who; a side failed, so the voter judged an error; named mode, "
    "so the voter chose the models) and the vote quality rules (votes cast faster than a reader "
    "could compare the answers, scripted repeats, raters whose votes are outliers against a board "
    "fitted without them, one rater's share of a model's votes, moderation, staff decisions). Such "
    "votes are stored but never enter the ratings. A vote can be left out for more than one "
    "reason, so the reasons can add up to more than the total."
)
ABOUT_ELO = (
    "The Elo column is the online Elo rating (K = 4, every model starting at 1000), updated vote "
    "by vote in time order. It depends on the order of the votes and is shown for comparison "
    "only; the arena score is the Bradley–Terry fit, which does not."
)
ABOUT_STYLE = (
    "Style control fits the ratings together with four style differences between the two "
    "answers (length in tokens, markdown headers, list items, bold spans), as Chatbot Arena "
    "does, so a model is not rewarded merely for long or heavily formatted answers. Its "
    "intervals come from fewer bootstrap rounds than the main board's, because each round "
    "refits the whole model."
)


def about_intervals(board: Mapping[str, Any]) -> str:
    """How this board's intervals were computed (bootstrap or sandwich, reweighted or not)."""
    text = INTERVAL_METHODS.get(board.get("ci"), INTERVAL_METHODS["bootstrap"]).about
    if board.get("reweighted"):
        text += ABOUT_REWEIGHTED.format(floor=board.get("min_pair_count", DEFAULT_MIN_PAIR_COUNT))
    if board.get("prior_sd"):
        text += (f" Every rating starts from a prior: the arena mean, give or take {board['prior_sd']:.0f} points "
                 "(one standard deviation), so a model with few votes stays near the middle with a wide "
                 "interval, and the votes take over as they come in.")
    ties = board.get("ties")
    if ties and ties != "half":
        name = {"davidson": "Davidson's", "rao-kupper": "Rao and Kupper's"}.get(ties, ties)
        text += (f" Ties (and “both are bad”) are modelled as a third outcome with {name} tie model, "
                 "not counted as half a win each.")
    return text
