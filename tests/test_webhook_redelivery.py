"""Redeliveries, the 401 reasons, and the state moves a delivery must not make.

FlexCharge may resend a delivery with its original nonce and date (its docs leave
it open): the same nonce and body is a duplicate, answered 200 whatever its
date, and applied again only if the stored event failed.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from django_flexcharge import order_state, webhooks
from django_flexcharge.exceptions import FlexChargeWebhookError
from django_flexcharge.models import FlexChargeOrder, WebhookEvent
from django_flexcharge.signing import sign_headers
from django_flexcharge.testing import meta_headers, signed_webhook
from tests.factories import webhook_order as make_order
from tests.signing_vectors import OFFICIAL, OTHER_KEY

URL = "/flexcharge/webhook/"
Status = FlexChargeOrder.Status
Stored = WebhookEvent.Status
IDS = {"order_id": "fc-0001", "external_order_id": "INV-1001"}

pytestmark = pytest.mark.django_db


def post(client, body, headers, **extra):
    return client.post(URL, data=body, content_type="text/plain", **meta_headers(headers), **extra)


def broken(*args, **kwargs):
    raise RuntimeError("database hiccup")


# --- a resend with the original headers ---


def test_service_a_resend_with_the_original_headers_after_our_failure_applies_once(
    monkeypatch, signal_log, django_capture_on_commit_callbacks
):
    order = make_order()
    body, headers = signed_webhook("order.completed", **IDS)
    with monkeypatch.context() as patch:
        patch.setattr(order_state, "transition", broken)
        with pytest.raises(RuntimeError):
            webhooks.receive(body, headers, "testserver")
    assert WebhookEvent.objects.get().status == Stored.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        again = webhooks.receive(body, headers, "testserver")
        third = webhooks.receive(body, headers, "testserver")

    assert (again.status, again.redelivered) == (Stored.APPLIED, "reapplied")
    assert (third.status, third.redelivered) == (Stored.APPLIED, "duplicate")
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert WebhookEvent.objects.count() == 1
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_view_a_resend_with_the_original_headers_after_our_500_is_applied_exactly_once(
    client, monkeypatch, signal_log, django_capture_on_commit_callbacks
):
    order = make_order()
    body, headers = signed_webhook("order.completed", **IDS)
    with monkeypatch.context() as patch:
        patch.setattr(order_state, "transition", broken)
        failed = post(client, body, headers)
    assert failed.status_code == 500

    with django_capture_on_commit_callbacks(execute=True):
        resent = post(client, body, headers)
        once_more = post(client, body, headers)

    assert (resent.status_code, resent.json()["status"]) == (200, "applied")
    assert (once_more.status_code, once_more.json()["status"]) == (200, "duplicate")
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert WebhookEvent.objects.get().status == Stored.APPLIED
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_a_resend_dated_beyond_the_tolerance_is_still_a_duplicate(client, settings):
    make_order()
    body, headers = signed_webhook(
        "order.completed", date=timezone.now() - dt.timedelta(seconds=200), **IDS
    )
    assert post(client, body, headers).status_code == 200

    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = 60  # the original date is now "stale"
    resent = post(client, body, headers)

    assert (resent.status_code, resent.json()["status"]) == (200, "duplicate")
    assert WebhookEvent.objects.count() == 1


def test_a_resend_of_a_body_refused_under_a_setting_since_fixed_applies(client, settings):
    order = make_order()
    settings.FLEXCHARGE_TEST_MODE = False
    body, headers = signed_webhook("order.completed", **IDS)
    assert post(client, body, headers).status_code == 400

    settings.FLEXCHARGE_TEST_MODE = True
    resent = post(client, body, headers)

    assert (resent.status_code, resent.json()["status"]) == (200, "applied")
    order.refresh_from_db()
    assert order.status == Status.APPROVED


def test_a_resend_of_a_body_still_refused_is_answered_400_again(client):
    body = b'{"Event":"order.completed","IsTestMode":true}'
    headers = sign_headers(OFFICIAL["key"], "testserver", body)

    first, again = post(client, body, headers), post(client, body, headers)

    assert (first.status_code, again.status_code) == (400, 400)
    assert WebhookEvent.objects.get().status == Stored.FAILED


# --- 401: which check failed ---


def refusal(client, caplog, body, headers, **extra) -> str:
    with caplog.at_level(logging.INFO, logger="django_flexcharge.webhooks"):
        response = post(client, body, headers, **extra)
    assert response.status_code == 401
    error = response.json()["error"]
    [record] = [r for r in caplog.records if "refused (401)" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert error in record.getMessage()
    for key in (OFFICIAL["key"], OTHER_KEY):
        assert key not in error
    return error


def test_a_reused_nonce_on_another_body_says_so(client, caplog):
    make_order()
    body, headers = signed_webhook("order.completed", nonce="a" * 32, **IDS)
    post(client, body, headers)
    other, other_headers = signed_webhook("order.refunded", nonce="a" * 32, **IDS)

    assert refusal(client, caplog, other, other_headers).startswith("reused nonce")
    assert WebhookEvent.objects.count() == 1


def test_a_stale_date_on_a_delivery_never_stored_says_so(client, caplog):
    make_order()
    body, headers = signed_webhook(
        "order.completed", date=timezone.now() - dt.timedelta(hours=1), **IDS
    )

    assert refusal(client, caplog, body, headers).startswith("stale date")
    assert not WebhookEvent.objects.exists()


def test_a_delivery_without_signature_headers_says_which_are_missing(client, caplog):
    body, headers = signed_webhook("order.completed", **IDS)
    del headers["x-fc-date"]

    error = refusal(client, caplog, body, headers)

    assert error == "no signature headers: x-fc-date missing"


def test_a_signature_no_key_matches_names_the_host_never_a_key(client, caplog):
    body, headers = signed_webhook("order.completed", key=OTHER_KEY, **IDS)

    error = refusal(client, caplog, body, headers)

    assert "no key matches for host 'testserver'" in error


def test_service_a_reused_nonce_is_refused_before_anything_is_stored():
    make_order()
    body, headers = signed_webhook("order.completed", nonce="b" * 32, **IDS)
    webhooks.receive(body, headers, "testserver")
    forged_body, _ = signed_webhook("order.expired", **IDS)
    replayed = {
        **headers,
        **sign_headers(OFFICIAL["key"], "testserver", forged_body, nonce="b" * 32),
    }

    with pytest.raises(FlexChargeWebhookError, match="reused nonce") as caught:
        webhooks.receive(forged_body, replayed, "testserver")

    assert caught.value.status_code == 401
    assert WebhookEvent.objects.count() == 1


# --- state moves that must not happen (issue 12 item 5) ---


def test_a_refund_event_for_a_queued_order_never_sent_changes_nothing(client, signal_log):
    order = make_order(status=Status.QUEUED, order_session_key=None, attempts=0)
    body, headers = signed_webhook("order.refunded", **IDS)

    response = post(client, body, headers)

    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.QUEUED, 0)
    assert "never sent" in WebhookEvent.objects.get().error
    assert signal_log.calls == []


def test_a_live_site_refuses_an_event_that_does_not_say_test_or_live(client, settings):
    settings.FLEXCHARGE_TEST_MODE = False
    order = make_order()
    body = b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001"}'

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 400
    assert "IsTestMode is missing" in response.json()["error"]
    order.refresh_from_db()
    assert order.status == Status.PENDING


def test_a_test_mode_site_accepts_an_event_without_is_test_mode(client):
    order = make_order()
    body = b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001"}'

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == Status.APPROVED


def test_a_far_future_timestamp_does_not_make_later_events_look_older(client, signal_log):
    order = make_order()
    future = timezone.now() + dt.timedelta(days=365)
    body, headers = signed_webhook("order.completed", timestamp=future, **IDS)
    assert post(client, body, headers).json()["status"] == "applied"

    body, headers = signed_webhook(
        "order.refunded",
        timestamp=timezone.now(),
        event_data={"TotalRefundedAmount": 19.99, "Currency": "USD"},
        **IDS,
    )
    response = post(client, body, headers)

    assert (response.status_code, response.json()["status"]) == (200, "applied")
    order.refresh_from_db()
    assert order.status == Status.REFUNDED
    assert order.last_event_at is not None
    assert order.last_event_at < timezone.now() + dt.timedelta(minutes=1)


def test_a_far_future_timestamp_stored_before_is_not_trusted_either(client):
    order = make_order(last_event_at=timezone.now() + dt.timedelta(days=30))
    body, headers = signed_webhook("order.completed", **IDS)

    response = post(client, body, headers)

    assert response.json()["status"] == "applied"
    order.refresh_from_db()
    assert order.status == Status.APPROVED


def test_a_timestamp_within_the_tolerance_still_orders_events(client):
    order = make_order(status=Status.APPROVED, last_event_at=timezone.now())
    earlier = timezone.now() - dt.timedelta(minutes=10)
    body, headers = signed_webhook("order.refunded", timestamp=earlier, **IDS)

    response = post(client, body, headers)

    assert response.json()["status"] == "ignored"
    order.refresh_from_db()
    assert order.status == Status.APPROVED


@pytest.mark.parametrize(
    "ids",
    [
        b'"OrderId":"fc-\\ud800","ExternalOrderId":"INV-1001"',
        b'"OrderId":"fc-0001","ExternalOrderId":"INV-\\udfff"',
        b'"OrderId":"fc-0001","ExternalOrderId":"INV-1001","ConfirmationId":"\\ud83d"',
    ],
    ids=["OrderId", "ExternalOrderId", "ConfirmationId"],
)
def test_a_lone_surrogate_escape_is_stored_and_answered_400_never_500(client, ids):
    order = make_order()
    body = b'{"Event":"order.completed",' + ids + b',"IsTestMode":true}'

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 400
    assert "lone surrogate" in response.json()["error"]
    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.body) == (Stored.FAILED, body.decode())
    order.refresh_from_db()
    assert order.status == Status.PENDING


def test_an_escaped_pair_that_makes_a_real_character_is_fine(client):
    make_order(order_id="INV-\U0001f600")
    body = (
        b'{"Event":"order.completed","OrderId":"","ExternalOrderId":"INV-\\ud83d\\ude00",'
        b'"IsTestMode":true}'
    )

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert (response.status_code, response.json()["status"]) == (200, "applied")


# --- an order we marked failed that FlexCharge charged (issue 13 items 4 and 6) ---


def test_service_a_completed_event_for_a_failed_order_approves_it_and_signals(
    signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.FAILED, order_session_key=None, attempts=3)
    body, headers = signed_webhook("order.completed", confirmation_id="22ACD1D9", **IDS)

    with django_capture_on_commit_callbacks(execute=True):
        event = webhooks.receive(body, headers, "testserver")

    assert event.status == Stored.APPLIED
    order.refresh_from_db()
    assert (order.status, order.order_session_key) == (Status.APPROVED, "fc-0001")
    assert signal_log.names() == ["order_status_changed", "order_approved"]
    assert signal_log.calls[0][2]["previous_status"] == Status.FAILED


def test_view_a_completed_event_for_a_failed_order_is_applied(
    client, signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.FAILED, attempts=2)
    body, headers = signed_webhook("order.completed", **IDS)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body, headers)

    assert (response.status_code, response.json()["status"]) == (200, "applied")
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert "order_approved" in signal_log.names()


@pytest.mark.parametrize("event", ["order.expired", "order.cancelled"])
def test_other_ends_leave_a_failed_order_failed(client, event):
    order = make_order(status=Status.FAILED, attempts=2)
    body, headers = signed_webhook(event, **IDS)

    response = post(client, body, headers)

    assert response.json()["status"] == "ignored"
    order.refresh_from_db()
    assert order.status == Status.FAILED


def test_the_same_delivery_stored_by_a_racing_request_is_a_duplicate(monkeypatch):
    # Both requests looked the nonce up before either stored it; the second's INSERT fails.
    order = make_order()
    body, headers = signed_webhook("order.completed", **IDS)
    first = webhooks.receive(body, headers, "testserver")
    monkeypatch.setattr(webhooks, "_stored", lambda nonce, account: None)

    again = webhooks.receive(body, headers, "testserver")

    assert (again.pk, again.redelivered) == (first.pk, "duplicate")
    assert WebhookEvent.objects.count() == 1
    order.refresh_from_db()
    assert order.status == Status.APPROVED


def test_a_racing_copy_of_a_refused_body_is_refused_400_too(monkeypatch):
    body = b"not json"
    headers = sign_headers(OFFICIAL["key"], "testserver", body)
    with pytest.raises(FlexChargeWebhookError):
        webhooks.receive(body, headers, "testserver")
    monkeypatch.setattr(webhooks, "_stored", lambda nonce, account: None)

    with pytest.raises(FlexChargeWebhookError) as caught:
        webhooks.receive(body, headers, "testserver")

    assert caught.value.status_code == 400
    assert WebhookEvent.objects.get().status == Stored.FAILED
