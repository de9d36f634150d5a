"""Abuse at the door: who is asking, and how often they may.

* :mod:`~arena.abuse.clientip`: the rater's address from trusted proxies, and its salted hash
  (the only form an address is ever stored in);
* :mod:`~arena.abuse.limits`: rate limits of the rater's loop (battles, concurrent generations,
  votes), counted from the rows the arena stores anyway;
* :mod:`~arena.abuse.login_throttle`: the pseudo-address django-axes counts sign-in failures by.

Contract: a check here either passes and stores nothing, or raises ``ArenaError`` with a
message safe to show (``rate_limited`` with a ``retry_after``); no raw address leaves this
package. What happens to votes once stored is :mod:`arena.quality`. This package imports
nothing at import time; import the module you need.
"""
