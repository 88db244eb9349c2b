"""new_rows: each way of storing a new row keeps it, wakes one drain, and lets a repeat through."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_flexcharge import new_rows, wakeups
from django_flexcharge.models import Transmission, VaultedCard
from django_flexcharge.services import transmit_approved_payment
from tests.conftest import make_payment
from tests.factories import make_vaulted

DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
ON_DB = override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="db")
SQLITE_ONLY = pytest.mark.skipif(connection.vendor != "sqlite", reason="no savepoint: SQLite")


def drains() -> int:
    from django_tasks_db.models import DBTaskResult

    path = "django_flexcharge.tasks.deliver_due"
    return DBTaskResult.objects.filter(task_path=path, status="READY").count()


@pytest.mark.django_db
def test_with_tasks_run_inline_each_row_gets_its_own_task():
    assert new_rows.store_way(Transmission, "default") == new_rows.INLINE


@pytest.mark.django_db
@ON_DB
def test_in_the_callers_transaction_no_savepoint_of_djangos_is_taken():
    with transaction.atomic():
        assert new_rows.store_way(Transmission, "default") == new_rows.IN_TRANSACTION


@pytest.mark.django_db(transaction=True)
@ON_DB
def test_with_no_transaction_open_postgresql_stores_the_row_alone():
    expected = {"sqlite": new_rows.SAVEPOINT, "postgresql": new_rows.ALONE}
    assert new_rows.store_way(Transmission, "default") == expected[connection.vendor]


@SQLITE_ONLY
@pytest.mark.django_db(transaction=True)
@ON_DB
def test_on_sqlite_an_approval_in_the_callers_transaction_is_its_insert_and_the_look(payer):
    card = make_vaulted()

    def approve(*order_ids: str) -> list[str]:
        with CaptureQueriesContext(connection) as ctx, transaction.atomic():
            for order_id in order_ids:
                transmit_approved_payment(make_payment(order_id), card=card, payer=payer)
        sql = [q["sql"] for q in ctx.captured_queries]
        return [s for s in sql if not s.startswith(("BEGIN", "COMMIT"))]

    first = approve("S-1")  # no drain waiting: its task row, in a savepoint of its own
    assert first[0].startswith('INSERT INTO "django_flexcharge_transmission"')
    assert first[1].startswith('SELECT 1 FROM "django_tasks_database_dbtaskresult"')
    assert len(first) == 5
    assert first[2].startswith("SAVEPOINT")
    assert first[4].startswith("RELEASE")
    assert first[3].startswith('INSERT INTO "django_tasks_database_dbtaskresult"')
    assert drains() == 1
    later = approve("S-2", "S-3", "S-3")  # the drain waits; a repeat in the same transaction
    assert not [s for s in later if s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]
    assert later[0].startswith('INSERT INTO "django_flexcharge_transmission"')
    assert later[1].startswith('SELECT 1 FROM "django_tasks_database_dbtaskresult"')
    assert later[2].startswith('INSERT INTO "django_flexcharge_transmission"')  # no second look
    assert later[3].startswith('INSERT INTO "django_flexcharge_transmission"')  # the repeat
    assert Transmission.objects.filter(order_id__in=["S-2", "S-3"]).count() == 2
    assert drains() == 1


@pytest.mark.django_db
@ON_DB
@pytest.mark.parametrize(
    "look",
    [
        "SELECT 1 FROM no_such_table WHERE 1 IN (%s, %s, %s, %s, %s, %s)",  # fails in the database
        "SELECT * FROM no_such_table",  # refused before it is sent (parameters left over)
    ],
    ids=["database", "driver"],
)
def test_a_failed_look_keeps_the_row_and_wakes_a_drain_on_commit(
    payer, monkeypatch, caplog, django_capture_on_commit_callbacks, look
):
    # PostgreSQL: the look is in the row's statement, rolled back to its savepoint
    # and the row stored again on its own; SQLite: the row is stored before it.
    monkeypatch.setattr(wakeups, "_ready_sql", lambda connection: look)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        row = transmit_approved_payment(make_payment("S-9"), card=make_vaulted(), payer=payer)
        assert drains() == 0
        assert VaultedCard.objects.count() == 1  # the caller's transaction goes on
    assert Transmission.objects.filter(pk=row.pk, status="queued").count() == 1
    assert drains() == 1
    assert "enqueueing after commit instead" in caplog.text


@pytest.mark.django_db
@ON_DB
def test_a_task_row_that_cannot_be_written_leaves_the_transaction_usable(
    payer, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from django_tasks_db.backend import DatabaseBackend

    def enqueue(self, task, args, kwargs):
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.create(task_path=None)  # fails in the database
        raise AssertionError("not reached")

    monkeypatch.setattr(DatabaseBackend, "enqueue", enqueue)
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        row = transmit_approved_payment(make_payment("S-8"), card=make_vaulted(), payer=payer)
        assert VaultedCard.objects.count() == 1  # Django still takes queries
    assert Transmission.objects.filter(pk=row.pk).exists()
    assert len(callbacks) == 2  # the wake-up on commit, then the marker
    assert "enqueueing after commit instead" in caplog.text


@SQLITE_ONLY
@pytest.mark.django_db(transaction=True)
@ON_DB
def test_if_sqlite_ends_the_whole_transaction_the_callers_block_refuses_the_rest(
    payer, monkeypatch
):
    card = make_vaulted()

    def full_disk(obj):
        connection.connection.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
        raise OperationalError("database or disk is full")

    monkeypatch.setattr(new_rows, "insert", full_disk)
    with transaction.atomic():
        make_vaulted(token="tok-host")  # the host's own write, gone with the transaction
        with pytest.raises(OperationalError):
            transmit_approved_payment(make_payment("S-7"), card=card, payer=payer)
        with pytest.raises(TransactionManagementError):
            VaultedCard.objects.count()
    assert not VaultedCard.objects.filter(token="tok-host").exists()
    assert not Transmission.objects.exists()


@pytest.mark.django_db(transaction=True)
@ON_DB
def test_a_repeat_in_the_callers_transaction_leaves_it_usable(payer):
    card = make_vaulted()
    with transaction.atomic():
        first = transmit_approved_payment(make_payment("R-1"), card=card, payer=payer)
        again = transmit_approved_payment(make_payment("R-1"), card=card, payer=payer)
        later = transmit_approved_payment(make_payment("R-2"), card=card, payer=payer)
        assert VaultedCard.objects.count() == 1  # the caller's own queries still run
    with transaction.atomic():  # a repeat as a transaction's first row: its own statement
        repeat = transmit_approved_payment(make_payment("R-2"), card=card, payer=payer)
        assert VaultedCard.objects.count() == 1
    assert again.pk == first.pk
    assert repeat.pk == later.pk
    assert sorted(Transmission.objects.values_list("pk", flat=True)) == [first.pk, later.pk]
    assert drains() == 1


@pytest.mark.django_db
@ON_DB
def test_with_server_side_binding_postgresql_takes_djangos_savepoint(monkeypatch):
    from django_flexcharge.insert_finding import one_trip_savepoint

    assert one_trip_savepoint() is (connection.vendor == "postgresql")
    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    assert one_trip_savepoint() is False
    with transaction.atomic():
        expected = (
            new_rows.SAVEPOINT if connection.vendor == "postgresql" else new_rows.IN_TRANSACTION
        )
        assert new_rows.store_way(Transmission, "default") == expected


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a psycopg option")
@pytest.mark.django_db(transaction=True)
@ON_DB
def test_with_server_side_binding_each_row_is_stored_and_one_drain_woken(payer, monkeypatch):
    import psycopg

    # psycopg's server-side binding sends one statement per call: Django's savepoint
    # and the INSERT with its look, the row then stored as in any other transaction.
    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    card = make_vaulted()
    with monkeypatch.context() as patch:
        patch.setitem(connection.settings_dict, "OPTIONS", options)
        connection.close()  # the next query connects with server-side binding
        try:
            with transaction.atomic():
                first = transmit_approved_payment(make_payment("B-1"), card=card, payer=payer)
                second = transmit_approved_payment(make_payment("B-2"), card=card, payer=payer)
            bound_by = connection.connection.cursor_factory
            assert not issubclass(bound_by, psycopg.ClientCursor)  # bound by the server
        finally:
            connection.close()  # later tests connect as configured
    stored = Transmission.objects.filter(status="queued").values_list("pk", flat=True)
    assert sorted(stored) == sorted([first.pk, second.pk])
    assert drains() == 1


@pytest.mark.django_db(transaction=True)
@override_settings(TASKS=DB_TASKS, FLEXCHARGE_TASK_BACKEND="no-such-backend")
def test_with_an_unknown_task_backend_the_row_is_kept_for_flexcharge_retry(payer, caplog):
    assert new_rows.store_way(Transmission, "default") == new_rows.SAVEPOINT
    assert not wakeups.runs_inline()
    with transaction.atomic():
        row = transmit_approved_payment(make_payment("U-1"), card=make_vaulted(), payer=payer)
    assert Transmission.objects.filter(pk=row.pk, status="queued").exists()
    assert drains() == 0
    assert "no-such-backend" in caplog.text


@pytest.mark.django_db
@ON_DB
def test_a_drain_that_cannot_look_for_a_waiting_one_carries_on_alone(monkeypatch, caplog):
    def broken(using):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(wakeups, "ready_drain", broken)
    assert wakeups.wake_another(Transmission) is False
    assert drains() == 0
    assert "Could not look for a waiting drain task" in caplog.text
