"""Settings for the arena: one file, read from environment variables only.

Every variable is read here, once, through the small ``env_*`` helpers of ``config.env``;
the rest of the code reads ``settings.X`` and never ``os.environ``. A value
that cannot be parsed raises ``ImproperlyConfigured`` at start-up instead of
being silently replaced by a default. Settings built from several values (the database, the
caches, logging, the CSP) are put together by the pure functions of ``config.settings_parts``,
from values read here. The last lines create the folders the arena writes
(``config.paths.ensure_dirs``), so a fresh clone can migrate.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# The pure rating maths (numpy, no Django): the one list of interval methods.
from arena.ratings.bt import DEFAULT_PRIOR_SD
from arena.ratings.intervals import CI_METHODS
from arena.ratings.ties import DEFAULT_TIES, TIE_MODELS
from config import settings_parts as parts
from config.env import env_bool, env_float, env_int, env_list, env_secret, env_str, env_url
from config.paths import ensure_dirs

BASE_DIR = Path(__file__).resolve().parent.parent


# Production mode unless told otherwise: `make run` (and the test settings) set DJANGO_DEBUG=true;
# the image, compose and a bare `daphne` run in production mode and refuse to start without the
# secrets below (each from NAME or a NAME_FILE secret file).
DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not DEBUG:
    _missing = [name for name in ("DJANGO_SECRET_KEY", "ARENA_ADMIN_PASSWORD", "ARENA_IP_SALT") if not env_secret(name)]
    if _missing:
        raise ImproperlyConfigured(
            f"Production mode (DJANGO_DEBUG is not true) needs {', '.join(_missing)} (or the matching *_FILE "
            "secret files). For development set DJANGO_DEBUG=true, as `make run` does."
        )
if not SECRET_KEY:
    # Development only: a fixed key keeps sessions valid across restarts of `make run`.
    SECRET_KEY = "dev-insecure-arena-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Where the arena keeps what it makes at run time: the SQLite file, converted
# models, training job directories, the embedded Celery broker's folders.
ARENA_DATA_DIR = Path(env_str("ARENA_DATA_DIR", str(BASE_DIR / "var"))).resolve()

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
    "arena.abuse.clientip.TrustedProxyMiddleware",
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
    "DATABASE_URL", f"sqlite:///{ARENA_DATA_DIR / 'db.sqlite3'}", {"sqlite", "postgres", "postgresql", "pgsql"}
)
# Seconds a connection is kept for the next request or battle call (0: a new one per call); the
# database password as a secret file (compose shares it with the postgres service's
# POSTGRES_PASSWORD_FILE), for a DATABASE_URL written without one.
DATABASES = parts.databases(DATABASE_URL, env_int("ARENA_DB_CONN_MAX_AGE", 60, minimum=0), ARENA_DATA_DIR,
                            env_secret("DATABASE_PASSWORD"))
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
# The image collects static files at build time into its own folder (not the data volume).
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(ARENA_DATA_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Development serves static files from the finders, so `make run` needs no collectstatic; production
# serves the collected, hashed and compressed copies (WhiteNoise; see the deployment block below).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/"

# --- Redis: channel layer and Celery broker when set, embedded fallbacks when not ---
REDIS_URL = env_url("REDIS_URL", "", {"redis", "rediss", "unix"})
CHANNEL_LAYERS = parts.channel_layers(REDIS_URL)
CACHES = parts.caches(REDIS_URL, ARENA_DATA_DIR)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or parts.FILESYSTEM_BROKER
CELERY_BROKER_DIR = ARENA_DATA_DIR / "celery-broker"
if CELERY_BROKER_URL == parts.FILESYSTEM_BROKER:
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = parts.filesystem_broker_options(CELERY_BROKER_DIR)
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
CELERY_TASK_ROUTES = {name: {"queue": "training"} for name in (
    "training.tasks.job_run", "training.tasks.gate_run", "training.tasks.checkpoint_export")}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Arena ---
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 5, minimum=1, maximum=50)
ARENA_MAX_PROMPT_CHARS = env_int("ARENA_MAX_PROMPT_CHARS", 4000, minimum=1)
ARENA_MAX_OUTPUT_TOKENS = env_int("ARENA_MAX_OUTPUT_TOKENS", 256, minimum=1, maximum=32768)
ARENA_GENERATION_TIMEOUT_S = env_float("ARENA_GENERATION_TIMEOUT_S", 120.0, minimum=1.0)
# A response still pending this long after the generation timeout lost its web process: arena.battle.reaper closes it.
ARENA_REAP_GRACE_S = env_float("ARENA_REAP_GRACE_S", 30.0, minimum=0.0)
ARENA_REAP_EVERY_S = env_float("ARENA_REAP_EVERY_S", 60.0, minimum=1.0)
# How the answers reach the rater before the vote (arena/battle/pacing.py): "paced" (whole words of both
# sides on one shared clock and pace), "whole" (both complete, together), or "tokens" (each engine
# chunk as its own frame; it tells the models apart, so only for benchmarks, and only with DEBUG).
ARENA_STREAM = env_str("ARENA_STREAM", "paced").strip() or "paced"
if ARENA_STREAM not in ("paced", "whole", "tokens") or (ARENA_STREAM == "tokens" and not DEBUG):
    raise ImproperlyConfigured(f"ARENA_STREAM={ARENA_STREAM!r} must be paced or whole (tokens: benchmarks, with "
                               "DJANGO_DEBUG=true)")
# Threads (and so database connections) per web process for the battle sockets' database calls.
ARENA_DB_THREADS = env_int("ARENA_DB_THREADS", 8, minimum=1, maximum=64)
ARENA_IP_SALT = env_secret("ARENA_IP_SALT")
if not DEBUG and (not ARENA_IP_SALT or ARENA_IP_SALT == SECRET_KEY):
    raise ImproperlyConfigured("ARENA_IP_SALT (or ARENA_IP_SALT_FILE) must be set, and differ from DJANGO_SECRET_KEY, "
                               "when DJANGO_DEBUG is false")
ARENA_IP_SALT = ARENA_IP_SALT or "dev-insecure-arena-ip-salt"
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
# How pairs are chosen (arena/pairing/mode.py): "weighted" (by sampling weight, as Chatbot Arena)
# or "active" (where a vote reduces the rating uncertainty most; the weights and the boost then
# say whose uncertainty matters, and ARENA_PAIRING_FLOOR of the pairs stay uniformly random).
ARENA_PAIRING = env_str("ARENA_PAIRING", "weighted").strip() or "weighted"
if ARENA_PAIRING not in ("weighted", "active"):
    raise ImproperlyConfigured(f"ARENA_PAIRING={ARENA_PAIRING!r} must be weighted or active")
ARENA_PAIRING_FLOOR = env_float("ARENA_PAIRING_FLOOR", 0.1, minimum=0.0)
if ARENA_PAIRING_FLOOR > 1.0:
    raise ImproperlyConfigured(f"ARENA_PAIRING_FLOOR={ARENA_PAIRING_FLOOR} must be between 0 and 1")

# --- Abuse, anonymity and privacy (arena/abuse/limits.py, arena/quality/rules.py, arena/abuse/clientip.py; docs/abuse-and-privacy.md) ---
# Who may rate: anonymous raters (a session id) unless an account is required.
ARENA_REQUIRE_LOGIN = env_bool("ARENA_REQUIRE_LOGIN", default=False)
# Reverse proxies whose X-Forwarded-For is believed: a hop count ("1") or CIDRs ("10.0.0.0/8,::1/128").
ARENA_TRUSTED_PROXIES = env_str("ARENA_TRUSTED_PROXIES", "").strip()
# IPv6 clients are hashed by their network of this many bits (a /64 is one subscriber's LAN).
ARENA_IPV6_PREFIX = env_int("ARENA_IPV6_PREFIX", 64, minimum=16, maximum=128)
# Limits, each applied per rater and per IP hash; 0 turns one off.
ARENA_LIMIT_BATTLES_PER_MINUTE = env_int("ARENA_LIMIT_BATTLES_PER_MINUTE", 6, minimum=0)
ARENA_LIMIT_CONCURRENT_GENERATIONS = env_int("ARENA_LIMIT_CONCURRENT_GENERATIONS", 2, minimum=0)
ARENA_LIMIT_VOTES_PER_HOUR = env_int("ARENA_LIMIT_VOTES_PER_HOUR", 60, minimum=0)
ARENA_LIMIT_VOTES_PER_DAY = env_int("ARENA_LIMIT_VOTES_PER_DAY", 300, minimum=0)
# Vote quality: such votes are stored but left out of the ratings with a reason (0 turns a check off).
ARENA_MIN_VOTE_SECONDS = env_float("ARENA_MIN_VOTE_SECONDS", 3.0, minimum=0.0)
ARENA_PROMPT_REPEAT_CAP = env_int("ARENA_PROMPT_REPEAT_CAP", 20, minimum=0)
ARENA_OUTLIER_Z = env_float("ARENA_OUTLIER_Z", 4.0, minimum=0.0)
ARENA_OUTLIER_MIN_VOTES = env_int("ARENA_OUTLIER_MIN_VOTES", 20, minimum=1)
# One key (rater id or IP hash) keeps at most this share of a model's counted votes, or
# ARENA_KEY_SHARE_MIN_VOTES while the model has few; the rest are left out (key_share).
ARENA_KEY_SHARE_CAP = env_float("ARENA_KEY_SHARE_CAP", 0.1, minimum=0.0)
if ARENA_KEY_SHARE_CAP >= 1.0:
    raise ImproperlyConfigured(f"ARENA_KEY_SHARE_CAP={ARENA_KEY_SHARE_CAP} must be at least 0 and below 1")
ARENA_KEY_SHARE_MIN_VOTES = env_int("ARENA_KEY_SHARE_MIN_VOTES", 10, minimum=1)
ARENA_MODERATION_URL = env_url("ARENA_MODERATION_URL", "", {"http", "https"})
ARENA_MODERATION_MODEL = env_str("ARENA_MODERATION_MODEL", "omni-moderation-latest")
ARENA_MODERATION_API_KEY = env_secret("ARENA_MODERATION_API_KEY")
ARENA_MODERATION_WORDS = env_list("ARENA_MODERATION_WORDS", [])

# --- Serving accounting and pairing holds (arena/battle/costs.py, arena/serving_stats.py, arena/pairing/holds.py) ---
# Usage and cost per response, and the holds that take a model out of pairing: daily budget spent,
# error rate over the window at or above the threshold (with enough responses to judge), all of an
# engine's --max-loras slots busy. Off: none of it (measured by bench/accounting.py).
ARENA_ACCOUNTING = env_bool("ARENA_ACCOUNTING", default=True)
ARENA_PAIRING_MAX_ERROR_RATE = env_float("ARENA_PAIRING_MAX_ERROR_RATE", 0.5, minimum=0.0)
ARENA_PAIRING_ERROR_WINDOW_S = env_float("ARENA_PAIRING_ERROR_WINDOW_S", 900.0, minimum=10.0)
ARENA_PAIRING_ERROR_MIN_RESPONSES = env_int("ARENA_PAIRING_ERROR_MIN_RESPONSES", 5, minimum=1)
# A hold also needs its errors to come from this many distinct rater ids AND IP hashes (one client
# cannot take a model out), and never leaves fewer than two battle-ready models (the admin is told).
ARENA_PAIRING_ERROR_MIN_RATERS = env_int("ARENA_PAIRING_ERROR_MIN_RATERS", 3, minimum=1)
# An open battle touched this recently holds its adapters' slots on their engine.
ARENA_LORA_BUSY_WINDOW_S = env_float("ARENA_LORA_BUSY_WINDOW_S", 600.0, minimum=1.0)

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
# MODEL=RATING pins one model's rating; unset: ratings centred at mean 1000.
ARENA_LEADERBOARD_ANCHOR = parts.leaderboard_anchor(env_str("ARENA_LEADERBOARD_ANCHOR"))
# Intervals and weighting (arena/ratings/intervals.py, the one list of methods): "bootstrap" or
# "sandwich" (LMArena's default); reweighting by inverse pair frequency, each pair's weight floored
# at MIN_PAIR_COUNT battles.
ARENA_LEADERBOARD_CI = env_str("ARENA_LEADERBOARD_CI", "bootstrap").strip() or "bootstrap"
if ARENA_LEADERBOARD_CI not in CI_METHODS:
    raise ImproperlyConfigured(f"ARENA_LEADERBOARD_CI={ARENA_LEADERBOARD_CI!r} must be one of {', '.join(CI_METHODS)}")
ARENA_LEADERBOARD_REWEIGHTED = env_bool("ARENA_LEADERBOARD_REWEIGHTED", False)
ARENA_LEADERBOARD_MIN_PAIR_COUNT = env_int("ARENA_LEADERBOARD_MIN_PAIR_COUNT", 50, minimum=1)
# The board's prior: every rating ~ Normal(arena mean, SD²), SD in Elo points (arena.ratings.bt).
ARENA_LEADERBOARD_PRIOR_SD = env_float("ARENA_LEADERBOARD_PRIOR_SD", DEFAULT_PRIOR_SD, minimum=1.0)
# How a tie (and "both bad") enters the fit: half a win each, or a Davidson / Rao-Kupper tie model.
ARENA_LEADERBOARD_TIES = env_str("ARENA_LEADERBOARD_TIES", DEFAULT_TIES).strip() or DEFAULT_TIES
if ARENA_LEADERBOARD_TIES not in TIE_MODELS:
    raise ImproperlyConfigured(f"ARENA_LEADERBOARD_TIES={ARENA_LEADERBOARD_TIES!r} must be one of {', '.join(TIE_MODELS)}")
if ARENA_LEADERBOARD_TIES != "half" and ARENA_LEADERBOARD_REWEIGHTED:
    raise ImproperlyConfigured("ARENA_LEADERBOARD_REWEIGHTED needs ARENA_LEADERBOARD_TIES=half")
# A model is shown as provisional (ranked after the others) below this many votes or above this
# interval width (ci_high - ci_low, points).
ARENA_LEADERBOARD_PROVISIONAL_VOTES = env_int("ARENA_LEADERBOARD_PROVISIONAL_VOTES", 300, minimum=0)
ARENA_LEADERBOARD_PROVISIONAL_WIDTH = env_float("ARENA_LEADERBOARD_PROVISIONAL_WIDTH", 100.0, minimum=0.0)

# The admin account `make run` creates on first start (DEBUG only falls back to admin/admin).
ARENA_ADMIN_USER = env_str("ARENA_ADMIN_USER", "admin")
ARENA_ADMIN_PASSWORD = env_secret("ARENA_ADMIN_PASSWORD") or ("admin" if DEBUG else "")
ARENA_HOST = env_str("ARENA_HOST", "127.0.0.1")
ARENA_PORT = env_int("ARENA_PORT", 8000, minimum=1, maximum=65535)
# `make run`'s logs (ARENA_DATA_DIR/logs/*.log): rotated past this size (0: never), this many copies kept.
ARENA_LOG_MAX_BYTES = env_int("ARENA_LOG_MAX_BYTES", 50 << 20, minimum=0)
ARENA_LOG_BACKUPS = env_int("ARENA_LOG_BACKUPS", 3, minimum=0, maximum=100)

# --- Serving ---
ARENA_ENGINE_PYTHON = env_str("ARENA_ENGINE_PYTHON", str(BASE_DIR / ".venv-engine" / "bin" / "python"))
ARENA_MODELS_DIR = Path(env_str("ARENA_MODELS_DIR", str(ARENA_DATA_DIR / "models")))
# The local engines listen on consecutive ports from here (serving.local_models: smollm2, then gemma3).
ARENA_ENGINE_PORT = env_int("ARENA_ENGINE_PORT", 8101, minimum=1, maximum=65534)
ARENA_ENGINE_START_TIMEOUT_S = env_float("ARENA_ENGINE_START_TIMEOUT_S", 600.0, minimum=10.0)
# Engines the supervisor (make run, manage.py run_engines) runs at once, local models included;
# more wait (their endpoint's last_error says so). 0: no cap. Each CPU engine holds ~1-1.5 GB.
ARENA_MAX_ENGINES = env_int("ARENA_MAX_ENGINES", 3, minimum=0, maximum=1000)
ARENA_ENGINE_DEVICE = env_str("ARENA_ENGINE_DEVICE", "cpu")
if ARENA_ENGINE_DEVICE not in {"cpu", "cuda"}:
    raise ImproperlyConfigured(f"ARENA_ENGINE_DEVICE must be cpu or cuda, got {ARENA_ENGINE_DEVICE!r}")
# Which of serving.local_models.LOCAL_MODELS `make run` converts and serves on this machine.
ARENA_LOCAL_MODELS = env_list("ARENA_LOCAL_MODELS", ["smollm2", "gemma3"])
_unknown_local = set(ARENA_LOCAL_MODELS) - {"smollm2", "gemma3"}
if _unknown_local:
    raise ImproperlyConfigured(f"ARENA_LOCAL_MODELS: unknown model(s) {sorted(_unknown_local)}; choose from smollm2, gemma3")
ARENA_VLLM_MAX_LORA_RANK = env_int("ARENA_VLLM_MAX_LORA_RANK", 16, minimum=1)
ARENA_HEALTH_TIMEOUT_S = env_float("ARENA_HEALTH_TIMEOUT_S", 3.0, minimum=0.1)

# --- Training ---
ARENA_TRAINING_DIR = Path(env_str("ARENA_TRAINING_DIR", str(ARENA_DATA_DIR / "training")))
ARENA_STARTER_JOBS = env_bool("ARENA_STARTER_JOBS", default=True)
# "" lets the recipe pick (CUDA when available, else CPU); "cpu" or "cuda" forces it.
ARENA_TRAINING_DEVICE = env_str("ARENA_TRAINING_DEVICE", "")
if ARENA_TRAINING_DEVICE not in {"", "cpu", "cuda"}:
    raise ImproperlyConfigured(f"ARENA_TRAINING_DEVICE must be cpu, cuda or empty, got {ARENA_TRAINING_DEVICE!r}")
# >1: recipes run data-parallel under `accelerate launch` with this many processes (one per device)
ARENA_TRAINING_PROCESSES = env_int("ARENA_TRAINING_PROCESSES", 1, minimum=1, maximum=64)
ARENA_TRAINING_HEARTBEAT_TIMEOUT_S = env_int("ARENA_TRAINING_HEARTBEAT_TIMEOUT_S", 120, minimum=5)
ARENA_TRAINING_CANCEL_GRACE_S = env_int("ARENA_TRAINING_CANCEL_GRACE_S", 120, minimum=1)
ARENA_TRAINING_HUB_TIMEOUT_S = env_int("ARENA_TRAINING_HUB_TIMEOUT_S", 600, minimum=5)
# Pushing an exported model (manage.py export_model --push): the hub's token and address, named as
# huggingface_hub names them. Without a token, or when the hub does not answer, a push is refused saying why.
HF_TOKEN = env_secret("HF_TOKEN")
HF_ENDPOINT = env_url("HF_ENDPOINT", "https://huggingface.co", {"http", "https"})
# Scoring text pairs with a reward model (a subprocess of the engine environment).
ARENA_TRAINING_SCORE_TIMEOUT_S = env_int("ARENA_TRAINING_SCORE_TIMEOUT_S", 900, minimum=5)
# The gate before the arena (training.gate): judge auto | reward | llm | off.
ARENA_GATE_JUDGE = env_str("ARENA_GATE_JUDGE", "auto")
if ARENA_GATE_JUDGE not in {"auto", "reward", "llm", "off"}:
    raise ImproperlyConfigured(f"ARENA_GATE_JUDGE must be auto, reward, llm or off, got {ARENA_GATE_JUDGE!r}")
ARENA_GATE_LLM_JUDGE = env_str("ARENA_GATE_LLM_JUDGE", "")  # public name of a served model
ARENA_GATE_PROMPTS = env_int("ARENA_GATE_PROMPTS", 20, minimum=1, maximum=100)
ARENA_GATE_HELDOUT_PROMPTS = env_int("ARENA_GATE_HELDOUT_PROMPTS", 100, minimum=1, maximum=400)
ARENA_GATE_MAX_TOKENS = env_int("ARENA_GATE_MAX_TOKENS", 256, minimum=1)
ARENA_GATE_JUDGE_MAX_TOKENS = env_int("ARENA_GATE_JUDGE_MAX_TOKENS", 512, minimum=16)
ARENA_GATE_MIN_WIN_RATE = env_float("ARENA_GATE_MIN_WIN_RATE", 0.0, minimum=0.0)
ARENA_GATE_HOLD = env_bool("ARENA_GATE_HOLD", default=False)  # below the threshold: wait for an admin
ARENA_GATE_VS_LEADER = env_bool("ARENA_GATE_VS_LEADER", default=False)  # also compare with the leader (informational)
# The built-in datasets (training/builtin.py paths are relative to this folder).
ARENA_BUILTIN_DATA_DIR = Path(env_str("ARENA_BUILTIN_DATA_DIR", str(BASE_DIR / "data")))
# Test and benchmark inputs only (LMSYS battle counts, published ratings); the product never reads it.
ARENA_SHARED_DATA_DIR = Path(env_str("ARENA_SHARED_DATA_DIR", str(BASE_DIR.parent / "shared" / "data")))

CELERY_BEAT_SCHEDULE = {
    "endpoints-check-health": {"task": "serving.tasks.endpoints_check_health", "schedule": 30.0},
    "jobs-reap-stale": {"task": "training.tasks.jobs_reap_stale", "schedule": 60.0},
    "responses-reap-stale": {"task": "arena.tasks.responses_reap_stale", "schedule": ARENA_REAP_EVERY_S},
    "jobs-dispatch-unsent": {"task": "training.tasks.jobs_dispatch_unsent", "schedule": 60.0},
    # A safety net: votes trigger their own refit; this one catches a lost message or an admin edit.
    "ratings-refresh": {"task": "arena.tasks.ratings_refresh", "schedule": ARENA_LEADERBOARD_REFRESH_EVERY_S},
}


# =====================================================================================================
# --- Deployment (issue 11): production security, CSP, static files, metrics, logs, endpoint keys,
# --- endpoints declared in the environment, bounded dataset imports. Keep these lines together.
# =====================================================================================================
# Behind a TLS-terminating proxy (the supported production set-up) that sets X-Forwarded-Proto.
if env_bool("DJANGO_BEHIND_TLS_PROXY", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Container healthchecks and Prometheus scrape plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
if not DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

# Content-Security-Policy (django-csp) in every mode, so the browser tests run under it (the
# policy: config.settings_parts.CONTENT_SECURITY_POLICY).
MIDDLEWARE.insert(MIDDLEWARE.index("whitenoise.middleware.WhiteNoiseMiddleware"), "csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = parts.CONTENT_SECURITY_POLICY

# Prometheus: django-prometheus' request/response metrics plus the apps' (arena/metrics.py, training/metrics.py; exported by config/metrics.py), at
# /metrics, answered only to ARENA_METRICS_ALLOWED_NETS (the direct peer's address) or to a request
# with "Authorization: Bearer $ARENA_METRICS_TOKEN". Keep /metrics off the public proxy.
INSTALLED_APPS.append("django_prometheus")
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
PROMETHEUS_EXPORT_MIGRATIONS = False
ARENA_METRICS_ALLOWED_NETS = parts.ip_networks(
    "ARENA_METRICS_ALLOWED_NETS", env_list("ARENA_METRICS_ALLOWED_NETS", ["127.0.0.1/32", "::1/128"])
)
ARENA_METRICS_TOKEN = env_secret("ARENA_METRICS_TOKEN")

# Sign-in throttle (django-axes) of /admin/login/ and /accounts/login/: after N failed sign-ins from
# one client address, that address is refused (429) for the lockout time; 0 turns it off. Addresses
# are stored only as a pseudo-address made from their salted hash (arena.abuse.login_throttle).
ARENA_LOGIN_FAILURE_LIMIT = env_int("ARENA_LOGIN_FAILURE_LIMIT", 5, minimum=0)
ARENA_LOGIN_LOCKOUT_S = env_int("ARENA_LOGIN_LOCKOUT_S", 900, minimum=1)
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # last, as axes requires
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = ARENA_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(1, ARENA_LOGIN_FAILURE_LIMIT)
AXES_COOLOFF_TIME = timedelta(seconds=ARENA_LOGIN_LOCKOUT_S)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "arena.abuse.login_throttle.pseudo_address"
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lockout ends on time, whatever is tried meanwhile
AXES_DISABLE_ACCESS_LOG = True  # no table of successful sign-ins (addresses, browsers)
AXES_LOCKOUT_TEMPLATE = "arena/login_locked.html"

# Logs: JSON lines in production (plain text in development), IP addresses replaced by a salted
# hash in every message whatever its logger (config/logs.py).
ARENA_LOG_FORMAT = env_str("ARENA_LOG_FORMAT", "plain" if DEBUG else "json")
LOGGING = parts.logging_config(env_str("ARENA_LOG_LEVEL", "INFO"), ARENA_LOG_FORMAT,
                               quiet_kombu=CELERY_BROKER_URL == parts.FILESYSTEM_BROKER)

# Endpoint API keys: an endpoint names the variable holding its key, and only variables whose
# name starts with this prefix can be named (never DATABASE_URL, DJANGO_SECRET_KEY, ...).
ARENA_ENDPOINT_KEY_PREFIX = env_str("ARENA_ENDPOINT_KEY_PREFIX", "ARENA_KEY_")
if not re.fullmatch(r"[A-Z][A-Z0-9_]*_", ARENA_ENDPOINT_KEY_PREFIX):
    raise ImproperlyConfigured(
        f"ARENA_ENDPOINT_KEY_PREFIX={ARENA_ENDPOINT_KEY_PREFIX!r} must be upper-case letters, digits and _, ending in _"
    )
# Endpoints registered (created or updated) at start by `manage.py bootstrap`: a JSON list of
# {"name", "base_url", "kind"?, "model_dir"?, "api_key_env"?, "organization"?, "license"?}.
# Their models are registered once they answer (serving.health.endpoints_refresh_all).
ARENA_ENDPOINTS = parts.endpoints(env_str("ARENA_ENDPOINTS", "[]"))

# Dataset imports (training/limits.py): size as sent, size decompressed, server folders readable.
ARENA_IMPORT_MAX_UPLOAD_BYTES = env_int("ARENA_IMPORT_MAX_UPLOAD_BYTES", 100 << 20, minimum=1)
# The parsed rows take several times the decompressed size in memory: raise both with care.
ARENA_IMPORT_MAX_BYTES = env_int("ARENA_IMPORT_MAX_BYTES", 256 << 20, minimum=1)
ARENA_IMPORT_ROOTS = [Path(p) for p in env_list("ARENA_IMPORT_ROOTS", [str(ARENA_DATA_DIR / "imports")])]
# Uploads above this size go to a temporary file instead of memory (Django's default: 2.5 MiB).
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 << 20

# Every folder the arena writes, created now: before any database, log or broker folder is opened.
ensure_dirs(parts.folders(ARENA_DATA_DIR, ARENA_MODELS_DIR, ARENA_TRAINING_DIR, DATABASES, CACHES, CELERY_BROKER_TRANSPORT_OPTIONS))
