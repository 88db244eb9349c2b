"""contrib.celery: drain sends every due row once, at once; the wake-up backend carries nothing."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
import responses
from django.utils import timezone

from django_flexcharge.contrib.celery import DRAIN_TASK, beat_schedule, drain_once
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.services import evaluate_declined_payment
from tests.conftest import API, make_payment
from tests.lifecycle_helpers import evaluate_answer, make_vaulted

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
