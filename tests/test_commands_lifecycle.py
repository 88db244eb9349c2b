"""flexcharge_retry, flexcharge_sync and flexcharge_prune."""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_flexcharge.management.commands.flexcharge_retry import pick
from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent
from tests.conftest import API, calls_to
from tests.factories import evaluate_answer, make_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def ago(**delta: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(**delta)


def lost(order_id: str = "INV-1", **fields) -> FlexChargeOrder:
    """A queued order whose task never ran."""
    return make_order(order_id, Status.QUEUED, session_key=None, created=ago(minutes=5), **fields)


def make_transmission(**fields) -> Transmission:
    values = {
        "order_id": "INV-1",
        "transaction_id": "ch_1",
        "amount": 1999,
        "currency": "USD",
        "payload": {"isDeclined": False, "orderId": "INV-1"},
    }
    values.update(fields)
    return Transmission.objects.create(**values)


# --- flexcharge_retry ---


def test_retry_enqueues_rows_whose_task_was_lost(mocked):
    order = lost()
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer())
    out = run("flexcharge_retry")
    assert "Re-enqueued 1 of 1 due evaluations" in out
    order.refresh_from_db()
    assert order.status == Status.PENDING  # the immediate backend ran it


def test_retry_leaves_fresh_leased_and_not_yet_due_rows_alone(mocked):
    make_order("fresh", Status.QUEUED, session_key=None)
    lost("leased", locked_until=timezone.now() + dt.timedelta(minutes=1))
    lost("later", next_attempt_at=timezone.now() + dt.timedelta(minutes=1))
    make_order("done", Status.PENDING, session_key="fc-done", created=ago(minutes=5))
    assert list(pick(FlexChargeOrder, 100)) == []
    assert "Re-enqueued 0 of 0" in run("flexcharge_retry")
    assert len(mocked.calls) == 0


def test_retry_picks_a_row_whose_lease_expired_and_a_due_retry():
    expired = lost("expired", locked_until=ago(seconds=1), attempts=1)
    due = lost("due", next_attempt_at=ago(seconds=1), attempts=1)
    assert set(pick(FlexChargeOrder, 100)) == {expired.pk, due.pk}


@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
def test_with_a_deferring_backend_a_due_retry_gets_a_minute_for_its_own_task():
    waiting = lost("waiting", next_attempt_at=ago(seconds=10), attempts=1)
    overdue = lost("overdue", next_attempt_at=ago(minutes=2), attempts=1)
    assert list(pick(FlexChargeOrder, 100)) == [overdue.pk]
    assert waiting.pk not in pick(FlexChargeOrder, 100)


def test_retry_run_sends_in_process_and_reports_outcomes(mocked):
    lost("a")
    lost("b")
    make_transmission(created=ago(minutes=5))
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED", "fc-a"))
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("DECLINED", "fc-b"))
    mocked.add(responses.POST, API + "transmit", json={"transmitId": "t"})
    out = run("flexcharge_retry", "--run")
    assert "Ran 2 evaluations: 1 declined, 1 pending" in out
    assert "Ran 1 transmissions: 1 sent" in out


def test_retry_limit_bounds_a_run(mocked):
    for n in range(3):
        lost(f"INV-{n}")
    mocked.add(responses.POST, API + "evaluate", status=503, json={})
    out = run("flexcharge_retry", "--run", "--limit", "2")
    assert "Ran 2 evaluations: 2 retry" in out
    assert calls_to(mocked, "evaluate") == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_retry_skips_rows_locked_by_a_worker():
    if connection.vendor != "postgresql":
        pytest.skip("SELECT ... SKIP LOCKED is PostgreSQL's")
    busy, free = lost("busy"), lost("free")
    locked, release = threading.Event(), threading.Event()

    def worker_applying_an_answer():
        try:
            with transaction.atomic():
                FlexChargeOrder.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                release.wait(5)
        finally:
            connection.close()

    thread = threading.Thread(target=worker_applying_an_answer)
    thread.start()
    try:
        assert locked.wait(5)
        assert pick(FlexChargeOrder, 100) == [free.pk]
    finally:
        release.set()
        thread.join()
    assert set(pick(FlexChargeOrder, 100)) == {busy.pk, free.pk}


# --- flexcharge_sync ---


