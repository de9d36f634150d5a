"""The leaderboard: rating snapshots computed from the votes, and the pages and API that show them.

One module per responsibility, so that a change to the page cannot touch the maths and vice versa:

* :mod:`~arena.leaderboard.categories`: what a snapshot holds (categories, their rules, layout version);
* :mod:`~arena.leaderboard.boards`: aggregated counts → a board (no database; also ``compute_ratings``);
* :mod:`~arena.leaderboard.selectors`: reads: votes aggregated in SQL, stored snapshots;
* :mod:`~arena.leaderboard.elo`: the online Elo column, carried from snapshot to snapshot;
* :mod:`~arena.leaderboard.services`: writes: :func:`~arena.leaderboard.services.snapshot_create`,
  and the refresh that votes schedule (``arena.tasks.ratings_refresh_task`` calls it);
* :mod:`~arena.leaderboard.presentation`: the API's JSON and the page's context and plots;
* :mod:`~arena.leaderboard.text`: the page's prose.
* :mod:`~arena.leaderboard.settings`: the settings a board is computed with, read in one place;
* :mod:`~arena.leaderboard.provisional`: provisional and retired rows (pure);
* :mod:`~arena.leaderboard.plots`: the page's charts as inline SVG (pure).

The rating maths is :mod:`arena.ratings` (no Django). This package imports nothing at import
time; import the module you need.

Categories (``key``: meaning):

* ``overall``: every counted vote (anonymous battle, no identity leak, no failed side);
* ``multi_turn``: battles of at least ``MULTI_TURN_MIN`` turns;
* ``long_prompt``: battles whose longest prompt has at least ``LONG_PROMPT_TOKENS`` tokens;
* ``no_ties``: decisive votes only (ties and "both bad" left out);
* ``lang-<code>``: battles whose first prompt is in that language (langdetect code), listed once
  the language has ``ARENA_LEADERBOARD_CATEGORY_MIN_VOTES`` votes;
* style control (``overall`` with ``style=1``): the overall board with FastChat's style
  features (answer length, headers, lists, bold) controlled for.

Thresholds: the overall board shows numbers from ``ARENA_LEADERBOARD_MIN_VOTES`` counted votes
(default 1: a new arena sees its first board at once, and the intervals say how little it
means), every other category from ``ARENA_LEADERBOARD_CATEGORY_MIN_VOTES`` (default 30, below
which a sub-board mostly shows noise). Below its threshold a category says how many votes it
has and needs instead of printing numbers.

A comparison graph in several pieces (models that never met, even through others) cannot be
put on one scale: boards keep one group per connected component, ranks are within a group, and
pages show the groups apart and say why.
"""
