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
    FlexChargeRefundUnconfirmed,
    FlexChargeStateError,
    FlexChargeValidationError,
)
from django_flexcharge.models import FlexChargeOrder, Refund
from django_flexcharge.refunds import refundable_rest
from django_flexcharge.services import refund_order
from tests.conftest import API
from tests.factories import make_order

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


@pytest.mark.parametrize("outcome", [Refund.Outcome.PENDING, Refund.Outcome.UNCONFIRMED])
def test_no_refund_is_sent_while_another_is_unsettled(mocked, approved, outcome):
    Refund.objects.create(order=approved, amount=500, currency="USD", outcome=outcome)
    assert refundable_rest(approved) == 0
    with pytest.raises(FlexChargeStateError) as exc:
        refund_order(approved, 500)
    message = str(exc.value)
    assert "the refund of 5.00 USD sent" in message
    assert "no confirmed answer from FlexCharge" in message
    assert "manage.py flexcharge_sync --order INV-1" in message
    assert len(mocked.calls) == 0
    assert Refund.objects.count() == 1


def test_a_failed_refund_blocks_nothing(mocked, approved):
    Refund.objects.create(order=approved, amount=500, currency="USD", outcome="failed")
    mocked.add(responses.POST, REFUND_URL, json=SUCCESS)
    assert refund_order(approved, 500).outcome == Refund.Outcome.SUCCEEDED


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
    [
        # The live sandbox, 2024: a success envelope around a refused refund.
        {"success": True, "status": "SUCCESS", "responseMessage": "DECLINED", "responseCode": "05"},
        {"success": True, "status": "APPROVED", "responseMessage": "FAILED", "responseCode": "05"},
        {"success": True, "status": "DECLINED", "responseCode": "05"},
        {"success": False, "status": "PROCESSING", "responseCode": "05"},
    ],
    ids=["declined-in-success", "failed-message", "declined-status", "success-false"],
)
def test_a_refused_refund_is_failed_with_flexcharges_words_and_changes_nothing(
    mocked, approved, answer, signal_log, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, REFUND_URL, json=answer)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(FlexChargeAPIError) as exc:
        refund_order(approved, 500)
    assert exc.value.code == "05"
    refund = Refund.objects.get()
    assert (refund.outcome, refund.response_code) == (Refund.Outcome.FAILED, "05")
    assert refund.response_message == answer.get("responseMessage") or answer["status"]
    assert refund.response == answer
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.APPROVED, 0)
    assert signal_log.calls == []
    assert refundable_rest(approved) == 1999  # a refused refund blocks nothing


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"status": "approved"},  # no success flag
        {"success": True, "status": None},
        {"success": True, "status": "PROCESSING"},  # a word nobody documented
        {"success": True, "status": "SUCCESS", "responseCode": "1234"},  # an unknown code
        {"success": True, "status": "SUCCESS", "responseMessage": "Pending review"},
    ],
    ids=repr,
)
def test_an_answer_that_cannot_be_classified_is_unconfirmed_never_success(
    mocked, approved, answer, signal_log, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, REFUND_URL, json=answer)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(FlexChargeRefundUnconfirmed) as exc,
    ):
        refund_order(approved, 500)
    assert "does not say whether the refund was made" in str(exc.value)
    assert Refund.objects.get().outcome == Refund.Outcome.UNCONFIRMED
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.APPROVED, 0)
    assert signal_log.calls == []


@pytest.mark.parametrize(
    "answer",
    [
        {"success": True, "status": "SUCCESS"},
        {"success": True, "status": "Success", "responseMessage": "approved", "responseCode": "0"},
        {"success": True, "status": "APPROVED", "responseCode": "00"},
    ],
    ids=repr,
)
def test_success_and_approved_answers_count_as_refunded(mocked, approved, answer):
    mocked.add(responses.POST, REFUND_URL, json=answer)
    assert refund_order(approved).outcome == Refund.Outcome.SUCCEEDED


def test_the_vocabularies_are_settings(mocked, approved, settings):
    settings.FLEXCHARGE_REFUND_APPROVED_WORDS = ["SUCCESS", "APPROVED", "PROCESSED"]
    settings.FLEXCHARGE_REFUND_APPROVED_CODES = ["0", "100"]
    answer = {"success": True, "status": "SUCCESS", "responseMessage": "Processed"}
    mocked.add(responses.POST, REFUND_URL, json={**answer, "responseCode": "100"})
    assert refund_order(approved, 500).outcome == Refund.Outcome.SUCCEEDED


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.exceptions.ReadTimeout()},
        {"body": requests.exceptions.ConnectionError()},
        {"status": 504, "json": {"message": "Gateway Timeout"}},
        {"status": 502, "body": "<html>bad gateway</html>"},
        {"status": 409, "json": {}},
        {"status": 200, "body": "<html>not json</html>"},
    ],
    ids=["timeout", "connection", "504", "502", "409", "200-not-json"],
)
def test_a_lost_or_unreadable_answer_leaves_the_refund_unconfirmed(mocked, approved, failure):
    mocked.add(responses.POST, REFUND_URL, **failure)
    with pytest.raises(FlexChargeRefundUnconfirmed) as exc:
        refund_order(approved, 700)
    assert "flexcharge_sync --order INV-1" in str(exc.value)
    refund = Refund.objects.get()
    assert refund.outcome == Refund.Outcome.UNCONFIRMED
    assert refund.error
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.APPROVED, 0)
    assert refundable_rest(approved) == 0


@pytest.mark.parametrize("status", [400, 404])
def test_a_4xx_is_a_refusal(mocked, approved, status):
    mocked.add(responses.POST, REFUND_URL, status=status, json={"TraceId": ["00-ab-cd-01"]})
    with pytest.raises(FlexChargeAPIError):
        refund_order(approved, 700)
    assert Refund.objects.get().outcome == Refund.Outcome.FAILED


def test_a_webhook_for_the_same_refund_arriving_first_is_not_counted_twice(mocked, approved):
    def webhook_first(request):
        FlexChargeOrder.objects.filter(pk=approved.pk).update(
            status=Status.PARTIALLY_REFUNDED, refunded_amount=600
        )
        return 200, {}, '{"status": "SUCCESS", "success": true}'

    mocked.add_callback(responses.POST, REFUND_URL, callback=webhook_first)
    refund_order(approved, 600)
    approved.refresh_from_db()
    assert (approved.status, approved.refunded_amount) == (Status.PARTIALLY_REFUNDED, 600)


def test_the_total_is_the_orders_column_not_a_sum_of_refund_rows(mocked):
    # Totals once came from Sum(Refund rows): rows that are not there must not matter.
    order = make_order(status=Status.PARTIALLY_REFUNDED, refunded_amount=1000, amount=5000)
    mocked.add(responses.POST, REFUND_URL, json=SUCCESS)
    refund = refund_order(order, 1000)
    assert refund.refunded_before == 1000
    order.refresh_from_db()
    assert order.refunded_amount == 2000


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
        return 200, {}, '{"status": "SUCCESS", "success": true}'

    mocked.add_callback(responses.POST, REFUND_URL, callback=answer)
    refund_order(order)
    assert seen_by_another_connection == [["pending"]]
