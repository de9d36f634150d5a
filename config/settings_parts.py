"""The settings that are built rather than read: ``config.settings`` reads each environment
variable (so the Python name stands beside the variable's name) and hands the raw values here.

Contract: every function is pure (no ``os.environ``, no I/O) and either returns the Django
setting's value or raises ``ImproperlyConfigured`` naming the variable and what it must be.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from arena.ratings.scale import parse_anchor

FILESYSTEM_BROKER = "filesystem://"

# Content-Security-Policy (django-csp) in every mode, so the browser tests run under it. Scripts only
# from our own static files; inline <style> blocks and style attributes (admin, SVG charts) allowed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],  # fetch and same-origin WebSockets (CSP level 3)
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}


def databases(url: str, conn_max_age: int, data_dir: Path, password: str) -> dict:
    """``DATABASES`` from ``DATABASE_URL``; ``password`` (``DATABASE_PASSWORD``, a secret file in
    compose) fills a URL written without one."""
    # Each web thread keeps its own connection; health checks replace one the server dropped.
    default = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    if default["ENGINE"] == "django.db.backends.sqlite3":
        # Several processes (web, worker) share the file: wait for locks instead of failing.
        # IMMEDIATE takes the write lock when a transaction starts: two concurrent votes then wait
        # for each other instead of failing with "database is locked" on a read-to-write upgrade.
        default.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
        # A file, not memory, so browser tests can serve the test database from a second process.
        default["TEST"] = {"NAME": str(data_dir / "test-db.sqlite3")}
    if password and not default.get("PASSWORD"):
        default["PASSWORD"] = password
    return {"default": default}


def channel_layers(redis_url: str) -> dict:
    if redis_url:
        return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}}
    # Embedded mode: one web process, so an in-memory layer is enough for the rater's own
    # streams. Worker → page news falls back to polling (docs/operations.md).
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def caches(redis_url: str, data_dir: Path) -> dict:
    """"default" is Django's own default (per process). "shared" is seen by the web and worker
    processes alike (the leaderboard's refresh-coalescing flag): Redis when set, else files under
    the data folder, which the embedded mode's processes share since they run on one machine."""
    shared = (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "arena"}
        if redis_url
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(data_dir / "cache")}
    )
    return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "shared": shared}


def filesystem_broker_options(broker_dir: Path) -> dict:
    """The embedded broker's folders (kombu's filesystem transport)."""
    return {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "control_folder": str(broker_dir / "control"),
        "store_processed": False,
    }


def leaderboard_anchor(raw: str) -> tuple[str, float] | None:
    """``ARENA_LEADERBOARD_ANCHOR`` = ``MODEL=RATING`` (:func:`arena.ratings.parse_anchor`), or None
    (ratings centred at mean 1000)."""
    if not raw.strip():
        return None
    try:
        return parse_anchor(raw.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"ARENA_LEADERBOARD_ANCHOR {exc}") from None


def ip_networks(name: str, nets: list[str]) -> list[str]:
    """``nets`` unchanged once each parses as an IP network (host bits allowed)."""
    try:
        for net in nets:
            ipaddress.ip_network(net, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None
    return nets


def endpoints(raw: str) -> list[dict]:
    """``ARENA_ENDPOINTS``: a JSON list of objects (the keys are checked by ``manage.py bootstrap``)."""
    try:
        value = json.loads(raw or "[]")
    except ValueError as exc:
        raise ImproperlyConfigured(f"ARENA_ENDPOINTS is not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ImproperlyConfigured("ARENA_ENDPOINTS must be a JSON list of objects")
    return value


def logging_config(level: str, log_format: str, quiet_kombu: bool) -> dict:
    """``LOGGING``: JSON lines or plain text, IP addresses replaced by a salted hash in every message
    whatever its logger (config/logs.py)."""
    if log_format not in {"plain", "json"}:
        raise ImproperlyConfigured(f"ARENA_LOG_FORMAT must be plain or json, got {log_format!r}")
    loggers = {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "daphne": {"level": "WARNING"}}
    if quiet_kombu:
        # kombu warns "No hostname was supplied" for every filesystem:// connection: it has none to supply.
        loggers["kombu.connection"] = {"level": "ERROR"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
                       "json": {"()": "config.logs.JsonFormatter"}},
        "filters": {"no_ips": {"()": "config.logs.RedactIPs"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": log_format,
                                 "filters": ["no_ips"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": loggers,
    }


def folders(data_dir: Path, models_dir: Path, training_dir: Path, databases: dict, caches: dict,
            broker_options: dict) -> list[tuple[str, Path]]:
    """Every folder the arena writes, each with the variable that names it (for the error)."""
    default = databases["default"]
    sqlite_name = default["NAME"] if default["ENGINE"].endswith("sqlite3") else ""
    found = [("ARENA_DATA_DIR", data_dir), ("ARENA_DATA_DIR", data_dir / "logs"),
             ("ARENA_DATA_DIR", data_dir / "datasets"), ("ARENA_MODELS_DIR", models_dir),
             ("ARENA_TRAINING_DIR", training_dir)]
    if sqlite_name and sqlite_name != ":memory:":
        found.append(("DATABASE_URL", Path(sqlite_name).parent))
    if caches["shared"]["BACKEND"].endswith("FileBasedCache"):
        found.append(("ARENA_DATA_DIR", Path(caches["shared"]["LOCATION"])))
    found += [("ARENA_DATA_DIR", Path(broker_options[key]))
              for key in ("data_folder_in", "processed_folder", "control_folder") if key in broker_options]
    return found
