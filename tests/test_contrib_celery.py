"""contrib.celery: drain sends every due row once, at once; the wake-up backend carries nothing."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
import responses
from django.test import override_settings
from django.utils import timezone

from django_flexcharge.contrib.celery import DRAIN_TASK, beat_schedule, drain_once
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.services import evaluate_declined_payment
from tests.conftest import API, make_payment
from tests.factories import evaluate_answer, make_vaulted

pytestmark = pytest.mark.django_db


def answer_each(mocked) -> None:
    """FlexCharge answers each /evaluate with an order id of its own."""
    ids = itertools.count()

    def reply(request):
        return 200, {}, json.dumps(evaluate_answer("SUBMITTED", f"fc-order-{next(ids)}"))

    mocked.add_callback(responses.POST, API + "evaluate", callback=reply)


@pytest.fixture
def stored(payer, billing, django_capture_on_commit_callbacks):
    """Four declines stored, their tasks never run (the wake-ups went nowhere)."""
    card = make_vaulted()
    with django_capture_on_commit_callbacks(execute=False):
        return [
            evaluate_declined_payment(
                make_payment(f"INV-{i}"), card=card, payer=payer, billing=billing
            )
            for i in range(4)
        ]


def test_drain_sends_due_rows_at_once_and_leaves_the_others(mocked, stored):
    answer_each(mocked)
    later, leased = stored[2], stored[3]
    FlexChargeOrder.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )
    FlexChargeOrder.objects.filter(pk=leased.pk).update(
        locked_until=timezone.now() + dt.timedelta(minutes=5)
    )

    # Rows a second old: flexcharge_retry would leave them to their task for a
    # minute; drain is that task, so it sends them now.
    assert drain_once() == {"evaluations:pending": 2}
    statuses = dict(FlexChargeOrder.objects.values_list("order_id", "status"))
    assert statuses == {
        "INV-0": "pending",
        "INV-1": "pending",
        "INV-2": "queued",
        "INV-3": "queued",
    }
    sent = [c.request for c in mocked.calls if c.request.url.endswith("/evaluate")]
    assert len(sent) == 2
    # A second drain finds nothing due: nothing is sent twice.
    assert drain_once() == {}
    assert len([c for c in mocked.calls if c.request.url.endswith("/evaluate")]) == 2


def test_drain_stops_at_its_limit(mocked, stored):
    answer_each(mocked)
    assert sum(drain_once(limit=3).values()) == 3
    assert FlexChargeOrder.objects.filter(status="queued").count() == 1


def test_the_beat_entry_runs_drain_and_expires_with_its_period():
    entry = beat_schedule(7.5, queue="flexcharge")["flexcharge-drain"]
    assert entry == {
        "task": DRAIN_TASK,
        "schedule": 7.5,
        "options": {"expires": 7.5, "queue": "flexcharge"},
    }


@pytest.fixture
def memory_broker():
    """The test Celery app on kombu's in-memory transport: real messages, in this process."""
    from tests.engines.celery_app import app

    saved = app.conf.broker_url
    app.conf.broker_url = "memory://"
    reset_pools(app)
    yield app
    app.conf.broker_url = saved
    reset_pools(app)


def reset_pools(app) -> None:
    """Drop the app's connection pools: the next use opens one on the current broker_url."""
    import kombu.pools

    kombu.pools.reset()
    app._pool = None


def wake_ups(app, queue: str) -> list:
    with app.connection_for_read() as connection:
        inbox = connection.SimpleQueue(queue)
        messages = []
        while inbox.qsize():
            message = inbox.get(timeout=1)
            message.ack()
            messages.append(message)
        inbox.close()
        return messages


def test_a_wake_up_carries_no_payload_and_a_deferred_one_its_eta(memory_broker):
    from django_flexcharge.compat import task_backends
    from django_flexcharge.delivery import enqueue
    from django_flexcharge.tasks import deliver_evaluation

    tasks = {
        "default": {
            "BACKEND": "django_flexcharge.contrib.celery.WakeUpBackend",
            "OPTIONS": {"APP": "tests.engines.celery_app.app", "QUEUE": "fc-wake"},
        }
    }
    later = timezone.now() + dt.timedelta(minutes=3)
    with override_settings(TASKS=tasks):
        assert task_backends["default"].supports_defer
        assert enqueue(deliver_evaluation, 41) is True
        assert enqueue(deliver_evaluation, 42, run_after=later) is True
    now, deferred = wake_ups(memory_broker, "fc-wake")
    for message in (now, deferred):
        assert message.headers["task"] == DRAIN_TASK
        assert message.decode()[0] == []  # no arguments: drain finds the rows itself
    assert now.headers["eta"] is None
    assert dt.datetime.fromisoformat(deferred.headers["eta"]) == later
