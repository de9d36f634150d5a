"""The client address django-axes counts sign-in failures by, without storing an address.

Contract: :func:`pseudo_address` (``AXES_CLIENT_IP_CALLABLE``) maps the request's client address
(``REMOTE_ADDR``, already set from trusted proxies by ``arena.abuse.clientip.TrustedProxyMiddleware``)
to an IPv6 address in ``fd00::/8`` built from its salted hash (``arena.abuse.clientip.ip_hash``): one
client, one pseudo-address, as distinct as the hash, and no raw address in axes' tables (whose
column is an IP address field). Settings: ``ARENA_LOGIN_FAILURE_LIMIT``, ``ARENA_LOGIN_LOCKOUT_S``
(docs/abuse-and-privacy.md).
"""

from __future__ import annotations

import ipaddress

from arena.abuse.clientip import ip_hash


def pseudo_address(request) -> str | None:
    digest = ip_hash(request.META.get("REMOTE_ADDR"))
    if not digest:
        return None
    return str(ipaddress.IPv6Address((0xFD << 120) | int(digest[:30], 16)))
