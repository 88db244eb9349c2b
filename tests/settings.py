"""Settings for the test suite. ``FLEXCHARGE_TEST_DATABASE_URL`` switches to PostgreSQL."""

import os

import django
import environ

env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_tasks_db",
    "django_flexcharge",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(-2, "django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": env.db_url(
        "FLEXCHARGE_TEST_DATABASE_URL", default="sqlite:///" + os.path.join("/tmp", "fc-test.db")
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not Django's shared in-memory database: a live server then gets
    # connections of its own instead of sharing the test's, so the emulator's
    # webhook threads can reach it while the test reads (SQLite refuses a
    # savepoint on a connection with a statement in progress). One file per
    # process, so parallel runs never share it; on tmpfs when there is one.
    _scratch = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(_scratch, f"fc-test-{os.getpid()}.sqlite3")
    }
    # Writers wait for each other instead of failing at once when a read
    # transaction turns into a write (the usual production set-up on SQLite).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Unit tests run tasks in-process; end-to-end tests run a real db_worker.
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
if django.VERSION >= (6, 0):
    TASKS["default"]["BACKEND"] = "django.tasks.backends.immediate.ImmediateBackend"
SILENCED_SYSTEM_CHECKS = ["django_flexcharge.W011"]

STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

FLEXCHARGE_APP_KEY = "test-app-key"
FLEXCHARGE_APP_SECRET = "test-app-secret"
FLEXCHARGE_MID = "d9d0b5fd-9433-44d3-8051-63fee28768e8"
FLEXCHARGE_SITE_ID = "ffae80fd-2b8e-487a-94c3-87503a0c71bb"
FLEXCHARGE_TOKENIZATION_KEY = "test-tokenization-key"
FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [
    "XRmKBxG5uvt1qWzqvp+T6CAbTo0MB89GTxXZD5cHA56RP7Mj4NbnHQOR1Y8uorUU9YQz8ujaVRUdm9vTSkPZSw=="
]
FLEXCHARGE_API_URL = "https://api-sandbox.flex-charge.com/v1/"
FLEXCHARGE_RETRY_BASE_DELAY = 0.01

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_flexcharge": {"level": "DEBUG"}},
}

# A second account beside the default one: the whole suite must pass with it
# declared (a deployment growing a second brand changes nothing for the first).
# `make test-postgres` sets it; `make test` runs with the default account alone.
if env.bool("FLEXCHARGE_TEST_SECOND_ACCOUNT", default=False):
    FLEXCHARGE_ACCOUNTS = {
        "second": {
            "APP_KEY": "second-app-key",
            "APP_SECRET": "second-app-secret",
            "MID": "5ec0d5ec-0000-4000-8000-00000000000b",
            "SITE_ID": "5ec0d5ec-0000-4000-8000-00000000000c",
            "TOKENIZATION_KEY": "second-tokenization-key",
            "WEBHOOK_SUBSCRIBER_KEYS": [
                "c2Vjb25kIGFjY291bnQncyBzdWJzY3JpYmVyIGtleSwgdGVzdHMgb25seQ=="
            ],
        }
    }
