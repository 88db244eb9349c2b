"""refund_order: amounts, states, FlexCharge's answers, and a Refund row that is never lost."""

from __future__ import annotations

import threading

import pytest
import requests
import responses
from django.contrib.auth.models import User
from django.db import connection

from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeStateError,
    FlexChargeTimeout,
    FlexChargeValidationError,
)
from django_flexcharge.models import FlexChargeOrder, Refund
from django_flexcharge.order_actions import refundable_rest
from django_flexcharge.services import refund_order
from tests.conftest import API
from tests.lifecycle_helpers import make_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
REFUND_URL = API + "orders/fc-order-1/refund"
SUCCESS = {"status": "SUCCESS", "success": True, "errors": []}


@pytest.fixture
def approved() -> FlexChargeOrder:
    return make_order(status=Status.APPROVED)


def test_a_full_refund_by_default(mocked, approved, signal_log, django_capture_on_commit_callbacks):
    mocked.add(responses.POST, REFUND_URL, json=SUCCESS)
    user = User.objects.create_user("admin")
    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_order(approved, reason="Customer request", user=user)
    assert (refund.amount, refund.outcome, refund.requested_by) == (1999, "succeeded", user)
    assert refund.response == SUCCESS
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.REFUNDED, 1999)
    assert (
        mocked.calls[-1].request.body
        == b'{"amountToRefund":19.99,"refundMessage":"Customer request"}'
    )
    assert signal_log.names() == ["order_status_changed", "order_refunded"]


def test_a_partial_refund_then_the_rest(
    mocked, approved, signal_log, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, REFUND_URL, json=SUCCESS)
    with django_capture_on_commit_callbacks(execute=True):
        refund_order(approved, 500)
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.PARTIALLY_REFUNDED, 500)
    assert refundable_rest(approved) == 1499
    with django_capture_on_commit_callbacks(execute=True):
        rest = refund_order(approved)
    assert rest.amount == 1499
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.REFUNDED, 1999)
    assert signal_log.names().count("order_refunded") == 2


def test_a_zero_decimal_currency_is_refunded_in_whole_units(mocked):
    order = make_order(status=Status.APPROVED, amount=500, currency="JPY")
    mocked.add(responses.POST, REFUND_URL, json=SUCCESS)
    refund_order(order, 200)
    assert mocked.calls[-1].request.body == b'{"amountToRefund":200}'


@pytest.mark.parametrize("amount", [0, -5, 2000, True, 10.5, "100"])
def test_an_amount_out_of_range_or_not_an_integer_is_refused(mocked, approved, amount):
    with pytest.raises(FlexChargeValidationError) as exc:
        refund_order(approved, amount)
    assert exc.value.field == "amount"
    assert not Refund.objects.exists()
    assert len(mocked.calls) == 0


def test_refunds_still_pending_are_held_back_from_the_rest(mocked, approved):
    Refund.objects.create(order=approved, amount=1500, currency="USD")
    assert refundable_rest(approved) == 499
    with pytest.raises(FlexChargeValidationError, match=r"4\.99 USD"):
        refund_order(approved, 1000)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    "status", [Status.QUEUED, Status.PENDING, Status.DECLINED, Status.REFUNDED, Status.CANCELLED]
)
def test_only_approved_orders_can_be_refunded(mocked, status):
    order = make_order(status=status)
    with pytest.raises(FlexChargeStateError, match=status):
        refund_order(order)
    assert len(mocked.calls) == 0


def test_an_order_without_a_flexcharge_id_cannot_be_refunded(mocked):
    order = make_order(status=Status.APPROVED, session_key=None)
    with pytest.raises(FlexChargeStateError, match="no FlexCharge order id"):
        refund_order(order)
    assert not Refund.objects.exists()


def test_a_refund_flexcharge_refuses_is_recorded_failed_and_raised(mocked, approved):
    mocked.add(
        responses.POST,
        REFUND_URL,
        json={
            "responseCode": "2001",
            "responseMessage": "Amount to refund (19.99) is greater than maximum refund amount",
            "success": False,
            "status": "FAILED",
            "errors": [{"item1": "greater than maximum", "item2": "2001"}],
        },
    )
    with pytest.raises(FlexChargeAPIError) as exc:
        refund_order(approved)
    assert exc.value.code == "2001"
    refund = Refund.objects.get()
    assert refund.outcome == Refund.Outcome.FAILED
    assert "greater than maximum" in refund.error
    assert refund.response["responseCode"] == "2001"
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.APPROVED, 0)
    assert refundable_rest(approved) == 1999


@pytest.mark.parametrize(
    "answer",
    [{"status": "DECLINED", "success": True}, {"success": False, "status": "PROCESSING"}, {}],
)
def test_an_answer_that_is_not_a_success_fails_the_refund(mocked, approved, answer):
    mocked.add(responses.POST, REFUND_URL, json=answer)
    with pytest.raises(FlexChargeAPIError):
        refund_order(approved)
    assert Refund.objects.get().outcome == Refund.Outcome.FAILED


@pytest.mark.parametrize(
    "answer", [{"status": "approved"}, {"status": "Success"}, {"success": True, "status": None}]
)
def test_success_and_approved_answers_both_count_as_refunded(mocked, approved, answer):
    mocked.add(responses.POST, REFUND_URL, json=answer)
    assert refund_order(approved).outcome == Refund.Outcome.SUCCEEDED


def test_a_timeout_leaves_the_refund_pending_and_raises(mocked, approved):
    mocked.add(responses.POST, REFUND_URL, body=requests.exceptions.ReadTimeout())
    with pytest.raises(FlexChargeTimeout):
        refund_order(approved, 700)
    refund = Refund.objects.get()
    assert refund.outcome == Refund.Outcome.PENDING
    assert "timed out" in refund.error
    approved.refresh_from_db()
    assert approved.status == Status.APPROVED
    assert refundable_rest(approved) == 1299


def test_a_webhook_for_the_same_refund_arriving_first_is_not_counted_twice(mocked, approved):
    def webhook_first(request):
        FlexChargeOrder.objects.filter(pk=approved.pk).update(
            status=Status.PARTIALLY_REFUNDED, refunded_amount=600
        )
        return 200, {}, '{"status": "SUCCESS"}'

    mocked.add_callback(responses.POST, REFUND_URL, callback=webhook_first)
    refund_order(approved, 600)
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.PARTIALLY_REFUNDED, 600)


@pytest.mark.django_db(transaction=True)
def test_the_refund_row_is_committed_before_flexcharge_is_called(mocked):
    order = make_order(status=Status.APPROVED)
    seen_by_another_connection: list[list[str]] = []

    def look_from_elsewhere():
        try:
            seen_by_another_connection.append(
                list(Refund.objects.values_list("outcome", flat=True))
            )
        finally:
            connection.close()

    def answer(request):
        reader = threading.Thread(target=look_from_elsewhere)
        reader.start()
        reader.join()
        return 200, {}, '{"status": "SUCCESS"}'

    mocked.add_callback(responses.POST, REFUND_URL, callback=answer)
    refund_order(order)
    assert seen_by_another_connection == [["pending"]]
