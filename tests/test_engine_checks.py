"""engine_checks: each engine's classic mistake by id; each engine set up as docs/engines/ says passes."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_flexcharge.contrib.celery_beat import beat_schedule
from django_flexcharge.engine_checks import check_task_engine

REDIS = "redis://127.0.0.1:1/0"
RQ_TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
RQ_OK = {
    "TASKS": RQ_TASKS,
    "RQ_QUEUES": {"default": {"URL": REDIS}},
    "RQ": {"JOB_CLASS": "django_tasks_rq.Job"},
}
CELERY_TASKS = {
    "default": {
        "BACKEND": "django_flexcharge.contrib.celery.WakeUpBackend",
        "OPTIONS": {"APP": "tests.engines.celery_app.app"},
    }
}
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.fixture
def celery_conf():
    """The test Celery app's conf, restored afterwards (it reads Django settings only once)."""
    from tests.engines.celery_app import app

    saved = {
        key: app.conf[key]
        for key in ("task_always_eager", "broker_url", "beat_schedule", "include", "imports")
    }
    app.conf.update(
        task_always_eager=False,
        broker_url=REDIS,
        beat_schedule=beat_schedule(),
        include=["django_flexcharge.contrib.celery"],
        imports=[],
    )
    yield app.conf
    app.conf.update(saved)


def ids() -> list[str]:
    return [message.id.removeprefix("django_flexcharge.") for message in check_task_engine()]


def sqlite_named(settings, name: str) -> dict:
    databases = {**settings.DATABASES}
    databases["default"] = {
        **databases["default"],
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
    }
    return databases


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_each_engine_set_up_as_documented_passes(celery_conf, settings):
    with override_settings(**RQ_OK):
        assert ids() == []
    with override_settings(TASKS=CELERY_TASKS):
        assert ids() == []
    databases = sqlite_named(settings, "/srv/site/db.sqlite3")
    with override_settings(TASKS=DB_TASKS, DATABASES=databases):
        assert ids() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({**RQ_OK, "FLEXCHARGE_TASK_QUEUE": "flexcharge"}, ["E035", "E036"]),
        (
            {
                **RQ_OK,
                "TASKS": {"default": {**RQ_TASKS["default"], "QUEUES": ["default", "fc"]}},
                "FLEXCHARGE_TASK_QUEUE": "fc",
            },
            ["E036"],
        ),
        ({**RQ_OK, "RQ_QUEUES": {"default": {"URL": REDIS, "ASYNC": False}}}, ["E037"]),
        ({**RQ_OK, "RQ": {}}, ["W035"]),
        ({**RQ_OK, "RQ": {"JOB_CLASS": "rq.job.Job"}}, ["W035"]),
    ],
)
def test_rq_mistakes(overrides, expected):
    with override_settings(**overrides):
        assert ids() == expected


def test_rq_without_async_is_fine_while_debugging():
    sync = {**RQ_OK, "RQ_QUEUES": {"default": {"URL": REDIS, "ASYNC": False}}}
    with override_settings(**sync, DEBUG=True):
        assert ids() == []


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"task_always_eager": True}, ["E039"]),
        ({"broker_url": "memory://"}, ["E040"]),
        ({"beat_schedule": {}}, ["W036"]),
        ({"include": [], "imports": []}, ["W037"]),
        ({"include": [], "imports": ["django_flexcharge.contrib.celery"]}, []),
    ],
)
def test_celery_mistakes(celery_conf, conf, expected):
    celery_conf.update(conf)
    with override_settings(TASKS=CELERY_TASKS):
        assert ids() == expected


def test_celery_eager_is_fine_while_debugging(celery_conf):
    celery_conf.update(task_always_eager=True)
    with override_settings(TASKS=CELERY_TASKS, DEBUG=True):
        assert ids() == []


def test_an_unloadable_celery_app_is_named():
    tasks = {"default": {**CELERY_TASKS["default"], "OPTIONS": {"APP": "no.such.app"}}}
    with override_settings(TASKS=tasks):
        assert ids() == ["E038"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (":memory:", ["E041"]),
        ("file:fc?mode=memory&cache=shared", ["E041"]),
        ("db.sqlite3", ["W038"]),
    ],
)
def test_a_database_queue_no_worker_can_reach(settings, name, expected):
    with override_settings(TASKS=DB_TASKS, DATABASES=sqlite_named(settings, name)):
        assert ids() == expected


def test_an_unusable_alias_is_left_to_e010():
    with override_settings(FLEXCHARGE_TASK_BACKEND="missing"):
        assert ids() == []


def test_without_app_option_the_current_celery_app_is_checked(celery_conf):
    from tests.engines.celery_app import app

    tasks = {"default": {"BACKEND": "django_flexcharge.contrib.celery.WakeUpBackend"}}
    celery_conf.update(task_always_eager=True)
    with app.connection_for_write(), override_settings(TASKS=tasks):
        app.set_current()
        assert "E039" in ids()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_postgresql_queue_is_reachable_by_any_worker(settings):
    databases = {**settings.DATABASES}
    databases["default"] = {**databases["default"], "ENGINE": "django.db.backends.postgresql"}
    with override_settings(TASKS=DB_TASKS, DATABASES=databases):
        assert ids() == []
