"""Vote quality: which stored votes count in the ratings, and why the others do not.

* :mod:`~arena.quality.exclusions`: the one list of exclusion reasons, and the SQL filter of each
  (every surface that names a reason reads it from here);
* :mod:`~arena.quality.rules`: the checks run when a vote is stored, the periodic re-marking,
  and staff decisions about raters;
* :mod:`~arena.quality.outliers`: keys (rater ids, IP hashes) that vote against the board, and
  the share cap (numpy only);
* :mod:`~arena.quality.identity`: answers that name a model (pure);
* :mod:`~arena.quality.audit`: the admin's "Vote audit" page.

Contract: a vote left out is kept, with its reasons (``Vote.exclusion`` and the facts of
its battle), and the board counts only votes without one. This package imports nothing at
import time; import the module you need.
"""
