"""Settings for the arena: one file, read from environment variables only.

Every variable is read here, once, through the small ``env_*`` helpers below;
the rest of the code reads ``settings.X`` and never ``os.environ``. A value
that cannot be parsed raises ``ImproperlyConfigured`` at start-up instead of
being silently replaced by a default. The last lines create the folders the
arena writes (``config.paths.ensure_dirs``), so a fresh clone can migrate.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.paths import ensure_dirs

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum {maximum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    """Read NAME_FILE first (Docker secrets), then NAME."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, default)


def env_url(name: str, default: str, schemes: set[str]) -> str:
    raw = os.environ.get(name, default)
    if raw == "":
        return ""
    scheme = urlparse(raw).scheme
    if scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must use one of {sorted(schemes)}, got {scheme!r}")
    return raw


DEBUG = env_bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_DEBUG is false")
    # Development only: a fixed key keeps sessions valid across restarts of `make run`.
    SECRET_KEY = "dev-insecure-arena-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Where the arena keeps what it makes at run time: the SQLite file, converted
# models, training job directories, the embedded Celery broker's folders.
DATA_DIR = Path(env_str("ARENA_DATA_DIR", str(BASE_DIR / "var"))).resolve()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "serving",
    "arena",
    "training",
    "config",  # project-level commands that wire the three apps together: bootstrap, run_all
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_url(
    "DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}", {"sqlite", "postgres", "postgresql", "pgsql"}
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker) share the file: wait for locks instead of failing.
    # IMMEDIATE takes the write lock when a transaction starts: two concurrent votes then wait
    # for each other instead of failing with "database is locked" on a read-to-write upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # A file, not memory, so browser tests can serve the test database from a second process.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the finders in every mode, so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/admin/login/"

# --- Redis: channel layer and Celery broker when set, embedded fallbacks when not ---
REDIS_URL = env_url("REDIS_URL", "", {"redis", "rediss", "unix"})

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    # Embedded mode: one web process, so an in-memory layer is enough for the
    # rater's own streams. Worker → page news falls back to polling (see README).
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# "default" is Django's own default (per process). "shared" is seen by the web and worker
# processes alike (the leaderboard's refresh-coalescing flag): Redis when set, else files under
# DATA_DIR, which the embedded mode's processes share since they run on one machine.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "arena"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(DATA_DIR / "cache")}
    ),
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_DIR = DATA_DIR / "celery-broker"
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Longer than the longest training run, or Redis redelivers a job that is
    # still training to another worker (see training.tasks for the guard too).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 6 * 3600, minimum=60)
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"training.tasks.job_run": {"queue": "training"}, "training.tasks.gate_run": {"queue": "training"}}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Arena ---
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 5, minimum=1, maximum=50)
ARENA_MAX_PROMPT_CHARS = env_int("ARENA_MAX_PROMPT_CHARS", 4000, minimum=1)
ARENA_MAX_OUTPUT_TOKENS = env_int("ARENA_MAX_OUTPUT_TOKENS", 256, minimum=1, maximum=32768)
ARENA_GENERATION_TIMEOUT_S = env_float("ARENA_GENERATION_TIMEOUT_S", 120.0, minimum=1.0)
ARENA_IP_SALT = env_secret("ARENA_IP_SALT") or SECRET_KEY
# Model and organization names whose mention in a model's answer flags the vote
# (FastChat's list, lower-case, matched as whole words).
ARENA_IDENTITY_WORDS = env_list(
    "ARENA_IDENTITY_WORDS",
    [
        "vicuna", "lmsys", "koala", "uc berkeley", "open assistant", "laion", "chatglm", "chatgpt",
        "gpt-4", "openai", "anthropic", "claude", "bard", "palm", "lamda", "google", "gemini", "gemma",
        "llama", "meta ai", "mistral", "mixtral", "qwen", "alibaba", "deepseek", "yi", "01.ai",
        "baichuan", "smollm", "hugging face", "huggingface", "cohere", "command-r", "phi", "microsoft",
    ],
)
# The data the product uses at run time ships in the repository's data/ (see data/README.md).
ARENA_PROMPTS_DIR = Path(env_str("ARENA_PROMPTS_DIR", str(BASE_DIR / "data" / "arena_prompts")))
# Chatbot Arena boosts a new model's sampling weight so it collects votes quickly.
ARENA_NEW_MODEL_BOOST = env_float("ARENA_NEW_MODEL_BOOST", 5.0, minimum=1.0)
ARENA_NEW_MODEL_BOOST_VOTES = env_int("ARENA_NEW_MODEL_BOOST_VOTES", 50, minimum=0)

