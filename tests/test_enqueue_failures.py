"""delivery.EnqueueFailures: a queue outage is logged once per burst, never once per row.

Each test starts with a fresh EnqueueFailures (tests/conftest.py).
"""

from __future__ import annotations

import logging
import time

import pytest
from django.test import override_settings

from django_flexcharge import delivery
from django_flexcharge.delivery import EnqueueFailures, enqueue
from django_flexcharge.tasks import deliver_evaluation
from tests.engines.redis_server import free_port

pytestmark = pytest.mark.django_db

#: A Celery broker on a loopback port nobody listens on: a real refused connection.
DOWN = {
    "default": {
        "BACKEND": "django_flexcharge.contrib.celery.WakeUpBackend",
        "OPTIONS": {"APP": "tests.engines.celery_app.app"},
    }
}


@pytest.fixture
def broker_down():
    from tests.engines.celery_app import app

    saved = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    reset_pools(app)
    with override_settings(TASKS=DOWN):
        yield
    app.conf.broker_url = saved
    reset_pools(app)


def reset_pools(app) -> None:
    """Drop the app's connection pools: the next use opens one on the current broker_url."""
    import kombu.pools

    kombu.pools.reset()
    app._pool = None


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "django_flexcharge.delivery"]


def test_a_burst_of_failures_is_one_line_and_recovery_another(broker_down, caplog):
    caplog.set_level(logging.INFO, "django_flexcharge.delivery")
    started = time.monotonic()
    assert [enqueue(deliver_evaluation, pk) for pk in range(1, 21)] == [False] * 20
    assert time.monotonic() - started < 10, "a refused broker must not hold the caller"
    [first] = lines(caplog)
    assert first.levelno == logging.ERROR
    assert "the queue is failing" in first.getMessage()
    assert first.exc_info is not None  # the first failure keeps its traceback

    with override_settings(
        TASKS={"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    ):
        assert enqueue(deliver_evaluation, 21) is True
        assert enqueue(deliver_evaluation, 22) is True
    recovered = lines(caplog)[1:]
    assert [r.getMessage() for r in recovered] == [
        "Enqueueing works again; 20 tasks were not enqueued during the failure "
        "and are left to flexcharge_retry"
    ]


def test_a_long_outage_adds_one_summary_per_period(broker_down, caplog, monkeypatch):
    monkeypatch.setattr(delivery, "enqueue_failures", EnqueueFailures(every=0.2))
    caplog.set_level(logging.INFO, "django_flexcharge.delivery")
    for pk in range(5):
        enqueue(deliver_evaluation, pk)
    assert len(lines(caplog)) == 1
    time.sleep(0.25)
    for pk in range(5, 8):
        enqueue(deliver_evaluation, pk)
    messages = [r.getMessage() for r in lines(caplog)]
    assert len(messages) == 2
    assert messages[1].startswith("The queue is still failing: 5 more tasks not enqueued")
