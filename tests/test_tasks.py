"""Background delivery of /evaluate: answers, refusals, retries with the same key, the window."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
import responses
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import evaluations
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.services import evaluate_declined_payment
from tests.conftest import API, bodies, calls_to, make_payment
from tests.factories import evaluate_answer, make_due, make_order, make_vaulted

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status


@pytest.fixture
def queued(payer, billing, subscription, django_capture_on_commit_callbacks) -> FlexChargeOrder:
    """A declined payment stored by the service, its task not run yet."""
    with django_capture_on_commit_callbacks(execute=False):
        return evaluate_declined_payment(
            make_payment(),
            card=make_vaulted(),
            payer=payer,
            billing=billing,
            subscription=subscription,
        )


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ("SUBMITTED", Status.PENDING),
        ("PROCESSING", Status.PENDING),
        ("CHALLENGE", Status.PENDING),
        ("submitted", Status.PENDING),
        ("APPROVED", Status.APPROVED),
        ("DECLINED", Status.DECLINED),
    ],
)
def test_each_evaluate_answer_sets_its_status(mocked, queued, answer, status):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer(answer))
    assert send_evaluation(queued.pk) == status
    queued.refresh_from_db()
    assert queued.status == status
    assert queued.order_session_key == "fc-order-1"
    assert queued.response_payload["status"] == answer
    assert queued.locked_until is None
    assert queued.attempts == 1


def test_approval_sends_order_approved_once(
    mocked, queued, signal_log, django_capture_on_commit_callbacks
):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("APPROVED"))
    with django_capture_on_commit_callbacks(execute=True):
        send_evaluation(queued.pk)
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_a_pending_order_records_the_expiry_it_was_sent_with(mocked, queued):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))
    send_evaluation(queued.pk)
    queued.refresh_from_db()
    sent = queued.request_payload["expiryDateUtc"]
    assert queued.expiry_date.strftime("%Y-%m-%dT%H:%M:%SZ") == sent


def test_an_unknown_answer_leaves_the_order_with_flexcharge(mocked, queued, caplog):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SOMETHINGNEW"))
    assert send_evaluation(queued.pk) == Status.PENDING
    assert "unknown /evaluate status" in caplog.text


def test_a_400_fails_the_order_with_the_field_errors_and_is_not_retried(mocked, queued):
    mocked.add(
        responses.POST,
        API + "evaluate",
        status=400,
        json={"TraceId": ["00-abc-01"], "Transaction.ResponseCode": ["required"]},
    )
    assert send_evaluation(queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert queued.api_errors == {"Transaction.ResponseCode": ["required"]}
    assert "00-abc-01" in queued.last_error
    assert queued.next_attempt_at is None
    call_command("flexcharge_retry", "--run")
    assert calls_to(mocked, "evaluate") == 1


def test_a_409_fails_the_order_with_the_error(mocked, queued):
    mocked.add(responses.POST, API + "evaluate", status=409, json={"responseMessage": "reused"})
    assert send_evaluation(queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert "409" in queued.last_error


def test_a_business_failure_in_a_200_fails_the_order(mocked, queued):
    mocked.add(
        responses.POST,
        API + "evaluate",
        json={"success": False, "status": "FAILED", "errors": [{"item1": "MIT off", "item2": "7"}]},
    )
    assert send_evaluation(queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.api_errors == {"7": ["MIT off"]}


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.exceptions.ReadTimeout("read timed out")},
        {"body": requests.exceptions.ConnectionError("reset")},
        {"status": 503, "json": {}},
        {"status": 429, "json": {}},
    ],
    ids=["timeout", "connection", "5xx", "429"],
)
def test_a_passing_failure_keeps_the_order_queued_for_a_retry(mocked, queued, failure):
    mocked.add(responses.POST, API + "evaluate", **failure)
    before = timezone.now()
    assert send_evaluation(queued.pk) == "retry"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.attempts == 1
    assert queued.next_attempt_at >= before
    assert queued.locked_until is None
    assert queued.last_error


@override_settings(FLEXCHARGE_RETRY_BASE_DELAY=60)
def test_retries_resend_the_same_body_with_the_same_idempotency_key(mocked, queued, monkeypatch):
    monkeypatch.setattr("django_flexcharge.delivery.random.uniform", lambda low, high: high)
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    mocked.add(responses.POST, API + "evaluate", status=502, json={})
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))
    assert send_evaluation(queued.pk) == "retry"
    assert send_evaluation(queued.pk) == "skipped"  # not due yet
    make_due(queued)
    assert send_evaluation(queued.pk) == "retry"
    make_due(queued)
    assert send_evaluation(queued.pk) == Status.PENDING
    sent = bodies(mocked, "evaluate")
    assert len(sent) == 3
    assert {s["idempotencyKey"] for s in sent} == {str(queued.idempotency_key)}
    assert sent[0] == sent[1] == sent[2] == queued.request_payload
    queued.refresh_from_db()
    assert queued.attempts == 3
    assert queued.last_error == ""


def test_retry_after_from_flexcharge_is_honoured(mocked, queued):
    mocked.add(
        responses.POST, API + "evaluate", status=429, json={}, headers={"Retry-After": "120"}
    )
    before = timezone.now()
    send_evaluation(queued.pk)
    queued.refresh_from_db()
    assert queued.next_attempt_at >= before + dt.timedelta(seconds=120)


def test_refused_credentials_are_retried_because_settings_can_be_fixed(queued):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, API + "oauth2/token", status=400, json={})
        assert send_evaluation(queued.pk) == "retry"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert "HTTP 400" in queued.last_error


def test_an_unexpected_error_keeps_the_row_and_stores_only_its_class(mocked, queued, monkeypatch):
    def broken(self, body):
        raise KeyError("payload text that must not be stored")

    monkeypatch.setattr("django_flexcharge.client.FlexChargeClient.evaluate", broken)
    assert send_evaluation(queued.pk) == "retry"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.last_error == "KeyError"


def test_a_crash_after_the_call_is_resent_with_the_same_key(mocked, queued, monkeypatch):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))

    def crash(order_pk, data):
        raise SystemError("worker killed before saving the answer")

    monkeypatch.setattr(evaluations, "apply_evaluation", crash)
    with pytest.raises(SystemError):
        send_evaluation(queued.pk)
    monkeypatch.undo()
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.locked_until > timezone.now()  # the dead worker's lease
    call_command("flexcharge_retry", "--run")
    assert calls_to(mocked, "evaluate") == 1  # lease still held: nobody resends yet
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    FlexChargeOrder.objects.filter(pk=queued.pk).update(locked_until=long_ago, created=long_ago)
    call_command("flexcharge_retry", "--run")
    first, second = bodies(mocked, "evaluate")
    assert first == second
    assert second["idempotencyKey"] == str(queued.idempotency_key)
    queued.refresh_from_db()
    assert queued.status == Status.PENDING
    assert queued.attempts == 2


def test_an_answer_does_not_move_back_an_order_a_webhook_already_approved(mocked, queued):
    def webhook_wins(request):
        FlexChargeOrder.objects.filter(pk=queued.pk).update(status=Status.APPROVED)
        return 200, {}, json.dumps(evaluate_answer("SUBMITTED"))

    mocked.add_callback(responses.POST, API + "evaluate", callback=webhook_wins)
    assert send_evaluation(queued.pk) == Status.APPROVED
    queued.refresh_from_db()
    assert queued.status == Status.APPROVED
    assert queued.order_session_key == "fc-order-1"
    assert queued.locked_until is None


def test_a_failure_does_not_touch_an_order_a_webhook_moved_on(mocked, queued):
    def webhook_wins(request):
        FlexChargeOrder.objects.filter(pk=queued.pk).update(status=Status.APPROVED)
        raise requests.exceptions.ReadTimeout()

    mocked.add_callback(responses.POST, API + "evaluate", callback=webhook_wins)
    assert send_evaluation(queued.pk) == "skipped"
    queued.refresh_from_db()
    assert (queued.status, queued.last_error, queued.locked_until) == (Status.APPROVED, "", None)


def test_an_order_never_sent_within_the_window_fails_without_a_cancel(mocked, queued):
    late = timezone.now() - dt.timedelta(hours=25)
    FlexChargeOrder.objects.filter(pk=queued.pk).update(declined_at=late)
    assert send_evaluation(queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert "window" in queued.last_error
    assert len(mocked.calls) == 0


def test_giving_up_after_a_timeout_cancels_at_flexcharge_by_our_order_id(mocked, queued):
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    cancel = mocked.add(responses.POST, API + "orders/INV-100045/external-cancel", json={})
    send_evaluation(queued.pk)
    late = timezone.now() - dt.timedelta(hours=25)
    FlexChargeOrder.objects.filter(pk=queued.pk).update(declined_at=late)
    make_due(queued)
    assert send_evaluation(queued.pk) == "failed"
    assert cancel.call_count == 1
    assert calls_to(mocked, "evaluate") == 1


def test_a_timeout_when_the_window_is_about_to_close_gives_up_and_cancels(mocked, queued):
    nearly = timezone.now() - dt.timedelta(hours=24) + dt.timedelta(milliseconds=500)
    FlexChargeOrder.objects.filter(pk=queued.pk).update(declined_at=nearly)
    mocked.add(responses.POST, API + "evaluate", status=503, json={}, headers={"Retry-After": "60"})
    cancel = mocked.add(responses.POST, API + "orders/INV-100045/external-cancel", json={})
    assert send_evaluation(queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert cancel.call_count == 1


def test_an_unanswered_cancel_after_giving_up_keeps_the_order_pending(mocked, queued, caplog):
    # FlexCharge may hold the order: the host must not charge it again meanwhile.
    mocked.add(responses.POST, API + "evaluate", body=requests.exceptions.ReadTimeout())
    mocked.add(responses.POST, API + "orders/INV-100045/external-cancel", status=500, json={})
    mocked.add(responses.GET, API + "orders", json={"results": []})
    send_evaluation(queued.pk)
    late = timezone.now() - dt.timedelta(hours=25)
    FlexChargeOrder.objects.filter(pk=queued.pk).update(declined_at=late, next_attempt_at=None)
    assert send_evaluation(queued.pk) == "unconfirmed"
    assert "external-cancel after giving up" in caplog.text
    queued.refresh_from_db()
    assert (queued.status, queued.order_session_key) == (Status.PENDING, None)
    assert "may hold the order" in queued.last_error


def test_a_leased_row_is_not_sent_by_a_second_worker(mocked, queued):
    FlexChargeOrder.objects.filter(pk=queued.pk).update(
        locked_until=timezone.now() + dt.timedelta(minutes=1)
    )
    assert send_evaluation(queued.pk) == "skipped"
    assert len(mocked.calls) == 0


def test_an_order_no_longer_queued_is_not_sent(mocked):
    order = make_order(status=Status.PENDING)
    assert send_evaluation(order.pk) == "skipped"
    assert len(mocked.calls) == 0