# --- Leaderboard (arena/leaderboard/) ---
# Votes a category needs before its board shows numbers: the overall board from the first
# vote (its intervals say how little one vote means), every other category (multi-turn, long
# prompts, no ties, style control, each language) from a sample worth comparing.
ARENA_LEADERBOARD_MIN_VOTES = env_int("ARENA_LEADERBOARD_MIN_VOTES", 1, minimum=1)
ARENA_LEADERBOARD_CATEGORY_MIN_VOTES = env_int("ARENA_LEADERBOARD_CATEGORY_MIN_VOTES", 30, minimum=1)
ARENA_LEADERBOARD_ROUNDS = env_int("ARENA_LEADERBOARD_ROUNDS", 100, minimum=0, maximum=10000)
# Style control refits the whole model per bootstrap round (~0.5 s per million votes): fewer rounds.
ARENA_LEADERBOARD_STYLE_ROUNDS = env_int("ARENA_LEADERBOARD_STYLE_ROUNDS", 10, minimum=0, maximum=1000)
# A style-control fit slower than a second is redone at most this often (others: every snapshot).
ARENA_LEADERBOARD_STYLE_EVERY_S = env_float("ARENA_LEADERBOARD_STYLE_EVERY_S", 300.0, minimum=0.0)
# Seconds between a vote and the refit it triggers; votes in that window share one refit.
ARENA_LEADERBOARD_REFRESH_DELAY_S = env_float("ARENA_LEADERBOARD_REFRESH_DELAY_S", 5.0, minimum=0.0)
ARENA_LEADERBOARD_REFRESH_EVERY_S = env_float("ARENA_LEADERBOARD_REFRESH_EVERY_S", 300.0, minimum=10.0)
_anchor_raw = env_str("ARENA_LEADERBOARD_ANCHOR").strip()
ARENA_LEADERBOARD_ANCHOR: tuple[str, float] | None = None  # None: ratings centred at mean 1000
if _anchor_raw:
    _anchor_model, _sep, _anchor_rating = _anchor_raw.rpartition("=")
    try:
        _anchor_value = float(_anchor_rating)
    except ValueError:
        _anchor_value = math.nan
    if not _sep or not _anchor_model.strip() or not math.isfinite(_anchor_value):
        raise ImproperlyConfigured(
            f"ARENA_LEADERBOARD_ANCHOR={_anchor_raw!r} must be MODEL=RATING, e.g. mixtral-8x7b-instruct-v0.1=1114"
        )
    ARENA_LEADERBOARD_ANCHOR = (_anchor_model.strip(), _anchor_value)

# The admin account `make run` creates on first start (DEBUG only falls back to admin/admin).
ARENA_ADMIN_USER = env_str("ARENA_ADMIN_USER", "admin")
ARENA_ADMIN_PASSWORD = env_secret("ARENA_ADMIN_PASSWORD") or ("admin" if DEBUG else "")
ARENA_HOST = env_str("ARENA_HOST", "127.0.0.1")
ARENA_PORT = env_int("ARENA_PORT", 8000, minimum=1, maximum=65535)

# --- Serving ---
ENGINE_PYTHON = env_str("ARENA_ENGINE_PYTHON", str(BASE_DIR / ".venv-engine" / "bin" / "python"))
MODELS_DIR = Path(env_str("ARENA_MODELS_DIR", str(DATA_DIR / "models")))
# The local engines listen on consecutive ports from here (serving.local_models: smollm2, then gemma3).
ENGINE_BASE_PORT = env_int("ARENA_ENGINE_PORT", 8101, minimum=1, maximum=65534)
ENGINE_START_TIMEOUT_S = env_float("ARENA_ENGINE_START_TIMEOUT_S", 600.0, minimum=10.0)
ENGINE_DEVICE = env_str("ARENA_ENGINE_DEVICE", "cpu")
if ENGINE_DEVICE not in {"cpu", "cuda"}:
    raise ImproperlyConfigured(f"ARENA_ENGINE_DEVICE must be cpu or cuda, got {ENGINE_DEVICE!r}")
# Which of serving.local_models.LOCAL_MODELS `make run` converts and serves on this machine.
SERVING_LOCAL_MODELS = env_list("ARENA_LOCAL_MODELS", ["smollm2", "gemma3"])
_unknown_local = set(SERVING_LOCAL_MODELS) - {"smollm2", "gemma3"}
if _unknown_local:
    raise ImproperlyConfigured(f"ARENA_LOCAL_MODELS: unknown model(s) {sorted(_unknown_local)}; choose from smollm2, gemma3")
VLLM_MAX_LORA_RANK = env_int("ARENA_VLLM_MAX_LORA_RANK", 16, minimum=1)
SERVING_HEALTH_TIMEOUT_S = env_float("ARENA_HEALTH_TIMEOUT_S", 3.0, minimum=0.1)

# --- Training ---
TRAINING_JOBS_DIR = Path(env_str("ARENA_TRAINING_DIR", str(DATA_DIR / "training")))
TRAINING_STARTER_JOBS = env_bool("ARENA_STARTER_JOBS", default=True)
# "" lets the recipe pick (CUDA when available, else CPU); "cpu" or "cuda" forces it.
TRAINING_DEVICE = env_str("ARENA_TRAINING_DEVICE", "")
if TRAINING_DEVICE not in {"", "cpu", "cuda"}:
    raise ImproperlyConfigured(f"ARENA_TRAINING_DEVICE must be cpu, cuda or empty, got {TRAINING_DEVICE!r}")
