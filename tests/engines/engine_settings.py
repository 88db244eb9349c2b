"""What a site adds to its settings to run FlexCharge on an engine: shared by the worker
settings and the example site's settings in these tests.

``FC_ENGINE`` names it (``db``, ``rq`` or ``celery``); ``FC_REDIS_URL`` is the test's
redis-server. Each branch is the configuration docs/engines/ describes.
"""

from __future__ import annotations

import os
from typing import Any

from django_flexcharge.contrib.celery_beat import beat_schedule


def engine_settings(installed_apps: list[str]) -> dict[str, Any]:
    engine = os.environ.get("FC_ENGINE", "db")
    redis_url = os.environ.get("FC_REDIS_URL", "")
    if engine == "rq":
        return {
            "INSTALLED_APPS": [*installed_apps, "django_rq"],
            "RQ_QUEUES": {"default": {"URL": redis_url, "DEFAULT_TIMEOUT": 120}},
            "RQ": {"JOB_CLASS": "django_tasks_rq.Job"},
            "TASKS": {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}},
        }
    if engine == "celery":
        return {
            "INSTALLED_APPS": installed_apps,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_TASK_IGNORE_RESULT": True,
            "CELERY_WORKER_HIJACK_ROOT_LOGGER": False,
            "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
            "CELERY_BEAT_SCHEDULE": beat_schedule(float(os.environ.get("FC_BEAT", "0.5"))),
            "TASKS": {
                "default": {
                    "BACKEND": "django_flexcharge.contrib.celery.WakeUpBackend",
                    "OPTIONS": {"APP": "tests.engines.celery_app.app"},
                }
            },
        }
    return {
        "INSTALLED_APPS": installed_apps,
        "TASKS": {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
    }
