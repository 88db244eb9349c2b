"""Refunds whose answer was lost: blocked, then settled by flexcharge_sync from FlexCharge's total.

The unit tests script ``GET /orders/{id}`` with the fake client; the end-to-end
ones run the emulator over HTTP, with the refund applied there and its answer
lost (a 504, a dropped connection, or the web process dying mid-call).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from django_flexcharge.client import set_client
from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeRefundUnconfirmed,
    FlexChargeStateError,
)
from django_flexcharge.models import FlexChargeOrder, Refund
from django_flexcharge.services import evaluate_declined_payment, refund_order, sync_order
from django_flexcharge.testing import FakeFlexChargeClient, post_webhook
from flexcharge_emulator import Emulator
from tests.admin_helpers import confirm, messages_of, post_action, refund_form_post
from tests.conftest import make_billing, make_payment
from tests.factories import make_order, site_emulator_config

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
Outcome = Refund.Outcome


@pytest.fixture
def fake() -> FakeFlexChargeClient:
    client = FakeFlexChargeClient()
    set_client(client)
    return client


def completed(refunded: int | None, **extra: object) -> dict[str, object]:
    """A ``GET /orders/{id}`` answer for a completed order (``refundedAmount`` is not documented)."""
    answer: dict[str, object] = {"id": "fc-order-1", "status": 7, "statusName": "COMPLETED"}
    if refunded is not None:
        answer["refundedAmount"] = refunded
    return {**answer, **extra}


def unconfirmed(order: FlexChargeOrder, amount: int, **fields: object) -> Refund:
    return Refund.objects.create(
        order=order,
        amount=amount,
        currency=order.currency,
        outcome=Outcome.UNCONFIRMED,
        refunded_before=order.refunded_amount,
        **fields,
    )


# --- settle_refunds through sync_order --------------------------------------


def test_sync_settles_a_refund_flexcharge_made(
    fake, signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.APPROVED)
    refund = unconfirmed(order, 500)
    fake.queue("get_order", completed(500))

    with django_capture_on_commit_callbacks(execute=True):
        sync_order(order)

    refund.refresh_from_db()
    assert (refund.outcome, refund.settled_at is not None) == (Outcome.SUCCEEDED, True)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 500)
    assert signal_log.names() == ["order_status_changed", "order_refunded"]


def test_sync_fails_a_refund_flexcharge_never_made(fake, signal_log):
    order = make_order(status=Status.APPROVED)
    refund = unconfirmed(order, 500)
    fake.queue("get_order", completed(0))

    sync_order(order)

    refund.refresh_from_db()
    assert refund.outcome == Outcome.FAILED
    assert "FlexCharge reports 0.00 USD refunded in total" in refund.error
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.APPROVED, 0)
    assert signal_log.calls == []


def test_a_returned_order_without_a_total_is_refunded_in_full(fake):
    order = make_order(status=Status.PARTIALLY_REFUNDED, refunded_amount=999)
    refund = unconfirmed(order, 1000)
    fake.queue("get_order", {"id": "fc-order-1", "status": 6, "statusName": "RETURNED"})

    sync_order(order)

    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.outcome == Outcome.SUCCEEDED
    assert (order.status, order.refunded_amount) == (Status.REFUNDED, 1999)


def test_without_a_total_nothing_is_guessed(fake):
    order = make_order(status=Status.APPROVED)
    refund = unconfirmed(order, 500)
    fake.queue("get_order", completed(None))

    sync_order(order)

    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.outcome == Outcome.UNCONFIRMED
    assert (order.status, order.refunded_amount) == (Status.APPROVED, 0)


@pytest.mark.parametrize(
    ("answer", "units"),
    [
        (completed(None, totalRefundedAmount="5.00", currencyCode="USD"), "major"),
        (completed(None, RefundedAmount=500), "minor"),
    ],
)
def test_the_total_field_and_its_units_are_settings(fake, settings, answer, units):
    settings.FLEXCHARGE_ORDER_AMOUNT_UNITS = units
    order = make_order(status=Status.APPROVED)
    unconfirmed(order, 500)
    fake.queue("get_order", answer)

    sync_order(order)

    order.refresh_from_db()
    assert order.refunded_amount == 500


@pytest.mark.parametrize(
    "answer",
    [completed(5000), completed(500, currencyCode="EUR"), completed(-1), completed(True)],
    ids=["above-the-amount", "other-currency", "negative", "bool"],
)
def test_an_implausible_total_is_not_used(fake, answer):
    order = make_order(status=Status.APPROVED)
    refund = unconfirmed(order, 500)
    fake.queue("get_order", answer)

    sync_order(order)

    refund.refresh_from_db()
    assert refund.outcome == Outcome.UNCONFIRMED


def test_a_pending_refund_is_settled_only_once_its_answer_cannot_come(fake):
    order = make_order(status=Status.APPROVED)
    refund = Refund.objects.create(order=order, amount=500, currency="USD")  # in flight
    fake.set_answer("get_order", completed(500))

    sync_order(order)
    refund.refresh_from_db()
    assert refund.outcome == Outcome.PENDING  # its request may still be running

    Refund.objects.filter(pk=refund.pk).update(updated=timezone.now() - dt.timedelta(minutes=5))
    sync_order(order)
    refund.refresh_from_db()
    assert refund.outcome == Outcome.SUCCEEDED


def test_sync_clears_an_unknown_refunded_amount(fake):
    order = make_order(status=Status.PARTIALLY_REFUNDED, refunded_amount_unknown=True)
    fake.queue("get_order", completed(700))

    sync_order(order)

    order.refresh_from_db()
    assert (order.refunded_amount, order.refunded_amount_unknown) == (700, False)


def test_flexcharge_sync_visits_orders_with_unsettled_refunds(fake):
    blocked = make_order("INV-1", status=Status.APPROVED, session_key="fc-1")
    unconfirmed(blocked, 500)
    unknown = make_order(
        "INV-2", status=Status.PARTIALLY_REFUNDED, session_key="fc-2", refunded_amount_unknown=True
    )
    make_order("INV-3", status=Status.APPROVED, session_key="fc-3")  # nothing to settle
    fake.set_answer("get_order", completed(500))
    out = StringIO()

    call_command("flexcharge_sync", stdout=out, stderr=StringIO())

    assert {c["order_session_key"] for c in fake.calls_to("get_order")} == {"fc-1", "fc-2"}
    assert "Checked 2 orders" in out.getvalue()
    blocked.refresh_from_db()
    unknown.refresh_from_db()
    assert blocked.refunded_amount == 500
    assert (unknown.refunded_amount, unknown.refunded_amount_unknown) == (500, False)


def test_flexcharge_sync_says_what_it_could_not_settle(fake):
    order = make_order(status=Status.APPROVED)
    unconfirmed(order, 500)
    fake.set_answer("get_order", completed(None))
    err = StringIO()

    call_command("flexcharge_sync", stdout=StringIO(), stderr=err)

    assert "INV-1: FlexCharge's answer gives no refunded total" in err.getvalue()
    assert "1 refunds still unconfirmed" in err.getvalue()


# --- end to end: the emulator applies the refund, the answer is lost ----------


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    config = site_emulator_config(
        webhook_url=None,
        rescue_delay=None,
        expire_delay=None,
    )
    with Emulator(config) as emu, override_settings(FLEXCHARGE_API_URL=emu.base_url):
        yield emu


def rescued(capture, order_id: str = "INV-LOST", amount: int = 2000) -> FlexChargeOrder:
    """A synchronously approved order FlexCharge (the emulator) really holds."""
    from django_flexcharge.types import Card, Payer

    with capture(execute=True):
        order = evaluate_declined_payment(
            make_payment(order_id, amount=amount),
            card=Card(
                number="4000002760003184",
                cvv="999",
                exp_month=9,
                exp_year=timezone.now().year + 3,
                first_name="Jane",
                last_name="Doe",
            ),
            payer=Payer(email="jane@example.com"),
            billing=make_billing(),
            is_mit=False,
        )
    order.refresh_from_db()
    assert order.status == Status.APPROVED, order.last_error
    return order


def emulated(emulator: Emulator, order: FlexChargeOrder) -> int:
    with emulator.state.lock:
        return emulator.state.orders[order.order_session_key].refunded


@pytest.mark.parametrize("lose", ["504", "drop"])
def test_a_refund_whose_answer_was_lost_is_not_sent_twice_and_sync_settles_it(
    emulator, admin_client, lose, django_capture_on_commit_callbacks
):
    order = rescued(django_capture_on_commit_callbacks)
    emulator.set_refund_knobs(lose_answer=lose, times=1)
    rows = {order.pk: {"kind": "partial", "amount": "5.00"}}

    first = confirm(admin_client, refund_form_post(admin_client, [order], rows))

    assert "no confirmed answer from FlexCharge" in messages_of(first)[0]
    assert emulated(emulator, order) == 500  # FlexCharge did refund
    assert Refund.objects.get().outcome == Outcome.UNCONFIRMED
    # The admin tries 5.00 again: refused, with why and what to do; nothing is sent.
    again = post_action(
        admin_client,
        "refund_orders",
        [order],
        apply="Review",
        **{f"refund-{order.pk}-kind": "partial", f"refund-{order.pk}-amount": "5.00"},
    )
    assert f"flexcharge_sync --order {order.order_id}" in messages_of(again)[-1]
    with pytest.raises(FlexChargeStateError, match="no confirmed answer"):
        refund_order(order, 500)
    assert emulated(emulator, order) == 500
    assert Refund.objects.count() == 1

    call_command("flexcharge_sync", stdout=StringIO(), stderr=StringIO())

    assert Refund.objects.get().outcome == Outcome.SUCCEEDED
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 500)
    # Settled: refunding again works, and the total adds up (10.00, not 5.00 twice over).
    refund_order(order, 500)
    order.refresh_from_db()
    assert (order.refunded_amount, emulated(emulator, order)) == (1000, 1000)


def test_a_web_process_killed_mid_refund_leaves_a_pending_row_sync_settles(
    emulator, monkeypatch, django_capture_on_commit_callbacks
):
    order = rescued(django_capture_on_commit_callbacks)
    from django_flexcharge.client import FlexChargeClient

    real = FlexChargeClient.refund

    def refund_then_die(self, *args, **kwargs):
        real(self, *args, **kwargs)  # FlexCharge refunds...
        raise SystemExit("killed")  # ...and the process dies before recording it

    monkeypatch.setattr(FlexChargeClient, "refund", refund_then_die)
    with pytest.raises(SystemExit):
        refund_order(order, 500)
    monkeypatch.undo()
    assert Refund.objects.get().outcome == Outcome.PENDING
    with pytest.raises(FlexChargeStateError, match="flexcharge_sync --order INV-LOST"):
        refund_order(order, 500)

    # Once no answer can still be coming, sync settles it from FlexCharge's total.
    Refund.objects.update(updated=timezone.now() - dt.timedelta(minutes=5))
    call_command("flexcharge_sync", stdout=StringIO(), stderr=StringIO())

    assert Refund.objects.get().outcome == Outcome.SUCCEEDED
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 500)
    assert emulated(emulator, order) == 500


def test_a_refund_declined_inside_a_success_envelope_changes_nothing(
    emulator, signal_log, django_capture_on_commit_callbacks
):
    order = rescued(django_capture_on_commit_callbacks)
    signal_log.calls.clear()
    emulator.set_refund_knobs(declined_in_success=True)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(FlexChargeAPIError) as exc:
        refund_order(order, 500)

    assert not isinstance(exc.value, FlexChargeRefundUnconfirmed)
    refund = Refund.objects.get()
    assert (refund.outcome, refund.response_message) == (Outcome.FAILED, "DECLINED")
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.APPROVED, 0)
    assert signal_log.calls == []
    assert emulated(emulator, order) == 0


def test_a_portal_refund_webhook_without_amounts_is_read_back_from_flexcharge(
    emulator, client, django_capture_on_commit_callbacks
):
    order = rescued(django_capture_on_commit_callbacks)
    emulator.set_refund_knobs(webhook_amounts=False)
    emulator.portal_refund(order.order_session_key, 500)
    [event] = [e for e in emulator.state.events if e["Event"] == "order.refunded"]
    assert event["EventData"] is None

    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(
            client,
            "order.refunded",
            order_id=event["OrderId"],
            external_order_id=event["ExternalOrderId"],
            timestamp=event["TimeStamp"],
        )

    assert response.status_code == 200
    order.refresh_from_db()
    # Not "refunded in full": the task asked GET /orders/{id} for the total.
    assert (order.status, order.refunded_amount, order.refunded_amount_unknown) == (
        Status.PARTIALLY_REFUNDED,
        500,
        False,
    )


def test_a_failed_sync_leaves_the_refund_for_the_next_run(fake):
    order = make_order(status=Status.APPROVED)
    refund = unconfirmed(order, 500)
    from django_flexcharge.exceptions import FlexChargeTimeout

    fake.queue("get_order", FlexChargeTimeout("timed out"))

    with pytest.raises(CommandError):
        call_command("flexcharge_sync", stdout=StringIO(), stderr=StringIO())

    refund.refresh_from_db()
    assert refund.outcome == Outcome.UNCONFIRMED


def test_the_webhook_task_reads_the_total_or_leaves_it_for_sync(fake):
    from django_flexcharge.exceptions import FlexChargeTimeout
    from django_flexcharge.tasks import sync_refunded_total

    known = make_order("INV-K", session_key="fc-k", status=Status.PARTIALLY_REFUNDED)
    assert sync_refunded_total.call(known.pk) == "nothing to do"
    unknown = make_order(
        "INV-U", session_key="fc-u", status=Status.PARTIALLY_REFUNDED, refunded_amount_unknown=True
    )
    fake.queue("get_order", FlexChargeTimeout("timed out"))
    assert sync_refunded_total.call(unknown.pk).startswith("failed: ")
    unknown.refresh_from_db()
    assert unknown.refunded_amount_unknown
    fake.queue("get_order", completed(800))
    assert sync_refunded_total.call(unknown.pk) == "synced"
    unknown.refresh_from_db()
    assert (unknown.refunded_amount, unknown.refunded_amount_unknown) == (800, False)


# --- settled by hand, when FlexCharge's order answer has no total --------------


def test_a_person_settles_an_unconfirmed_refund_after_checking_the_portal(
    admin_client, signal_log, django_capture_on_commit_callbacks
):
    made = unconfirmed(make_order("INV-M", session_key="fc-m", status=Status.APPROVED), 500)
    not_made = unconfirmed(make_order("INV-N", session_key="fc-n", status=Status.APPROVED), 700)
    url = "/admin/django_flexcharge/refund/"

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"action": "settle_made", "_selected_action": [made.pk]})
        answer = admin_client.post(
            url, {"action": "settle_not_made", "_selected_action": [not_made.pk, made.pk]}
        )

    made.refresh_from_db()
    not_made.refresh_from_db()
    assert (made.outcome, not_made.outcome) == (Outcome.SUCCEEDED, Outcome.FAILED)
    assert "checked in the portal" in not_made.error
    assert FlexChargeOrder.objects.get(order_id="INV-M").refunded_amount == 500
    assert FlexChargeOrder.objects.get(order_id="INV-N").refunded_amount == 0
    assert signal_log.names() == ["order_status_changed", "order_refunded"]
    assert "is already succeeded" in " ".join(messages_of(answer))


def test_a_refund_still_being_sent_cannot_be_settled_by_hand(admin_client):
    from django_flexcharge.refunds import settle_by_hand

    refund = Refund.objects.create(
        order=make_order(status=Status.APPROVED), amount=500, currency="USD"
    )
    with pytest.raises(FlexChargeStateError, match="still being sent"):
        settle_by_hand(refund, made=True)


def test_settling_by_hand_needs_the_refund_permission(django_user_model):
    from tests.admin_helpers import staff_client

    refund = unconfirmed(make_order(status=Status.APPROVED), 500)
    viewer = staff_client(django_user_model, "view_refund")
    viewer.post(
        "/admin/django_flexcharge/refund/",
        {"action": "settle_made", "_selected_action": [refund.pk]},
    )
    refund.refresh_from_db()
    assert refund.outcome == Outcome.UNCONFIRMED
