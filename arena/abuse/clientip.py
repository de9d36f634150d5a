"""The rater's IP address, its salted hash, and which proxies may name it.

Contract:

* :func:`client_ip` picks the client address from the peer address and the
  ``X-Forwarded-For`` header, believing the header only through trusted hops
  (``ARENA_TRUSTED_PROXIES``): empty (the default) ignores the header; a number ``N``
  trusts the last ``N`` hops (the peer and the ``N - 1`` proxies it names); a comma list of
  CIDRs trusts any hop inside them, walking the chain from the right. A malformed header
  entry stops the walk at the last good address.
* :func:`scope_client_ip` (ASGI scopes, WebSocket and HTTP) and :class:`TrustedProxyMiddleware`
  (Django requests: rewrites ``REMOTE_ADDR``) apply the same rule.
* :func:`ip_hash` is the only form an address is ever stored or logged in: HMAC-SHA256 keyed
  with ``ARENA_IP_SALT`` (required and distinct from the secret key outside DEBUG). An IPv6
  address is hashed as its ``/ARENA_IPV6_PREFIX`` network (default /64, what one subscriber
  gets: a client that picks a new address inside it for every request is one key); an
  IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as its IPv4 address; anything that does not
  parse as an address, as given.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_key(ip: str) -> str:
    """What :func:`ip_hash` hashes: an IPv4 address, an IPv6 network (``/ARENA_IPV6_PREFIX``), or the text."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, settings.ARENA_IPV6_PREFIX), strict=False))
    return str(address) if address is not None else ip


def ip_hash(ip: str | None) -> str:
    """A salted hash of an IP address (IPv6: of its network): counts per client without keeping the address."""
    if not ip:
        return ""
    return hmac.new(settings.ARENA_IP_SALT.encode(), ip_key(ip).encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=8)
def parse_trusted(raw: str) -> int | tuple[Network, ...]:
    """``""`` → 0 (trust no header), ``"2"`` → 2 hops, ``"10.0.0.0/8,::1"`` → networks."""
    raw = raw.strip()
    if not raw:
        return 0
    if raw.isdigit():
        return int(raw)
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"ARENA_TRUSTED_PROXIES={raw!r}: {exc} (use a hop count or CIDRs)") from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_ip(peer: str | None, forwarded_for: str | None, trusted: str | None = None) -> str | None:
    """The client's address: ``peer`` unless trusted proxies vouch for an ``X-Forwarded-For`` entry."""
    rule = parse_trusted(settings.ARENA_TRUSTED_PROXIES if trusted is None else trusted)
    if not peer or not forwarded_for or not rule:
        return peer
    chain = [peer]  # right to left: the peer, then what each proxy says it saw
    for entry in reversed(forwarded_for.split(",")):
        address = _address(entry)
        if address is None:
            break
        chain.append(str(address))
    if isinstance(rule, int):
        return chain[min(rule, len(chain) - 1)]
    for hop in chain:
        address = _address(hop)
        if address is None or not any(address in net for net in rule):
            return hop
    return chain[-1]


def scope_client_ip(scope: dict) -> str | None:
    """The client address of an ASGI connection (headers are lower-case bytes in ASGI)."""
    peer = (scope.get("client") or (None, None))[0]
    forwarded = b",".join(value for name, value in scope.get("headers") or [] if name == b"x-forwarded-for")
    return client_ip(peer, forwarded.decode("latin-1") if forwarded else None)


class TrustedProxyMiddleware:
    """Sets ``request.META["REMOTE_ADDR"]`` to :func:`client_ip` for the rest of Django, keeping the
    direct peer's address as ``request.META["ARENA_PEER_ADDR"]`` (what /metrics decides on)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.META["ARENA_PEER_ADDR"] = request.META.get("REMOTE_ADDR", "")
        ip = client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))
        if ip:
            request.META["REMOTE_ADDR"] = ip
        return self.get_response(request)
