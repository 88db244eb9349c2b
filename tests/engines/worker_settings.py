"""Settings of the worker-side processes in the engine tests: the reliability tests' worker
settings (database, emulator URL, log file from the environment) on the engine ``FC_ENGINE``."""

from tests.engines.engine_settings import engine_settings
from tests.reliability.worker_settings import *  # noqa: F403
from tests.reliability.worker_settings import INSTALLED_APPS

globals().update(engine_settings(INSTALLED_APPS))

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # The test's traffic process writes while workers apply answers: take the write lock
    # when a transaction begins, so WAL waits for it instead of failing at the upgrade.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"  # noqa: F405
