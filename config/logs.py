"""Structured logs without raw IP addresses.

``RedactIPs`` (a logging filter on the console handler) replaces every IPv4 or IPv6
address in a record's message, except loopback ones, with ``ip:<12 hex>``: an HMAC-SHA256
keyed with ``ARENA_IP_SALT``, so one client's lines still correlate while its address is
never written. ``JsonFormatter`` writes one JSON object per line (time, level, logger,
message, and the exception text when there is one): the production format.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re

_CANDIDATE = re.compile(
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"  # IPv4, possibly followed by :port
    r"|(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:.])"  # IPv6
)


def _salt() -> bytes:
    from django.conf import settings

    return (getattr(settings, "ARENA_IP_SALT", "") or "").encode()


def redact_ips(text: str) -> str:
    """``text`` with each non-loopback IP address replaced by its salted hash."""

    def replace(match: re.Match) -> str:
        raw = match.group(0)
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            return raw  # not an address after all (a time like 12:30:00 never parses)
        if address.is_loopback:
            return raw
        return "ip:" + hmac.new(_salt(), raw.encode(), hashlib.sha256).hexdigest()[:12]

    return _CANDIDATE.sub(replace, text)


class RedactIPs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_ips(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = redact_ips(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
