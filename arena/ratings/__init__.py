"""Rating maths for the arena leaderboard: online Elo, Bradley–Terry, intervals, style control.

Pure package: numpy only (no scipy: :mod:`~arena.ratings.logistic` says why), no Django, no I/O. Everything works on *aggregated* counts
(:class:`PairCounts`: one row per model pair with ``[i_wins, j_wins, tie, tie_bothbad]``), which is
what an SQL ``GROUP BY model_a, model_b, winner`` returns, so the board never needs the battle rows.

Conventions (those of the public LMSYS / Chatbot Arena leaderboard):

* ratings are on the Elo scale: 400 points per factor 10 in odds, i.e. ``400 / ln 10`` points per logit;
* a tie and a "both bad" tie each count as half a win for each side;
* Bradley–Terry ratings are centred so that their mean is 1000, then optionally shifted by one
  constant so that an anchor model gets a fixed rating (the public board pins
  ``mixtral-8x7b-instruct-v0.1`` at 1114, see :data:`LMSYS_ANCHOR`);
* online Elo: K = 4, base 10, scale 400, every model starts at 1000.

One module per job, each readable in one sitting:

=================  ==========================================================================
``scale``          the Elo scale and the outcome codes (:data:`WINNERS`)
``counts``         :class:`PairCounts`, the aggregated input of every fit
``elo``            online Elo (:func:`elo_update`, :func:`elo_from_arrays`)
``linalg``         small dense linear algebra that stays on the calling thread
``logistic``       σ(x) without scipy
``bt``             the Bradley–Terry Newton fit (:func:`fit_bt`, :func:`predicted_win_rate`) and
                   its Gaussian prior (:func:`prior_reg`, :data:`DEFAULT_PRIOR_SD`)
``intervals``      the interval methods behind one interface (:data:`INTERVAL_METHODS`):
``bootstrap``      resampled refits
``sandwich``       Huber–White standard errors (LMArena's default)
``weights``        inverse-pair-frequency reweighting (:func:`pair_weights`)
``board``          the whole leaderboard (:func:`compute_board`, :class:`Board`)
``style_control``  FastChat's contextual BT (:func:`fit_style_control`)
``ties``           Davidson and Rao–Kupper tie models (:func:`fit_ties`, :data:`TIE_MODELS`)
``fragility``      votes whose removal would swap neighbours on the board (``Board.flips``)
=================  ==========================================================================

The names below are the public API; import them from ``arena.ratings``.
"""

from arena.ratings.board import Board, compute_board, rank_upper_bound
from arena.ratings.bootstrap import ABOUT_INTERVALS
from arena.ratings.bt import (
    DEFAULT_PRIOR_SD,
    DEFAULT_REG,
    fit_bt,
    predicted_win_rate,
    prior_reg,
    prior_sd_of_reg,
)
from arena.ratings.counts import PairCounts
from arena.ratings.elo import elo_from_arrays, elo_update
from arena.ratings.intervals import CI_METHODS, INTERVAL_METHODS, IntervalMethod
from arena.ratings.scale import (
    A_WINS,
    B_WINS,
    ELO_BASE,
    ELO_K,
    ELO_SCALE,
    INITIAL_RATING,
    LMSYS_ANCHOR,
    POINTS_PER_LOGIT,
    TIE,
    TIE_BOTHBAD,
    WINNERS,
    parse_anchor,
)
from arena.ratings.style_control import (
    STYLE_FEATURE_NAMES,
    StyleControlFit,
    fit_style_control,
    style_features,
)
from arena.ratings.ties import DEFAULT_TIES, TIE_MODELS, fit_ties, outcome_probs
from arena.ratings.weights import ABOUT_REWEIGHTED, DEFAULT_MIN_PAIR_COUNT, pair_weights

__all__ = [
    "ABOUT_INTERVALS",
    "ABOUT_REWEIGHTED",
    "A_WINS",
    "B_WINS",
    "Board",
    "CI_METHODS",
    "DEFAULT_MIN_PAIR_COUNT",
    "DEFAULT_PRIOR_SD",
    "DEFAULT_REG",
    "DEFAULT_TIES",
    "ELO_BASE",
    "ELO_K",
    "ELO_SCALE",
    "INITIAL_RATING",
    "INTERVAL_METHODS",
    "IntervalMethod",
    "LMSYS_ANCHOR",
    "POINTS_PER_LOGIT",
    "STYLE_FEATURE_NAMES",
    "PairCounts",
    "StyleControlFit",
    "TIE",
    "TIE_BOTHBAD",
    "TIE_MODELS",
    "WINNERS",
    "compute_board",
    "elo_from_arrays",
    "elo_update",
    "fit_bt",
    "fit_style_control",
    "fit_ties",
    "outcome_probs",
    "pair_weights",
    "parse_anchor",
    "predicted_win_rate",
    "prior_reg",
    "prior_sd_of_reg",
    "rank_upper_bound",
    "style_features",
]
