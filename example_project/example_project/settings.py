"""Settings of the example subscription site, read from the environment with django-environ.

Every value comes from an environment variable, or from ``example_project/.env``
when that file exists (copy ``.env.example``: its values work against the
local emulator, ``manage.py flexcharge_emulator``). django-flexcharge itself
never reads the environment: it reads the flat ``FLEXCHARGE_*`` settings below.
"""

from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables already in the process environment win over the file, so a
# deployment (or a test) can override any single value.
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",  # the FlexCharge webhook is a DRF view
    "django_tasks_db",  # the task backend: `manage.py db_worker` sends /transmit and /evaluate
    "django_flexcharge",
    "shop",
]
if django.VERSION < (6, 0):
    # Django 6 ships the Tasks API as django.tasks; 5.2 needs the backport app.
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

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

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The site, the task worker, webhooks and the renewal command all write.
    # IMMEDIATE takes the write lock when a transaction starts, so a writer
    # waits (up to `timeout` seconds) instead of failing with "database is
    # locked" when a read transaction tries to upgrade to a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# FlexCharge calls run in the background, never inside a customer's request:
# rows are queued in the database and `manage.py db_worker` runs them. The same
# backend path works with the django-tasks backport (5.2) and django.tasks (6.x).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "account"
LOGOUT_REDIRECT_URL = "plans"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")

# --- FlexCharge (django-flexcharge reads these; CONTRACT §2, docs/configuration.md) ---

# Portal: Developers > Api Keys. Used for /oauth2/token.
FLEXCHARGE_APP_KEY = env("FLEXCHARGE_APP_KEY")
FLEXCHARGE_APP_SECRET = env("FLEXCHARGE_APP_SECRET")
# Merchant GUID, and the site GUID from Developers > Sites (SenseJS and /evaluate).
FLEXCHARGE_MID = env("FLEXCHARGE_MID")
FLEXCHARGE_SITE_ID = env("FLEXCHARGE_SITE_ID")
# Portal: Developers > Tokenization; the checkout vaults every card with it.
FLEXCHARGE_TOKENIZATION_KEY = env("FLEXCHARGE_TOKENIZATION_KEY")
# Portal: Developers > Webhooks. Comma-separated: list the new key next to the
# old one while rotating, then drop the old one.
FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = env.list("FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS")
FLEXCHARGE_API_URL = env("FLEXCHARGE_API_URL", default="https://api-sandbox.flex-charge.com/v1/")
FLEXCHARGE_SENSEJS_URL = env(
    "FLEXCHARGE_SENSEJS_URL", default="https://sensejs.flexfactor.io/widget.js"
)
# Only behind a proxy that rewrites Host: the host name FlexCharge signs.
FLEXCHARGE_WEBHOOK_HOST = env("FLEXCHARGE_WEBHOOK_HOST", default="")
FLEXCHARGE_WEBHOOK_TOLERANCE = env.int("FLEXCHARGE_WEBHOOK_TOLERANCE", default=300)
FLEXCHARGE_MIT_EXPIRY_DAYS = env.int("FLEXCHARGE_MIT_EXPIRY_DAYS", default=21)
FLEXCHARGE_DECLINE_MAX_AGE = env.float("FLEXCHARGE_DECLINE_MAX_AGE", default=24)
FLEXCHARGE_TIMEOUT = env.tuple("FLEXCHARGE_TIMEOUT", cast=float, default=(3.05, 30.0))
# Unset means "decide from FLEXCHARGE_API_URL" (test mode unless production).
FLEXCHARGE_TEST_MODE = env.bool("FLEXCHARGE_TEST_MODE", default=None)

LOG_LEVEL = env("DJANGO_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # What the app sends and receives (never card data): useful while learning.
        "django_flexcharge": {"handlers": ["console"], "level": LOG_LEVEL},
        "shop": {"handlers": ["console"], "level": LOG_LEVEL},
    },
}