# >1: recipes run data-parallel under `accelerate launch` with this many processes (one per device)
TRAINING_NUM_PROCESSES = env_int("ARENA_TRAINING_PROCESSES", 1, minimum=1, maximum=64)
TRAINING_HEARTBEAT_TIMEOUT_S = env_int("ARENA_TRAINING_HEARTBEAT_TIMEOUT_S", 120, minimum=5)
TRAINING_CANCEL_GRACE_S = env_int("ARENA_TRAINING_CANCEL_GRACE_S", 120, minimum=1)
TRAINING_HUB_TIMEOUT_S = env_int("ARENA_TRAINING_HUB_TIMEOUT_S", 600, minimum=5)
# Scoring text pairs with a reward model (a subprocess of the engine environment).
TRAINING_SCORE_TIMEOUT_S = env_int("ARENA_TRAINING_SCORE_TIMEOUT_S", 900, minimum=5)
# The gate before the arena (training.gate): judge auto | reward | llm | off.
TRAINING_GATE_JUDGE = env_str("ARENA_GATE_JUDGE", "auto")
if TRAINING_GATE_JUDGE not in {"auto", "reward", "llm", "off"}:
    raise ImproperlyConfigured(f"ARENA_GATE_JUDGE must be auto, reward, llm or off, got {TRAINING_GATE_JUDGE!r}")
TRAINING_GATE_LLM_JUDGE = env_str("ARENA_GATE_LLM_JUDGE", "")  # public name of a served model
TRAINING_GATE_PROMPTS = env_int("ARENA_GATE_PROMPTS", 20, minimum=1, maximum=100)
TRAINING_GATE_HELDOUT_PROMPTS = env_int("ARENA_GATE_HELDOUT_PROMPTS", 100, minimum=1, maximum=400)
TRAINING_GATE_MAX_TOKENS = env_int("ARENA_GATE_MAX_TOKENS", 256, minimum=1)
TRAINING_GATE_JUDGE_MAX_TOKENS = env_int("ARENA_GATE_JUDGE_MAX_TOKENS", 512, minimum=16)
TRAINING_GATE_MIN_WIN_RATE = env_float("ARENA_GATE_MIN_WIN_RATE", 0.0, minimum=0.0)
TRAINING_GATE_HOLD = env_bool("ARENA_GATE_HOLD", default=False)  # below the threshold: wait for an admin
# The built-in datasets (training/builtin.py paths are relative to this folder).
BUILTIN_DATA_DIR = Path(env_str("ARENA_BUILTIN_DATA_DIR", str(BASE_DIR / "data")))
# Test and benchmark inputs only (LMSYS battle counts, published ratings); the product never reads it.
SHARED_DATA_DIR = Path(env_str("ARENA_SHARED_DATA_DIR", str(BASE_DIR.parent / "shared" / "data")))

CELERY_BEAT_SCHEDULE = {
    "endpoints-check-health": {"task": "serving.tasks.endpoints_check_health", "schedule": 30.0},
    "jobs-reap-stale": {"task": "training.tasks.jobs_reap_stale", "schedule": 60.0},
    "jobs-dispatch-unsent": {"task": "training.tasks.jobs_dispatch_unsent", "schedule": 60.0},
    # A safety net: votes trigger their own refit; this one catches a lost message or an admin edit.
    "ratings-refresh": {"task": "arena.tasks.ratings_refresh", "schedule": ARENA_LEADERBOARD_REFRESH_EVERY_S},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("ARENA_LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}
if CELERY_BROKER_URL == "filesystem://":
    # kombu warns "No hostname was supplied" for every filesystem:// connection: it has none to supply.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}

# Every folder the arena writes, created now: before any database, log or broker folder is opened.
_sqlite_name = DATABASES["default"]["NAME"] if DATABASES["default"]["ENGINE"].endswith("sqlite3") else ""
ensure_dirs(
    [("ARENA_DATA_DIR", DATA_DIR), ("ARENA_DATA_DIR", DATA_DIR / "logs"), ("ARENA_DATA_DIR", DATA_DIR / "datasets"),
     ("ARENA_MODELS_DIR", MODELS_DIR), ("ARENA_TRAINING_DIR", TRAINING_JOBS_DIR)]
    + ([("DATABASE_URL", Path(_sqlite_name).parent)] if _sqlite_name and _sqlite_name != ":memory:" else [])
    + ([] if REDIS_URL else [("ARENA_DATA_DIR", Path(CACHES["shared"]["LOCATION"]))])
    + [("ARENA_DATA_DIR", Path(CELERY_BROKER_TRANSPORT_OPTIONS[key]))
       for key in ("data_folder_in", "processed_folder", "control_folder") if key in CELERY_BROKER_TRANSPORT_OPTIONS]
)
