"""cancel_order and sync_order: FlexCharge first, then the status under a lock, races included."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
import responses
from django.contrib.auth.models import User
from django.utils import timezone

from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.exceptions import FlexChargeAPIError, FlexChargeStateError
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.payloads import cancel_idempotency_key
from django_flexcharge.services import cancel_order, sync_order
from tests.conftest import API
from tests.factories import make_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
CANCEL_URL = API + "orders/fc-order-1/cancel"
EXTERNAL_CANCEL_URL = API + "orders/INV-1/external-cancel"
ORDER_URL = API + "orders/fc-order-1"


# --- cancel ---


def test_a_pending_order_is_cancelled_at_flexcharge_then_here(
    mocked, signal_log, caplog, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.PENDING)
    mocked.add(responses.POST, CANCEL_URL, json={})
    user = User.objects.create_user("ops")
    with caplog.at_level(logging.INFO), django_capture_on_commit_callbacks(execute=True):
        result = cancel_order(order, user=user)
    assert result.status == Status.CANCELLED
    assert json.loads(mocked.calls[-1].request.body) == {
        "idempotencyKey": cancel_idempotency_key(order)
    }
    assert signal_log.names() == ["order_status_changed", "order_cancelled"]
    assert "cancel by ops" in caplog.text


def test_a_queued_order_never_sent_is_cancelled_without_calling_flexcharge(mocked):
    order = make_order(status=Status.QUEUED, session_key=None)
    assert cancel_order(order).status == Status.CANCELLED
    assert len(mocked.calls) == 0
    assert send_evaluation(order.pk) == "skipped"


def test_a_queued_order_already_tried_is_cancelled_by_our_order_id(mocked):
    order = make_order(status=Status.QUEUED, session_key=None, attempts=1)
    cancel = mocked.add(responses.POST, EXTERNAL_CANCEL_URL, json={})
    assert cancel_order(order).status == Status.CANCELLED
    assert cancel.call_count == 1


def test_flexcharge_not_knowing_a_queued_order_still_cancels_it(mocked):
    order = make_order(status=Status.QUEUED, session_key=None, attempts=2)
    mocked.add(responses.POST, EXTERNAL_CANCEL_URL, status=404, json={})
    assert cancel_order(order).status == Status.CANCELLED


def test_a_queued_order_being_sent_right_now_cannot_be_cancelled(mocked):
    lease = timezone.now() + dt.timedelta(minutes=1)
    order = make_order(status=Status.QUEUED, session_key=None, attempts=1, locked_until=lease)
    with pytest.raises(FlexChargeStateError, match="right now"):
        cancel_order(order)
    assert len(mocked.calls) == 0


def test_a_failed_external_cancel_leaves_the_order_queued_and_unleased(mocked):
    order = make_order(status=Status.QUEUED, session_key=None, attempts=1)
    mocked.add(responses.POST, EXTERNAL_CANCEL_URL, status=500, json={})
    with pytest.raises(FlexChargeAPIError):
        cancel_order(order)
    order.refresh_from_db()
    assert (order.status, order.locked_until) == (Status.QUEUED, None)


def test_a_pending_order_without_a_flexcharge_id_is_cancelled_by_our_id(mocked):
    order = make_order(status=Status.PENDING, session_key=None)
    cancel = mocked.add(responses.POST, EXTERNAL_CANCEL_URL, json={})
    assert cancel_order(order).status == Status.CANCELLED
    assert cancel.call_count == 1


@pytest.mark.parametrize(
    "status", [Status.APPROVED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED, Status.FAILED]
)
def test_only_queued_or_pending_orders_can_be_cancelled(mocked, status):
    with pytest.raises(FlexChargeStateError, match=status):
        cancel_order(make_order(status=status))
    assert len(mocked.calls) == 0


def test_an_approval_racing_the_cancel_wins_and_is_reported(mocked):
    order = make_order(status=Status.PENDING)

    def webhook_first(request):
        FlexChargeOrder.objects.filter(pk=order.pk).update(status=Status.APPROVED)
        return 200, {}, "{}"

    mocked.add_callback(responses.POST, CANCEL_URL, callback=webhook_first)
    with pytest.raises(FlexChargeStateError, match="Refund it instead"):
        cancel_order(order)
    order.refresh_from_db()
    assert order.status == Status.APPROVED


def test_a_cancel_flexcharge_refuses_changes_nothing(mocked):
    order = make_order(status=Status.PENDING)
    mocked.add(responses.POST, CANCEL_URL, status=400, json={"Id": ["cannot cancel"]})
    with pytest.raises(FlexChargeAPIError):
        cancel_order(order)
    order.refresh_from_db()
    assert order.status == Status.PENDING


# --- sync ---


def order_answer(status: int | None, name: str | None, **extra) -> dict:
    body = {"id": "fc-order-1", "referenceNumber": "22ACD1D9", **extra}
    if status is not None:
        body["status"] = status
    if name is not None:
        body["statusName"] = name
    return body


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (order_answer(7, "COMPLETED"), Status.APPROVED),
        (order_answer(None, "Completed"), Status.APPROVED),
        (order_answer(2, "Cancelled"), Status.CANCELLED),
        (order_answer(2, "EXPIRED"), Status.EXPIRED),
        (order_answer(None, "expired"), Status.EXPIRED),
        (order_answer(2, "Cancelled", expired=True), Status.EXPIRED),
        (order_answer(2, "Cancelled", expiryDate="2020-01-01T00:00:00Z"), Status.EXPIRED),
        (order_answer(0, "Draft"), Status.PENDING),
        (order_answer(1, "Onhold"), Status.PENDING),
        (order_answer(3, "Problem"), Status.PENDING),
        (order_answer(4, "PROCESSING"), Status.PENDING),
        (order_answer(5, "CAPTUREREQUIRED"), Status.PENDING),
        (order_answer(99, "Martian"), Status.PENDING),
    ],
)
def test_sync_maps_flexcharge_order_statuses(mocked, answer, status):
    order = make_order(status=Status.PENDING)
    mocked.add(responses.GET, ORDER_URL, json=answer)
    before = timezone.now()
    synced = sync_order(order)
    assert synced.status == status
    order.refresh_from_db()
    assert order.status == status
    assert order.last_synced_at >= before
    assert order.response_payload == answer


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("EXPIRED", Status.EXPIRED), ("DECLINED", Status.DECLINED), ("CANCELLED", Status.CANCELLED)],
)
def test_sync_asks_outcome_which_end_a_cancelled_order_had(mocked, outcome, status):
    # GET /orders/{id} says Cancelled (2) for every end (§7.2); /outcome names it.
    mocked.add(responses.GET, ORDER_URL, json=order_answer(2, "Cancelled"))
    mocked.add(responses.POST, API + "outcome", json={"status": outcome, "success": True})
    assert sync_order(make_order(status=Status.PENDING)).status == status
    [call] = [c for c in mocked.calls if c.request.url == API + "outcome"]
    assert json.loads(call.request.body) == {"orderSessionKey": "fc-order-1"}


def test_sync_does_not_ask_outcome_about_other_statuses(mocked):
    mocked.add(responses.GET, ORDER_URL, json=order_answer(7, "COMPLETED"))
    sync_order(make_order(status=Status.PENDING))
    assert not [c for c in mocked.calls if c.request.url.endswith("/outcome")]


def test_sync_without_outcome_reads_cancelled_by_the_expiry(mocked):
    mocked.add(responses.GET, ORDER_URL, json=order_answer(2, "Cancelled"))
    mocked.add(responses.POST, API + "outcome", status=404, json={})
    assert sync_order(make_order(status=Status.PENDING)).status == Status.CANCELLED


def test_sync_logs_an_order_on_hold(mocked, caplog):
    mocked.add(responses.GET, ORDER_URL, json=order_answer(1, "Onhold"))
    sync_order(make_order(status=Status.PENDING))
    assert "onhold at FlexCharge" in caplog.text


def test_sync_records_the_expiry_date(mocked):
    mocked.add(
        responses.GET,
        ORDER_URL,
        json=order_answer(4, "Processing", expiryDate="2030-07-01T00:00:00Z"),
    )
    order = sync_order(make_order(status=Status.PENDING))
    assert order.expiry_date == dt.datetime(2030, 7, 1, tzinfo=dt.UTC)


def test_sync_of_a_returned_order_marks_it_fully_refunded(mocked):
    order = make_order(status=Status.PARTIALLY_REFUNDED, refunded_amount=500)
    mocked.add(responses.GET, ORDER_URL, json=order_answer(6, "Returned"))
    synced = sync_order(order)
    assert (synced.status, synced.refunded_amount) == (Status.REFUNDED, 1999)


def test_sync_of_a_pending_order_since_rescued_and_refunded_signals_both(
    mocked, signal_log, django_capture_on_commit_callbacks
):
    mocked.add(responses.GET, ORDER_URL, json=order_answer(6, "Returned"))
    with django_capture_on_commit_callbacks(execute=True):
        synced = sync_order(make_order(status=Status.PENDING))
    assert synced.status == Status.REFUNDED
    assert [n for n in signal_log.names() if n != "order_status_changed"] == [
        "order_approved",
        "order_refunded",
    ]


def test_sync_never_reopens_a_finished_order(mocked):
    order = make_order(status=Status.CANCELLED)
    mocked.add(responses.GET, ORDER_URL, json=order_answer(7, "Completed"))
    assert sync_order(order).status == Status.CANCELLED


def test_sync_of_an_order_flexcharge_has_not_answered_about_is_refused(mocked):
    with pytest.raises(FlexChargeStateError, match="no FlexCharge order id"):
        sync_order(make_order(status=Status.QUEUED, session_key=None))
    assert len(mocked.calls) == 0
