"""Sending a claimed batch: each row its own outcome, answers applied in groups."""

from __future__ import annotations

import json

import pytest
import requests
import responses
from django.utils import timezone

from django_flexcharge import batch, sending
from django_flexcharge.models import CallAttempt, FlexChargeOrder
from django_flexcharge.services import evaluate_declined_payment
from tests.conftest import API, bodies, make_payment
from tests.factories import evaluate_answer, make_vaulted

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _on_db_tasks(settings):
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
    }
    settings.FLEXCHARGE_TASK_BACKEND = "db"


@pytest.fixture
def declines(payer, billing):
    def make(n: int) -> list[FlexChargeOrder]:
        card = make_vaulted()
        return [
            evaluate_declined_payment(
                make_payment(f"G-{i}"), card=card, payer=payer, billing=billing
            )
            for i in range(n)
        ]

    return make


def test_each_row_of_a_batch_keeps_its_own_outcome_and_only_the_timed_out_one_is_resent(
    mocked, declines, settings, monkeypatch
):
    settings.FLEXCHARGE_RETRY_BASE_DELAY = 60  # the timed-out order is not due again in this drain
    orders = declines(25)  # three groups of answers
    refused, timed_out = str(orders[4].idempotency_key), str(orders[17].idempotency_key)
    outage = {"on": True}
    groups: list[int] = []
    apply = sending.apply_evaluations
    monkeypatch.setattr(
        sending, "apply_evaluations", lambda a, h=None: groups.append(len(a)) or apply(a, h)
    )

    def reply(request):
        body = json.loads(request.body)
        if body["idempotencyKey"] == refused:
            return 400, {}, json.dumps({"title": "bad", "errors": {"amount": ["invalid"]}})
        if body["idempotencyKey"] == timed_out and outage["on"]:
            raise requests.exceptions.ReadTimeout()
        return 200, {}, json.dumps(evaluate_answer("SUBMITTED", "fc-" + body["orderId"]))

    mocked.add_callback(responses.POST, API + "evaluate", callback=reply)
    assert batch.drain(size=100) == {
        "evaluations:pending": 23,
        "evaluations:failed": 1,
        "evaluations:retry": 1,
    }
    # Groups of APPLY_GROUP calls: the refused and the timed-out calls were handled at once.
    assert sum(groups) == 23
    assert max(groups) <= sending.APPLY_GROUP
    assert len(groups) == 3
    by_key = {str(o.idempotency_key): o for o in FlexChargeOrder.objects.all()}
    assert by_key[refused].status == "failed"
    assert "400" in by_key[refused].last_error
    waiting = by_key[timed_out]
    assert (waiting.status, waiting.attempts, waiting.locked_until) == ("queued", 1, None)
    assert waiting.next_attempt_at is not None
    applied = [o for key, o in by_key.items() if key not in (refused, timed_out)]
    assert {(o.status, o.order_session_key) for o in applied} == {
        ("pending", "fc-" + o.order_id) for o in applied
    }
    assert all(o.locked_until is None and o.attempts == 1 for o in applied)
    # Every call's history, stored with its group (the errors' too).
    assert sorted(CallAttempt.objects.values_list("order_id", flat=True)) == sorted(
        o.pk for o in orders
    )

    # Only the timed-out order is sent again once due, with its own idempotency key.
    FlexChargeOrder.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    outage["on"] = False
    assert batch.drain(size=100) == {"evaluations:pending": 1}
    keys = [b["idempotencyKey"] for b in bodies(mocked, "evaluate")]
    assert keys.count(timed_out) == 2
    assert sorted(keys) == sorted([*by_key, timed_out])


def test_answers_had_before_an_unexpected_error_are_still_applied(mocked, declines):
    orders = declines(3)
    calls = {"n": 0}

    def reply(request):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("the worker is stopping")
        body = json.loads(request.body)
        return 200, {}, json.dumps(evaluate_answer("SUBMITTED", "fc-" + body["orderId"]))

    mocked.add_callback(responses.POST, API + "evaluate", callback=reply)
    with pytest.raises(SystemExit):
        batch.drain(size=100)
    statuses = dict(FlexChargeOrder.objects.values_list("order_id", "status"))
    assert statuses == {
        orders[0].order_id: "pending",
        orders[1].order_id: "pending",
        orders[2].order_id: "queued",
    }
    # The one in flight keeps its lease: resent with its key once the lease ends.
    assert FlexChargeOrder.objects.get(pk=orders[2].pk).locked_until > timezone.now()


def test_an_error_applying_a_group_leaves_its_orders_leased_for_a_replay(
    mocked, declines, monkeypatch
):
    declines(3)
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))

    def crash(answers, history=None):
        raise SystemError("the database went away")

    monkeypatch.setattr(sending, "apply_evaluations", crash)
    with pytest.raises(SystemError):
        batch.drain(size=100)
    orders = FlexChargeOrder.objects.all()
    assert {(o.status, o.attempts) for o in orders} == {("queued", 1)}
    assert all(o.locked_until > timezone.now() for o in orders)


def test_an_order_deleted_while_its_call_was_in_flight_does_not_stop_its_group(
    mocked, declines, caplog
):
    orders = declines(3)

    def reply(request):
        body = json.loads(request.body)
        if body["orderId"] == orders[1].order_id:
            FlexChargeOrder.objects.filter(pk=orders[1].pk).delete()  # an admin deleted it
        return 200, {}, json.dumps(evaluate_answer("SUBMITTED", "fc-" + body["orderId"]))

    mocked.add_callback(responses.POST, API + "evaluate", callback=reply)
    assert batch.drain(size=100) == {"evaluations:pending": 2, "evaluations:skipped": 1}
    assert set(FlexChargeOrder.objects.values_list("status", flat=True)) == {"pending"}
    assert "was deleted before" in caplog.text
