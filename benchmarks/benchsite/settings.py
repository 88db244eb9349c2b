"""Settings of the benchmark site: the package as a host project would run it.

Everything that varies between runs comes from the environment, set by
``benchmarks/run.py`` for the server, the workers and the in-process phases:

* ``BENCH_DATABASE_URL``: ``sqlite:////path/bench.sqlite3`` or
  ``postgres://postgres@127.0.0.1:5432/flexcharge_bench``.
* ``BENCH_API_URL``: the emulator's ``/v1/`` URL (workers send there).
* ``BENCH_CACHE``: ``db`` (default) or ``locmem``. The FlexCharge access token
  lives in Django's cache; only a cache shared by every process (database or
  file based, Redis, Memcached) lets several workers share one token.
  ``locmem`` is there to show the difference: each process fetches its own.

Tasks go to the database backend (``django_tasks_db``) and no worker runs
during the HTTP phases, so enqueueing is measured, not delivery.
"""

import os

import django
import environ

from flexcharge_emulator.config import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_MID,
    DEFAULT_SITE_ID,
    DEFAULT_SUBSCRIBER_KEY,
    DEFAULT_TOKENIZATION_KEY,
)

SECRET_KEY = "benchmarks-only-not-secret"
# DEBUG off: with DEBUG on Django records every query, which is not what a
# production site pays.
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    # The package's template tags import its admin (django.contrib.admin is not on any timed path).
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "django_tasks_db",
    "django_flexcharge",
    "benchsite",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")

# The middleware of `django-admin startproject`: what a checkout view runs behind.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
# No admin page is served here; it is installed for the package's template tags only.
SILENCED_SYSTEM_CHECKS = ["admin.E402", "admin.E404", "admin.W411"]

_here = os.path.dirname(os.path.abspath(__file__))
_default_db = "sqlite:///" + os.path.join(_here, "..", "results", "bench.sqlite3")
DATABASES = {
    "default": environ.Env.db_url_config(os.environ.get("BENCH_DATABASE_URL", _default_db))
}
# Keep connections across requests (gunicorn sync workers serve one request at
# a time): the usual production setting, and the same for every variant.
DATABASES["default"]["CONN_MAX_AGE"] = 600
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue for the lock instead of failing at once.
        "timeout": 20,
        # BEGIN IMMEDIATE: a transaction takes the write lock up front, so two
        # gunicorn workers never deadlock upgrading a read lock.
        "transaction_mode": "IMMEDIATE",
        # WAL + synchronous=NORMAL: the recommended SQLite setup for a web
        # site (readers never block the writer; no fsync per commit).
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif os.environ.get("BENCH_SERVER_SIDE_BINDING") == "1":
    # Django's option for psycopg 3: parameters bound on the server, and a statement
    # run 5 times on a connection prepared (parsed and planned once).
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True}

if os.environ.get("BENCH_CACHE", "db") == "locmem":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    # Shared by the server and every worker process: one FlexCharge token for all.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "bench_cache",
        }
    }

# "bench-floor" is the queue of the delivery floor task (benchsite/tasks.py).
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "bench-floor"],
    }
}

# The emulator's public, non-secret defaults (flexcharge_emulator.config).
FLEXCHARGE_APP_KEY = DEFAULT_APP_KEY
FLEXCHARGE_APP_SECRET = DEFAULT_APP_SECRET
FLEXCHARGE_MID = DEFAULT_MID
FLEXCHARGE_SITE_ID = DEFAULT_SITE_ID
FLEXCHARGE_TOKENIZATION_KEY = DEFAULT_TOKENIZATION_KEY
FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [DEFAULT_SUBSCRIBER_KEY]
FLEXCHARGE_API_URL = os.environ.get("BENCH_API_URL", "http://127.0.0.1:9/v1/")
FLEXCHARGE_TEST_MODE = True

# Quiet: the package logs one INFO line per call; nothing below WARNING is shown.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# The engines phase (bench_engines.py): RQ and the Celery recipe next to the
# database queue, on the redis-server run.py starts (BENCH_REDIS_URL). Each
# alias is the configuration docs/engines/ describes; BENCH_ENGINE picks the
# one this process enqueues on (a worker's engine, for its retries).
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
if BENCH_REDIS_URL:
    from django_flexcharge.contrib.celery_beat import beat_schedule

    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {"default": {"URL": BENCH_REDIS_URL + "/0", "DEFAULT_TIMEOUT": 600}}
    RQ = {"JOB_CLASS": "django_tasks_rq.Job"}
    TASKS["rq"] = {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}
    CELERY_BROKER_URL = BENCH_REDIS_URL + "/1"
    CELERY_TASK_IGNORE_RESULT = True
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
    CELERY_BEAT_SCHEDULE = beat_schedule()
    TASKS["celery"] = {
        "BACKEND": "django_flexcharge.contrib.celery.WakeUpBackend",
        "OPTIONS": {"APP": "benchsite.celery_app.app"},
    }
FLEXCHARGE_TASK_BACKEND = {"db": "default", "rq": "rq", "celery": "celery"}[
    os.environ.get("BENCH_ENGINE", "db")
]
