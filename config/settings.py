"""Strata's settings: one file, every value from the environment.

With no environment at all Strata runs embedded: SQLite, a local object folder and
Celery's filesystem broker, all under ``var/``. Production points the same code at
PostgreSQL (``DATABASE_URL``), S3 (``STORAGE_URL``) and Redis (``CELERY_BROKER_URL``).

Every value is read through the typed readers of ``config/env.py``: unset or empty
takes the default, and a value that cannot be read stops start-up with one sentence
saying which variable, what it was and what would do.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_decimal, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STRATA_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

# DEBUG is on by default so a fresh clone runs as a local, single-user install.
# Production sets DEBUG=0 and must then give SECRET_KEY.
DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set: set it in the environment when DEBUG is off.")
    SECRET_KEY = "strata-insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Served over HTTPS (TLS ended here or at a proxy): cookies only over HTTPS, and
# HSTS if asked. Off by default: `make run` and the compose file serve plain HTTP.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("STRATA_SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
# Behind a proxy that ends TLS and sets X-Forwarded-Proto (and strips a client's own).
if env_bool("STRATA_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    # Django's admin, on Strata's own site (who may enter: catalog.admin_site).
    "config.apps.StrataAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Strata's apps: catalog is the base, the others build on it (pyproject.toml's
    # import contract says which may import which). Their ready() hooks register in
    # this order, so registry comes before lineage: where both say why a version
    # is kept, the model pin is named first.
    "catalog",
    "registry",
    "lineage",
    "cards",
    "lifecycle",
    "governance",
    "changes",
    "ops",
]

MIDDLEWARE = [
    # First, so it times the whole request and every log line carries the request id.
    "ops.middleware.RequestContextMiddleware",
    # Before anything reads the input: NUL cannot be stored, so it is bad input.
    "config.middleware.RefuseNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files from the app process, so gunicorn alone runs
    # the site with DEBUG off (no separate web server needed for CSS and JS).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees what a view raises first: a service's refusal becomes its page.
    "config.middleware.ErrorPageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "catalog.context_processors.section",
            ],
        },
    },
]

# -- Database ---------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'strata.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Several processes (web, worker, command line) share one file: wait for
        # the lock instead of failing, and take the write lock at BEGIN so two
        # writers never deadlock upgrading from a read lock.
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests that start subprocesses need the test database in a file.
    # One file per test run, so that several runs at once do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing one
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:dataset_list"
LOGOUT_REDIRECT_URL = "login"

# -- Object store -----------------------------------------------------------------

STRATA_STORAGE_URL = env_str("STORAGE_URL", f"file://{VAR_DIR / 'store'}")
# Local scratch space: packs are spooled here before upload to S3, and the stat
# cache that lets an unchanged push skip reading files lives here.
STRATA_CACHE_DIR = Path(env_str("STRATA_CACHE_DIR", str(VAR_DIR / "cache")))
STRATA_PACK_SIZE = env_int("STRATA_PACK_SIZE", 32 * 1024 * 1024, minimum=1)
# The local store keeps S3's tier states; a cold pack becomes readable this many
# seconds after a restore is asked for (AWS quotes 3-5 hours for Glacier).
STRATA_LOCAL_RESTORE_SECONDS = env_float("STRATA_LOCAL_RESTORE_SECONDS", 4 * 3600, minimum=0)
# A model version whose metric is worse than its predecessor's by more than this
# (absolute) is flagged as a regression.
STRATA_METRIC_TOLERANCE = env_float("STRATA_METRIC_TOLERANCE", 0.01, minimum=0)
# The largest upload the dashboard accepts in one request (files and archives
# together, and what an archive unpacks to). Larger data goes through the CLI.
STRATA_UPLOAD_MAX_BYTES = env_int("STRATA_UPLOAD_MAX_BYTES", 5 * 1024**3, minimum=0)
# The most files and folders one dashboard upload may unpack to: an archive of
# millions of empty entries weighs little but would take the server's time.
STRATA_UPLOAD_MAX_ENTRIES = env_int("STRATA_UPLOAD_MAX_ENTRIES", 100000, minimum=0)
# A merge on the web or through the API whose tables to merge by row are larger
# than this (the three sides together) runs in a worker, with progress on its page.
STRATA_MERGE_INLINE_BYTES = env_int("STRATA_MERGE_INLINE_BYTES", 64 * 1024 * 1024, minimum=0)
# A browser upload may hold many files; Django's default of 100 is too few.
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 10000, minimum=0)

# -- Retention, tiers and cost ------------------------------------------------------

# Prices in dollars per TB-month of each tier (S3 Standard, Standard-IA, Glacier).
STRATA_PRICE_HOT = env_decimal("STRATA_PRICE_HOT", "23", minimum=0)
STRATA_PRICE_WARM = env_decimal("STRATA_PRICE_WARM", "12.50", minimum=0)
STRATA_PRICE_COLD = env_decimal("STRATA_PRICE_COLD", "4", minimum=0)
# A pack nothing reaches is deleted only once it is older than this.
STRATA_RETENTION_GRACE_HOURS = env_float("STRATA_RETENTION_GRACE_HOURS", 24, minimum=0)
# A pack whose live bytes are below this share of its size is repacked.
STRATA_RETENTION_REPACK_BELOW = env_float("STRATA_RETENTION_REPACK_BELOW", 0.5, minimum=0, maximum=1)
# A run that would delete or repack more than this waits for an approver.
STRATA_RETENTION_APPROVAL_BYTES = env_int("STRATA_RETENTION_APPROVAL_BYTES", 100 * 1024**3, minimum=0)
# How long a commit that reuses stored chunks waits for garbage collection to
# finish deciding and deleting before it refuses (catalog.services.collection).
STRATA_COLLECTION_WAIT_SECONDS = env_float("STRATA_COLLECTION_WAIT_SECONDS", 120, minimum=0)
# How often beat plans a tiering and garbage-collection run (daily by default).
STRATA_RETENTION_SCHEDULE_SECONDS = env_float("STRATA_RETENTION_SCHEDULE_SECONDS", 86400, minimum=1)

# -- Celery -----------------------------------------------------------------------

# The Celery app, named as WSGI_APPLICATION names the web's: services queue tasks
# through it by name (catalog.services.jobs) without importing this package.
STRATA_CELERY_APP = "config.celery.app"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (remote control) messages; the default is ./control in the cwd.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # A remote push waits for its verification task: look for work every
        # 0.2 s rather than kombu's default second.
        "polling_interval": 0.2,
    }
# Task outcomes are stored on the rows the pages read, not in a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One queue name per deployment (tests give each run its own, so runs sharing a
# Redis never take each other's tasks).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "strata")
# The beat schedule: one entry per periodic job, each with a plain-English comment.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Re-hash a sample of stored chunks every night, so silent corruption on
    # disk or in the bucket is found before anyone needs the data.
    "verify-store-nightly": {
        "task": "catalog.tasks.verify_store",
        "schedule": 24 * 60 * 60,
    },
    # Pick up rollbacks left in progress by a worker that died, every five minutes;
    # the rollback state machine makes a second run of a step harmless.
    "resume-rollbacks": {
        "task": "governance.tasks.rollback_resume",
        "schedule": 5 * 60,
    },
    # Plan a tiering and garbage-collection run every day and apply it, unless it
    # would free more than STRATA_RETENTION_APPROVAL_BYTES: then an approver decides.
    "retention-daily": {
        "task": "lifecycle.tasks.retention_scheduled",
        "schedule": STRATA_RETENTION_SCHEDULE_SECONDS,
    },
    # Look at restores from cold storage under way every five minutes, so pages
    # and pulls know which packs have become readable.
    "poll-restores": {
        "task": "lifecycle.tasks.restores_poll",
        "schedule": 5 * 60,
    },
    # Queue again the remote pushes left verifying by a worker that died or a lost
    # message, every five minutes; verifying twice ends as verifying once.
    "resume-upload-verification": {
        "task": "catalog.tasks.uploads_resume",
        "schedule": 5 * 60,
    },
    # Queue again the merges a worker claimed and stopped touching (it died) or
    # never got (a lost message), every five minutes; a merge is claimed once.
    "resume-merges": {
        "task": "catalog.tasks.merges_resume",
        "schedule": 5 * 60,
    },
}

# -- Notifications ----------------------------------------------------------------

# E-mail goes to the console unless a real backend is configured; a webhook, if
# set, gets a JSON POST on every rollback request, decision and outcome.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "strata@localhost")
# The SMTP backend's server, under Django's own names.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 30
STRATA_WEBHOOK_URL = env_str("STRATA_WEBHOOK_URL", "")

# -- Logging ----------------------------------------------------------------------

# json (the default): one JSON object per line with the request id, user, dataset,
# version and task of each line (ops/logging.py); text: the plain lines of old.
STRATA_LOG_FORMAT = env_choice("STRATA_LOG_FORMAT", "json", ("json", "text"))
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ops.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if STRATA_LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The AWS SDK narrates every credential lookup at INFO; keep stderr for what matters.
        **{name: {"level": "WARNING"} for name in ("boto3", "botocore", "s3transfer", "urllib3")},
        # Django's own handlers write plain text beside ours; send its lines through
        # the root's handler only. runserver's access lines give way to the request
        # middleware's, which carry the request id and the view.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
    },
}

# -- Metrics and probes -----------------------------------------------------------

# When set, /metrics (and a worker's metrics port) answer only requests that send
# "Authorization: Bearer <token>". Unset, they are open: Prometheus scrapes them
# from the private network, like /healthz and /readyz.
STRATA_METRICS_TOKEN = env_str("STRATA_METRICS_TOKEN", "")
# A Celery worker serves its own /metrics on this port when set (for workers on
# other machines than the web); with the prefork pool it needs PROMETHEUS_MULTIPROC_DIR.
# 0 or unset: none.
STRATA_WORKER_METRICS_PORT = env_int("STRATA_WORKER_METRICS_PORT", 0, minimum=0, maximum=65535) or None
