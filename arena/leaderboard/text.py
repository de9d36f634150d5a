"""The leaderboard page's prose: what the intervals, exclusions, Elo column and style control mean."""

from __future__ import annotations

ABOUT_EXCLUDED = (
    "Only anonymous battles count: a vote is left out when either answer named a model or its "
    "maker (an identity leak: the voter may have known who was who), when a side failed to "
    "answer (the voter judged an error, not a model), or when the battle was in named mode "
    "(the voter chose the models). Such votes are stored but never enter the ratings. A vote "
    "can be left out for more than one reason, so the reasons can add up to more than the total."
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
