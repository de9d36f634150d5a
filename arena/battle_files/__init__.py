"""Battle files: the arena's votes out, and others' battles in, in FastChat's cleaned-battle schema.

* :mod:`~arena.battle_files.parse`: the pure parser (standard library and orjson; no Django);
* :mod:`~arena.battle_files.arrays`: the same files read into the columns the ratings need
  (``compute_ratings``, the benchmarks), optionally in two processes
  (:mod:`~arena.battle_files.forked`);
* :mod:`~arena.battle_files.transfer`: the database side, ``export_battles`` and ``import_battles``.

Contract: a file is validated whole before anything is returned; the first bad battle raises
``BattleFileError`` naming its line (or list index) and the reason. An export never carries an address or a rater id (only a
salted hash). This package imports nothing at import time; import the module you need.
"""