def test_sync_reconciles_every_pending_order_and_summarises(mocked):
    for name in ("a", "b", "c"):
        make_order(f"INV-{name}", Status.PENDING, session_key=f"fc-{name}")
    make_order("INV-z", Status.APPROVED, session_key="fc-z")
    mocked.add(responses.GET, API + "orders/fc-a", json={"status": 7, "statusName": "COMPLETED"})
    mocked.add(responses.GET, API + "orders/fc-b", json={"status": 2, "statusName": "EXPIRED"})
    mocked.add(responses.GET, API + "orders/fc-c", json={"status": 4, "statusName": "PROCESSING"})
    out = run("flexcharge_sync")
    assert (
        "Checked 3 orders: 1 pending -> approved, 1 pending -> expired, 1 unchanged; 0 errors."
        in out
    )


def test_sync_of_named_orders_includes_finished_ones_and_reports_unknown_ids(mocked):
    make_order("INV-z", Status.APPROVED, session_key="fc-z")
    mocked.add(responses.GET, API + "orders/fc-z", json={"status": 6, "statusName": "RETURNED"})
    out = StringIO()
    # An unknown id fails the command (a typo must not pass in cron), after the known ones synced.
    with pytest.raises(CommandError, match="No FlexCharge order with order id 'INV-nope'"):
        call_command(
            "flexcharge_sync", "--order", "INV-z", "--order", "INV-nope", stdout=out, stderr=out
        )
    assert "INV-nope: no such FlexCharge order" in out.getvalue()
    assert "Checked 1 orders: 1 approved -> refunded; 0 errors." in out.getvalue()
    assert FlexChargeOrder.objects.get(order_id="INV-z").status == Status.REFUNDED


def test_sync_exits_non_zero_when_an_order_could_not_be_checked(mocked):
    make_order("INV-a", Status.PENDING, session_key="fc-a")
    make_order("INV-q", Status.PENDING, session_key=None)
    mocked.add(responses.GET, API + "orders/fc-a", status=404, json={})
    mocked.add(responses.GET, API + "orders", json={"results": []})
    out = StringIO()
    with pytest.raises(CommandError, match="1 orders could not be checked"):
        call_command("flexcharge_sync", stdout=out, stderr=out)
    assert "INV-a: " in out.getvalue()
    # Looked up by our order id (GET /orders?query=INV-q): FlexCharge lists none.
    assert "1 not found at FlexCharge (pending, no FlexCharge id)" in out.getvalue()


# --- flexcharge_prune ---


def make_event(nonce: str, status: str, days_old: int) -> WebhookEvent:
    event = WebhookEvent.objects.create(
        event="order.completed", nonce=nonce, body="{}", status=status
    )
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=ago(days=days_old))
    return event


def old_and_recent_rows() -> None:
    make_event("recent", "applied", 1)
    make_transmission(transaction_id="recent", status="sent", created=ago(days=1))
    for n, status in enumerate(("applied", "duplicate", "ignored", "failed", "received")):
        make_event(f"old-{n}", status, 100)
    for status in ("sent", "failed", "queued"):
        make_transmission(transaction_id=status, status=status, created=ago(days=100))


def test_prune_deletes_every_row_older_than_n_days():
    old_and_recent_rows()
    out = run("flexcharge_prune", "--days", "30")
    assert "Deleted 5 webhook events older than 30 days" in out
    assert "Deleted 3 transmissions older than 30 days" in out
    assert list(WebhookEvent.objects.values_list("nonce", flat=True)) == ["recent"]
    assert list(Transmission.objects.values_list("transaction_id", flat=True)) == ["recent"]


def test_prune_takes_n_as_an_argument_too():
    old_and_recent_rows()
    assert "Deleted 5 webhook events older than 30 days" in run("flexcharge_prune", "30")
    with pytest.raises(CommandError, match="disagree"):
        call_command("flexcharge_prune", "30", "--days", "40")


def test_prune_can_keep_what_was_never_processed():
    old_and_recent_rows()
    out = run("flexcharge_prune", "--days", "30", "--keep-unprocessed")
    assert "Deleted 3 webhook events" in out
    assert "Deleted 2 transmissions" in out
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {
        "applied",
        "failed",
        "received",
    }
    assert set(Transmission.objects.values_list("status", flat=True)) == {"sent", "queued"}


def test_prune_dry_run_counts_and_deletes_nothing():
    make_event("old", "applied", 100)
    out = run("flexcharge_prune", "--days", "30", "--dry-run")
    assert "Would delete 1 webhook events" in out
    assert WebhookEvent.objects.count() == 1


def test_prune_refuses_a_zero_day_window():
    with pytest.raises(CommandError, match="--days"):
        call_command("flexcharge_prune", "--days", "0")
