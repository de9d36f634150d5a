"""The battle loop's helpers: what happens between a prompt and a vote.

* :mod:`~arena.battle.context_fit`: whether a turn fits each side's context, before any engine call;
* :mod:`~arena.battle.pacing`: releasing both sides' answers so the stream tells nothing but the
  text (pure);
* :mod:`~arena.battle.costs`: usage and cost per response, side and model, and daily budgets;
* :mod:`~arena.battle.reaper`: closing answers nobody is generating any more.

Contract: the writes of a battle (create, turn, side finish, vote) stay in :mod:`arena.services`
and the WebSocket loop in :mod:`arena.consumers`; the modules here answer one question each for
them. This package imports nothing at import time; import the module you need.
"""
