"""Pairing: which models battle, and which two meet in a new battle.

The order of the steps, one module each:

* :mod:`~arena.pairing.contestants`: the arena's side of a served model (its sampling weight,
  the new-model boost, whether it may battle at all);
* :mod:`~arena.pairing.retirement`: retiring and reinstating models (admin decisions, logged as
  ``BoardChange`` rows), and counting excluded votes again;
* :mod:`~arena.pairing.holds`: why a healthy model sits out right now (budget, errors, LoRA slots);
* :mod:`~arena.pairing.mode`: ``ARENA_PAIRING`` picks the rule, reading the board it needs;
* :mod:`~arena.pairing.weighted`: the ``weighted`` rule (Chatbot Arena's), and ``PairingError``;
* :mod:`~arena.pairing.sampling`: the ``active`` rule (pure numpy/scipy, no Django).

Contract: a pairing either returns two different served models that may battle now, or raises
:class:`~arena.pairing.weighted.PairingError` with a message safe to show the rater. Nothing
here writes a battle (``arena.services.battle_create`` does). This package imports nothing at
import time; import the module you need.
"""
