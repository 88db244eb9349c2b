"""Durable delivery: /transmit retries, claims under concurrency, backoff, deferred retries."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter

import pytest
import requests
import responses
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import delivery, evaluations, new_rows
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.services import transmit_approved_payment
from django_flexcharge.tasks import deliver_evaluation
from django_flexcharge.transmissions import send_transmission
from tests.conftest import API, bodies, calls_to, make_payment
from tests.factories import evaluate_answer, make_order, make_vaulted

DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}


@pytest.fixture
def transmission(db, payer, django_capture_on_commit_callbacks) -> Transmission:
    with django_capture_on_commit_callbacks(execute=False):
        return transmit_approved_payment(make_payment(), card=make_vaulted(), payer=payer)


def make_due(row: Transmission) -> None:
    Transmission.objects.filter(pk=row.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


# --- /transmit ---


def test_a_transmission_is_sent_once(mocked, transmission):
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "t-9", "success": True})
    assert send_transmission(transmission.pk) == "sent"
    assert send_transmission(transmission.pk) == "skipped"
    transmission.refresh_from_db()
    assert (transmission.status, transmission.transmit_id) == ("sent", "t-9")
    assert calls_to(mocked, "transmit") == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_a_refused_transmission_fails_without_retrying(mocked, transmission, status):
    mocked.add(responses.POST, API + "transmit", status=status, json={"title": "no"})
    assert send_transmission(transmission.pk) == "failed"
    transmission.refresh_from_db()
    assert transmission.status == Transmission.Status.FAILED
    assert f"HTTP {status}" in transmission.last_error


def test_a_transmission_retries_with_the_same_key_until_sent(mocked, transmission):
    mocked.add(responses.POST, API + "transmit", status=500, json={})
    mocked.add(responses.POST, API + "transmit", status=429, json={})
    mocked.add(responses.POST, API + "transmit", body=requests.exceptions.ReadTimeout())
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "t-1", "success": True})
    outcomes = []
    for _ in range(4):
        outcomes.append(send_transmission(transmission.pk))
        make_due(transmission)
    assert outcomes == ["retry", "retry", "retry", "sent"]
    keys = {body["idempotencyKey"] for body in bodies(mocked, "transmit")}
    assert keys == {str(transmission.idempotency_key)}


@override_settings(FLEXCHARGE_MAX_ATTEMPTS=3)
def test_a_transmission_fails_after_max_attempts(mocked, transmission):
    mocked.add(responses.POST, API + "transmit", status=503, json={})
    outcomes = []
    for _ in range(4):
        outcomes.append(send_transmission(transmission.pk))
        make_due(transmission)
    assert outcomes == ["retry", "retry", "failed", "skipped"]
    transmission.refresh_from_db()
    assert transmission.status == Transmission.Status.FAILED
    assert "after 3 attempts" in transmission.last_error
    assert calls_to(mocked, "transmit") == 3


@override_settings(FLEXCHARGE_MAX_ATTEMPTS=2)
def test_a_transmission_that_crashed_too_often_is_failed_without_sending(mocked, transmission):
    Transmission.objects.filter(pk=transmission.pk).update(attempts=2)
    assert send_transmission(transmission.pk) == "failed"
    assert calls_to(mocked, "transmit") == 0


def test_refused_credentials_do_not_lose_transmissions(transmission):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, API + "oauth2/token", status=400, json={})
        assert send_transmission(transmission.pk) == "retry"


# --- backoff and enqueueing ---


@override_settings(FLEXCHARGE_RETRY_BASE_DELAY=2, FLEXCHARGE_RETRY_MAX_DELAY=60)
@pytest.mark.parametrize(
    ("attempts", "ceiling"), [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (500, 60)]
)
def test_backoff_is_full_jitter_below_a_doubling_capped_ceiling(attempts, ceiling):
    delays = [delivery.backoff(attempts).total_seconds() for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # spread over the range, not fixed


def test_retry_after_is_a_floor_of_the_backoff():
    assert delivery.backoff(1, retry_after=30).total_seconds() >= 30


@pytest.mark.django_db
@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
def test_a_backend_that_defers_gets_a_task_for_the_next_attempt(
    mocked, payer, billing, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    order = make_order(status=FlexChargeOrder.Status.QUEUED, session_key=None)
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    with django_capture_on_commit_callbacks(execute=True):
        assert send_evaluation(order.pk) == "retry"
    order.refresh_from_db()
    task = DBTaskResult.objects.get()
    assert task.run_after == order.next_attempt_at
    assert task.args_kwargs == {"args": [order.pk], "kwargs": {}}


@pytest.mark.django_db
def test_a_backend_that_cannot_defer_leaves_the_retry_to_flexcharge_retry(
    mocked, django_capture_on_commit_callbacks
):
    order = make_order(status=FlexChargeOrder.Status.QUEUED, session_key=None)
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        send_evaluation(order.pk)
    assert len(callbacks) == 1  # it ran, and enqueued nothing: ImmediateBackend cannot defer
    assert calls_to(mocked, "evaluate") == 1


@pytest.mark.django_db
@override_settings(FLEXCHARGE_TASK_BACKEND="missing")
def test_an_enqueue_failure_is_logged_not_raised(caplog):
    assert delivery.enqueue(deliver_evaluation, 1) is False
    assert "flexcharge_retry will" in caplog.text


# --- the task row in the caller's transaction (django_tasks_db on the same database) ---


def task_rows() -> list[dict]:
    from django_tasks_db.models import DBTaskResult

    return list(DBTaskResult.objects.values("task_path", "args_kwargs", "queue_name"))


@pytest.mark.django_db
@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
def test_with_a_database_queue_the_task_row_is_written_with_the_row(
    payer, django_capture_on_commit_callbacks
):
    assert delivery.queue_shares_database(Transmission)
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        row = transmit_approved_payment(make_payment(), card=make_vaulted(), payer=payer)
        # Already there before the caller commits: no second transaction after it.
        # The task is the drain's wake-up, which sends the row with any other due one.
        assert task_rows() == [
            {
                "task_path": "django_flexcharge.tasks.deliver_due",
                "args_kwargs": {"args": [], "kwargs": {}},
                "queue_name": "default",
            }
        ]
        assert row.pk
    assert [getattr(c, "__name__", "") for c in callbacks] == ["_woken"]  # a marker, no enqueue


@pytest.mark.django_db(transaction=True)
@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
def test_with_a_database_queue_a_rolled_back_caller_leaves_neither_row_nor_task(payer):
    card = make_vaulted()

    def checkout() -> None:
        with transaction.atomic():
            transmit_approved_payment(make_payment(), card=card, payer=payer)
            raise RuntimeError("the checkout failed after the approval")

    with pytest.raises(RuntimeError):
        checkout()
    assert not Transmission.objects.exists()
    assert task_rows() == []


@pytest.mark.django_db
@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
def test_with_a_database_queue_a_repeat_adds_no_second_task(
    payer, django_capture_on_commit_callbacks
):
    card = make_vaulted()
    with django_capture_on_commit_callbacks(execute=False):
        first = transmit_approved_payment(make_payment(), card=card, payer=payer)
        again = transmit_approved_payment(make_payment(), card=card, payer=payer)
    assert again.pk == first.pk
    assert len(task_rows()) == 1


@pytest.mark.django_db
@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
def test_if_the_task_row_cannot_be_written_the_row_is_kept_and_enqueued_on_commit(
    payer, billing, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from django_tasks_db.backend import DatabaseBackend

    real = DatabaseBackend.enqueue
    failing = {"on": True}

    def enqueue(self, task, args, kwargs):
        if failing["on"]:
            raise RuntimeError("queue table is locked")
        return real(self, task, args, kwargs)

    monkeypatch.setattr(DatabaseBackend, "enqueue", enqueue)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = new_rows.create_with_task(
            FlexChargeOrder, deliver_evaluation, lambda: make_order(status="queued", save=False)
        )
    assert FlexChargeOrder.objects.filter(pk=order.pk).exists()
    assert task_rows() == []
    assert "enqueueing after commit instead" in caplog.text
    failing["on"] = False
    callbacks[0]()  # the commit: the drain is woken now
    assert task_rows()[0]["task_path"] == "django_flexcharge.tasks.deliver_due"
    assert FlexChargeOrder.objects.filter(pk=order.pk, status="queued").exists()


@pytest.mark.django_db
def test_another_backend_is_enqueued_on_commit(payer, django_capture_on_commit_callbacks):
    assert not delivery.queue_shares_database(Transmission)  # ImmediateBackend
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transmit_approved_payment(make_payment(), card=make_vaulted(), payer=payer)
    assert len(callbacks) == 1


@pytest.mark.django_db
@override_settings(
    TASKS={"db": {**DB_TASKS["db"], "QUEUES": ["flexcharge", "other"]}},
    FLEXCHARGE_TASK_BACKEND="db",
    FLEXCHARGE_TASK_QUEUE="flexcharge",
)
def test_the_configured_task_follows_the_settings():
    configured = delivery.configured_task(deliver_evaluation)
    assert (configured.backend, configured.queue_name) == ("db", "flexcharge")
    assert delivery.configured_task(deliver_evaluation) is configured
    with override_settings(FLEXCHARGE_TASK_QUEUE="other"):
        assert delivery.configured_task(deliver_evaluation).queue_name == "other"


# --- concurrency ---


@pytest.fixture
def database_gate(monkeypatch):
    """On SQLite, let one thread at a time into the database parts of a delivery.

    The test database is SQLite's shared-cache in-memory one, which answers
    "table is locked" at once where a database file waits for the lock (its
    busy timeout). The gate plays that wait; the HTTP calls, where the race
    between claim and answer is, still overlap. PostgreSQL runs ungated.
    """
    if connection.vendor != "sqlite":
        return
    gate = threading.RLock()

    def gated(function):
        def run(*args, **kwargs):
            with gate:
                return function(*args, **kwargs)

        return run

    for name in ("_claim_order", "apply_evaluation", "handle_error", "give_up"):
        monkeypatch.setattr(evaluations, name, gated(getattr(evaluations, name)))


def _worker(pks: list[int], outcomes: Counter, lock: threading.Lock) -> None:
    try:
        for pk in pks:
            outcome = send_evaluation(pk)
            with lock:
                outcomes[outcome] += 1
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_ten_queued_rows_send_each_exactly_once(mocked, database_gate):
    orders = [
        make_order(f"INV-{n}", FlexChargeOrder.Status.QUEUED, session_key=None) for n in range(10)
    ]

    def answer(request):
        time.sleep(0.01)  # keep both workers inside the HTTP call at once
        body = json.loads(request.body)
        return 200, {}, json.dumps(evaluate_answer("SUBMITTED", "fc-" + body["orderId"]))

    mocked.add_callback(responses.POST, API + "evaluate", callback=answer)
    pks = [o.pk for o in orders]
    outcomes: Counter = Counter()
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_worker, args=(pks, outcomes, lock)),
        threading.Thread(target=_worker, args=(list(reversed(pks)), outcomes, lock)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = Counter(body["idempotencyKey"] for body in bodies(mocked, "evaluate"))
    assert sorted(sent) == sorted(str(o.idempotency_key) for o in orders)
    assert set(sent.values()) == {1}
    assert outcomes == Counter({"pending": 10, "skipped": 10})
    assert set(FlexChargeOrder.objects.values_list("status", flat=True)) == {"pending"}
