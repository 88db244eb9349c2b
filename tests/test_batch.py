"""Delivery in batches: claims, per-row outcomes in one batch, coalesced wake-ups, old tasks."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import requests
import responses
from django.db import close_old_connections, connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import batch, wakeups
from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.services import evaluate_declined_payment, transmit_approved_payment
from tests.conftest import API, bodies, make_payment
from tests.factories import evaluate_answer, make_vaulted

DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
ON_DB = override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")


def drains(status: str = "READY") -> int:
    from django_tasks_db.models import DBTaskResult

    path = "django_flexcharge.tasks.deliver_due"
    return DBTaskResult.objects.filter(task_path=path, status=status).count()


def approvals(payer, n: int, prefix: str = "A") -> list[Transmission]:
    from django_flexcharge.models import VaultedCard

    card = VaultedCard.objects.first() or make_vaulted()
    return [
        transmit_approved_payment(make_payment(f"{prefix}-{i}"), card=card, payer=payer)
        for i in range(n)
    ]


# --- one batch, each row its own outcome ---


@pytest.mark.django_db
@ON_DB
@override_settings(FLEXCHARGE_RETRY_BASE_DELAY=60, FLEXCHARGE_RETRY_MAX_DELAY=60)
def test_a_batch_records_each_rows_outcome_and_retries_only_the_timed_out_one(mocked, payer):
    rows = approvals(payer, 5)
    refused, timed_out = str(rows[1].idempotency_key), str(rows[3].idempotency_key)
    outage = {"on": True}

    def reply(request):
        key = json.loads(request.body)["idempotencyKey"]
        if key == refused:
            return 400, {}, json.dumps({"title": "bad", "errors": {"amount": ["invalid"]}})
        if key == timed_out and outage["on"]:
            raise requests.exceptions.ReadTimeout()
        return 200, {}, json.dumps({"transmitId": f"t-{key[:8]}", "success": True})

    mocked.add_callback(responses.POST, API + "transmit", callback=reply)
    outcomes = batch.drain(size=10)
    assert outcomes == {
        "transmissions:sent": 3,
        "transmissions:failed": 1,
        "transmissions:retry": 1,
    }
    by_key = {str(t.idempotency_key): t for t in Transmission.objects.all()}
    assert by_key[refused].status == "failed"
    assert "400" in by_key[refused].last_error
    waiting = by_key[timed_out]
    assert (waiting.status, waiting.attempts, waiting.locked_until) == ("queued", 1, None)
    assert waiting.next_attempt_at is not None
    assert waiting.last_error
    sent = [t for key, t in by_key.items() if key not in (refused, timed_out)]
    assert {t.status for t in sent} == {"sent"}
    assert all(t.transmit_id for t in sent)
    assert all(t.attempts == 1 and t.locked_until is None for t in sent)

    # Only the timed-out row is retried once due, with its own idempotency key.
    Transmission.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    outage["on"] = False
    assert batch.drain(size=10) == {"transmissions:sent": 1}
    keys = [b["idempotencyKey"] for b in bodies(mocked, "transmit")]
    assert keys.count(timed_out) == 2
    assert keys.count(refused) == 1
    assert sorted(keys) == sorted([*by_key, timed_out])
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == ("sent", 2)


@pytest.mark.django_db
@ON_DB
def test_a_batch_of_declines_sends_each_with_its_own_key_and_applies_each_answer(
    mocked, payer, billing
):
    card = make_vaulted()
    orders = [
        evaluate_declined_payment(make_payment(f"D-{i}"), card=card, payer=payer, billing=billing)
        for i in range(4)
    ]
    mocked.add_callback(
        responses.POST,
        API + "evaluate",
        callback=lambda r: (
            200,
            {},
            json.dumps(evaluate_answer("SUBMITTED", "fc-" + json.loads(r.body)["orderId"])),
        ),
    )
    assert drains() == 1  # four declines, one wake-up
    assert batch.drain(size=3) == {"evaluations:pending": 4}  # two batches
    sent = [b["idempotencyKey"] for b in bodies(mocked, "evaluate")]
    assert sorted(sent) == sorted(str(o.idempotency_key) for o in orders)
    assert set(FlexChargeOrder.objects.values_list("order_session_key", flat=True)) == {
        f"fc-D-{i}" for i in range(4)
    }


@pytest.mark.django_db
def test_batch_size_is_a_typed_setting(settings):
    from django_flexcharge.conf import conf
    from django_flexcharge.setting_types import SettingTypeError

    assert conf.DELIVERY_BATCH_SIZE == 100
    settings.FLEXCHARGE_DELIVERY_BATCH_SIZE = "50"
    with pytest.raises(SettingTypeError, match="FLEXCHARGE_DELIVERY_BATCH_SIZE"):
        conf.DELIVERY_BATCH_SIZE  # noqa: B018
    settings.FLEXCHARGE_DELIVERY_BATCH_SIZE = 0
    with pytest.raises(SettingTypeError, match="at least 1"):
        conf.DELIVERY_BATCH_SIZE  # noqa: B018


# --- the claim ---


@pytest.mark.django_db
@ON_DB
def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(payer):
    rows = approvals(payer, 3)
    first = batch.claim_batch(Transmission, 2)
    assert [r.pk for r in first] == [rows[0].pk, rows[1].pk]
    assert [r.pk for r in batch.claim_batch(Transmission, 5)] == [rows[2].pk]
    assert batch.claim_batch(Transmission, 5) == []
    later = timezone.now() + dt.timedelta(hours=1)
    again = batch.claim_batch(Transmission, 5, now=later)
    assert len(again) == 3
    assert {r.attempts for r in again} == {2}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@ON_DB
def test_concurrent_batch_claims_on_postgresql_never_take_one_row_twice(payer):
    approvals(payer, 300)
    taken: list[list[int]] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def claimer() -> None:
        start.wait()
        try:
            while rows := batch.claim_batch(Transmission, 7):
                with lock:
                    taken.append([r.pk for r in rows])
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    pks = [pk for rows in taken for pk in rows]
    assert len(pks) == len(set(pks)) == 300
    assert set(Transmission.objects.values_list("attempts", flat=True)) == {1}


# --- wake-ups: one per transaction, never one too few ---


@pytest.mark.django_db(transaction=True)
@ON_DB
def test_a_waiting_drain_is_reused_and_a_started_one_is_not(mocked, payer):
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "t", "success": True})
    approvals(payer, 3, "X")
    assert drains() == 1  # three transactions, one wake-up: the first is still waiting
    from django_tasks_db.models import DBTaskResult

    # A worker starts it; its run sends everything and finds nothing more.
    DBTaskResult.objects.filter(status="READY").update(status="RUNNING")
    assert batch.drain() == {"transmissions:sent": 3}
    # A row committed after that last look must not rely on the running drain.
    (late,) = approvals(payer, 1, "Y")
    assert drains("READY") == 1
    assert batch.drain() == {"transmissions:sent": 1}
    late.refresh_from_db()
    assert late.status == "sent"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@ON_DB
def test_a_drain_a_caller_counted_on_cannot_start_before_the_callers_commit(payer):
    from django_tasks_db.models import DBTaskResult

    approvals(payer, 1, "P")  # a drain is waiting
    seen: dict[str, object] = {}
    with transaction.atomic():
        approvals(payer, 1, "Q")  # counts on that drain and locks it until commit
        assert drains() == 1

        def worker() -> None:  # django_tasks_db's claim
            with transaction.atomic():
                seen["task"] = DBTaskResult.objects.ready().get_locked()
            connection.close()

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(10)
    assert seen["task"] is None  # skipped while the caller held it
    with transaction.atomic():
        assert DBTaskResult.objects.ready().get_locked() is not None  # after the commit


@pytest.mark.django_db
@ON_DB
def test_a_rolled_back_savepoint_takes_its_wake_up_with_it(payer):
    card = make_vaulted()
    with transaction.atomic():
        try:
            with transaction.atomic():
                transmit_approved_payment(make_payment("R-1"), card=card, payer=payer)
                raise RuntimeError
        except RuntimeError:
            pass
        assert drains() == 0
        transmit_approved_payment(make_payment("R-2"), card=card, payer=payer)
        assert drains() == 1


@pytest.mark.django_db
@override_settings(
    TASKS={"rq": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}},
    FLEXCHARGE_TASK_BACKEND="rq",
)
def test_another_engine_is_woken_once_per_transaction(payer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        approvals(payer, 5)
    assert len(callbacks) == 2  # the marker and one enqueue of the drain
    assert not wakeups.runs_inline()


@pytest.mark.django_db
@ON_DB
def test_a_per_row_task_enqueued_before_the_upgrade_still_delivers_its_row(mocked, payer):
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    mocked.add(responses.POST, API + "transmit", json={"transmitId": "t-old", "success": True})
    (row,) = approvals(payer, 1)
    DBTaskResult.objects.all().delete()
    # The task row as the previous version wrote it.
    from django_flexcharge.delivery import configured_task
    from django_flexcharge.tasks import deliver_transmission

    configured_task(deliver_transmission).enqueue(row.pk)
    assert DBTaskResult.objects.get().args_kwargs == {"args": [row.pk], "kwargs": {}}
    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="db",
        startup_delay=False,
        max_tasks=None,
        worker_id="old",
        excluded_queue_names=[],
    )
    worker.run_task(DBTaskResult.objects.get())
    row.refresh_from_db()
    assert (row.status, row.transmit_id) == ("sent", "t-old")
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"


@pytest.mark.django_db
@ON_DB
def test_rows_a_slow_batch_cannot_send_within_its_lease_go_back_unsent(mocked, payer, monkeypatch):
    rows = approvals(payer, 4, prefix="SLOW")
    sent: list[str] = []

    def reply(request):
        sent.append(json.loads(request.body)["idempotencyKey"])
        # Each call takes as long as a lease: after the first, no other call fits.
        real_now = timezone.now
        monkeypatch.setattr(
            timezone, "now", lambda: real_now() + dt.timedelta(seconds=150 * len(sent))
        )
        return 200, {}, json.dumps({"transmitId": "t-1", "success": True})

    mocked.add_callback(responses.POST, API + "transmit", callback=reply)
    outcomes = batch.drain(size=10, limit=4)
    assert outcomes == {"transmissions:sent": 1, "transmissions:handed back": 3}
    assert len(sent) == 1
    left = Transmission.objects.exclude(idempotency_key=sent[0])
    assert [(t.status, t.attempts, t.locked_until) for t in left] == [("queued", 0, None)] * 3
    assert {str(t.idempotency_key) for t in rows} - set(sent) == {
        str(t.idempotency_key) for t in left
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@ON_DB
@pytest.mark.parametrize("inside", [True, False], ids=["in a transaction", "alone"])
def test_on_postgresql_a_decline_is_stored_and_its_drain_found_in_one_statement(
    payer, billing, inside
):
    from contextlib import nullcontext

    from django.test.utils import CaptureQueriesContext

    from django_flexcharge.exceptions import FlexChargeValidationError

    card = make_vaulted()

    def decline(order_id: str) -> list[str]:
        opened = transaction.atomic() if inside else nullcontext()
        with CaptureQueriesContext(connection) as ctx, opened:
            evaluate_declined_payment(
                make_payment(order_id), card=card, payer=payer, billing=billing
            )
        return [q["sql"] for q in ctx.captured_queries]

    own = "SAVEPOINT flexcharge_row; "  # inside a transaction: sent with the statement

    def statements(sql: list[str]) -> list[str]:
        sql = [s.removeprefix(own).split("; RELEASE SAVEPOINT flexcharge_row")[0] for s in sql]
        return [s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT"))]

    first = decline("D-1")  # no drain waiting: the statement finds none, one is enqueued
    found = statements(first)
    assert found[0].startswith('WITH stored AS (INSERT INTO "django_flexcharge_flexchargeorder"')
    assert "FOR SHARE SKIP LOCKED" in found[0]
    assert found[1].startswith('INSERT INTO "django_tasks_database')
    # Alone, that statement is the whole call: it commits by itself, nothing opened first.
    assert first[0].startswith("WITH") is not inside
    assert drains() == 1
    second = decline("D-2")  # the waiting drain is found by the same statement
    assert len(statements(second)) == 1
    # One round trip either way: inside, the row's savepoint travels with it.
    (trip,) = [s for s in second if not s.startswith(("BEGIN", "COMMIT"))]
    assert trip.startswith(own) is inside
    assert (second == statements(second)) is not inside
    assert drains() == 1
    assert FlexChargeOrder.objects.filter(order_id__in=["D-1", "D-2"], status="queued").count() == 2
    with pytest.raises(FlexChargeValidationError, match="order_id"):
        decline("D-2")  # a repeat: nothing stored, the caller's transaction left usable
    assert FlexChargeOrder.objects.filter(order_id="D-2").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@ON_DB
def test_outside_a_transaction_a_failed_statement_stores_the_row_on_its_own(
    payer, billing, monkeypatch, caplog
):
    # The queue's table cannot be read: the one statement fails, nothing of it is kept.
    monkeypatch.setattr(wakeups, "_ready_sql", lambda connection: "SELECT * FROM no_such_table")
    evaluate_declined_payment(
        make_payment("L-9"), card=make_vaulted(), payer=payer, billing=billing
    )

    assert FlexChargeOrder.objects.filter(order_id="L-9", status="queued").count() == 1
    assert drains() == 1  # woken after the commit instead
    assert "enqueueing after commit instead" in caplog.text
