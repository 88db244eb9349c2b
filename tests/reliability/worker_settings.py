"""Settings of the subprocesses in the worker-kill test: ``db_worker``, ``flexcharge_retry``,
``workerctl``. Everything that differs from ``tests.settings`` comes from the environment,
as a host's settings would (django-environ):

``FC_WORKER_DATABASE_URL`` (a SQLite file or a PostgreSQL database of its own),
``FC_WORKER_API_URL`` (the emulator in the test process), ``FC_WORKER_LOG`` (a file the
test scans for card data afterwards).
"""

from tests.settings import *  # noqa: F403
from tests.settings import env

DATABASES = {"default": env.db_url("FC_WORKER_DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 600  # a worker keeps its connection
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes share the file: wait for locks instead of failing at once.
    # synchronous=OFF: a killed process loses nothing it committed (only an OS crash
    # would), and the test's point is killed processes, not power cuts.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF",
    }

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

FLEXCHARGE_API_URL = env("FC_WORKER_API_URL")
FLEXCHARGE_TIMEOUT = (2.0, 5.0)
FLEXCHARGE_RETRY_BASE_DELAY = 0.01
FLEXCHARGE_RETRY_MAX_DELAY = 0.1
FLEXCHARGE_MAX_ATTEMPTS = 500

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": env("FC_WORKER_LOG", default="/dev/null"),
            "formatter": "plain",
        }
    },
    "root": {"handlers": ["file"], "level": "INFO"},
    "loggers": {"django_flexcharge": {"level": "DEBUG"}},
}
