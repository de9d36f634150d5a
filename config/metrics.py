"""The guarded /metrics view: the composition root exports every app's Prometheus metrics
(``arena.metrics``, ``training.metrics``, importing them registers their collectors) and
django-prometheus' request metrics.

``metrics_view`` answers only a direct peer (the TCP peer, never an ``X-Forwarded-For`` address,
even from a trusted proxy) in ``ARENA_METRICS_ALLOWED_NETS`` or a request bearing
``ARENA_METRICS_TOKEN``; everyone else gets 404.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404
from django_prometheus.exports import ExportToDjangoView

import arena.metrics  # noqa: F401 - registers the arena's collectors
import training.metrics  # noqa: F401 - registers the training app's collectors


def _allowed(request) -> bool:
    token = settings.ARENA_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        # The direct peer, never an address a proxy forwarded: a trusted proxy in front of a
        # reachable port would otherwise let any client claim 127.0.0.1 in X-Forwarded-For.
        peer = ipaddress.ip_address(request.META.get("ARENA_PEER_ADDR", request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net, strict=False) for net in settings.ARENA_METRICS_ALLOWED_NETS)


def metrics_view(request):
    if not _allowed(request):
        raise Http404
    return ExportToDjangoView(request)
