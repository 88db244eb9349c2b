"""POST /flexcharge/webhook/ over Django's test client: every answer of CONTRACT §7."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from django_flexcharge import order_state
from django_flexcharge.models import FlexChargeOrder, WebhookEvent
from django_flexcharge.signing import sign_headers
from django_flexcharge.testing import meta_headers, post_webhook, signed_webhook
from django_flexcharge.views import WebhookView
from tests.factories import webhook_order as make_order
from tests.signing_vectors import OFFICIAL, OTHER_KEY

URL = "/flexcharge/webhook/"
Status = FlexChargeOrder.Status
Stored = WebhookEvent.Status

pytestmark = pytest.mark.django_db


def deliver(client, event="order.completed", *, content_type="text/plain", extra=None, **kwargs):
    kwargs.setdefault("order_id", "fc-0001")
    kwargs.setdefault("external_order_id", "INV-1001")
    body, headers = signed_webhook(event, **kwargs)
    return post(client, body, headers, content_type=content_type, **(extra or {}))


def post(client, body, headers, *, content_type="text/plain", **extra):
    return client.post(URL, data=body, content_type=content_type, **meta_headers(headers), **extra)


# --- 200 ---


def test_a_signed_completed_event_approves_the_order(client, django_capture_on_commit_callbacks):
    order = make_order()

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, confirmation_id="22ACD1D9")

    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert order.confirmation_id == "22ACD1D9"


def test_the_official_sample_delivery_is_accepted(client, settings):
    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = 10**10  # the sample is dated March 2023
    order = make_order(
        order_id="a9735210-1349-49bf-bfde-b737dd07872a",
        order_session_key="ac9674ed-cbfe-49aa-bc8b-eb1d2b74c429",
    )
    headers = {
        "x-fc-nonce": OFFICIAL["nonce"],
        "x-fc-date": OFFICIAL["date"],
        "x-fc-content-sha512": OFFICIAL["content_sha512"],
        "x-fc-authorization": "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;"
        "x-fc-content-sha512&Signature=" + OFFICIAL["signature"],
    }

    response = post(client, OFFICIAL["body"], headers, HTTP_HOST=OFFICIAL["host"])

    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.status, order.confirmation_id) == (Status.APPROVED, "22ACD1D9")


def test_a_duplicate_of_an_applied_event_answers_200_and_signals_once(
    client, signal_log, django_capture_on_commit_callbacks
):
    make_order()

    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(client)
        again = deliver(client, is_resent=True)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["status"] == "duplicate"
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_an_unknown_order_is_answered_200_and_stored_as_ignored(client):
    response = deliver(client, order_id="fc-unknown", external_order_id="INV-unknown")

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert WebhookEvent.objects.get().status == Stored.IGNORED


@pytest.mark.parametrize("event", ["order.capturerequired", "payment.chargeback.received"])
def test_an_event_the_app_does_not_act_on_is_answered_200_and_ignored(client, event):
    order = make_order()

    response = deliver(client, event)

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert WebhookEvent.objects.get().order == order


def test_an_unsubscribed_event_without_order_ids_is_ignored_not_refused(client):
    body = (
        b'{"Event":"payout.created","TimeStamp":null,"EventData":{"Amount":10},"IsTestMode":true}'
    )

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/xml", ""])
def test_any_content_type_is_read_as_raw_bytes(client, content_type):
    make_order()

    response = deliver(client, content_type=content_type)

    assert response.status_code == 200


def test_an_accept_header_the_view_cannot_render_still_gets_json(client):
    make_order()

    response = deliver(client, extra={"HTTP_ACCEPT": "application/xml"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


# --- 401 ---


def test_a_resent_delivery_with_the_original_headers_is_a_duplicate_stored_once(
    client, signal_log, django_capture_on_commit_callbacks
):
    make_order()
    body, headers = signed_webhook(
        "order.completed", order_id="fc-0001", external_order_id="INV-1001"
    )

    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, body, headers)
        again = post(client, body, headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["status"], again.json()["status"]) == ("applied", "duplicate")
    assert WebhookEvent.objects.count() == 1
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_a_reused_nonce_with_another_body_is_refused(client):
    make_order()
    deliver(client, "order.completed", nonce="a" * 32)

    response = deliver(client, "order.refunded", nonce="a" * 32)

    assert response.status_code == 401
    assert FlexChargeOrder.objects.get().status == Status.APPROVED


@pytest.mark.parametrize("age", [301, -301], ids=["stale", "future"])
def test_a_date_outside_the_tolerance_is_refused(client, age):
    make_order()

    response = deliver(client, date=timezone.now() - dt.timedelta(seconds=age))

    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


def test_a_date_inside_the_tolerance_is_accepted(client):
    make_order()

    response = deliver(client, date=timezone.now() - dt.timedelta(seconds=290))

    assert response.status_code == 200


def test_the_tolerance_follows_the_setting(client, settings):
    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = 30
    make_order()

    response = deliver(client, date=timezone.now() - dt.timedelta(seconds=60))

    assert response.status_code == 401


@pytest.mark.parametrize("tolerance", [0, None])
def test_a_tolerance_of_zero_or_none_turns_the_date_check_off(client, settings, tolerance):
    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = tolerance
    make_order()
    make_order(order_id="INV-1002", order_session_key="fc-0002")
    body, headers = signed_webhook(
        "order.completed",
        order_id="fc-0001",
        external_order_id="INV-1001",
        date=timezone.now() - dt.timedelta(days=30),
    )

    old = post(client, body, headers)
    future = deliver(
        client,
        order_id="fc-0002",
        external_order_id="INV-1002",
        date=timezone.now() + dt.timedelta(days=1),
    )
    replay = post(client, body, headers)

    assert (old.status_code, future.status_code) == (200, 200)
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    assert WebhookEvent.objects.count() == 2


def test_with_the_date_check_off_an_unreadable_date_is_still_refused(client, settings):
    settings.FLEXCHARGE_WEBHOOK_TOLERANCE = 0
    make_order()

    response = deliver(client, date="yesterday at noon")

    assert response.status_code == 401


def test_a_signature_for_another_host_is_refused(client):
    make_order()

    response = deliver(client, host="attacker.example")

    assert response.status_code == 401


def test_a_signature_with_an_unknown_key_is_refused(client):
    make_order()

    response = deliver(client, key=OTHER_KEY)

    assert response.status_code == 401


def test_either_configured_key_is_accepted_during_rotation(client, settings):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [OTHER_KEY, OFFICIAL["key"]]
    make_order()
    make_order(order_id="INV-1002", order_session_key="fc-0002")

    old = deliver(client, key=OFFICIAL["key"])
    new = deliver(client, key=OTHER_KEY, order_id="fc-0002", external_order_id="INV-1002")

    assert (old.status_code, new.status_code) == (200, 200)


@pytest.mark.parametrize(
    "drop", ["x-fc-nonce", "x-fc-date", "x-fc-authorization", "all"], ids=lambda d: f"no-{d}"
)
def test_missing_signature_headers_are_refused(client, drop):
    make_order()
    body, headers = signed_webhook(
        "order.completed", order_id="fc-0001", external_order_id="INV-1001"
    )
    headers = {} if drop == "all" else {k: v for k, v in headers.items() if k != drop}

    response = post(client, body, headers)

    assert response.status_code == 401


def test_nothing_changes_without_a_valid_signature(client, signal_log):
    order = make_order()
    _, headers = signed_webhook("order.expired", order_id="fc-0001", external_order_id="INV-1001")
    forged, _ = signed_webhook("order.completed", order_id="fc-0001", external_order_id="INV-1001")

    response = post(client, forged, headers)

    assert response.status_code == 401
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert not WebhookEvent.objects.exists()
    assert signal_log.calls == []


# --- hosts and proxies ---


def test_a_host_with_a_port_verifies_as_get_host_reports_it_or_without_the_port(client):
    # §11.4: the signed host is "the bare host"; an independent sender may drop the port.
    make_order()
    make_order(order_id="INV-1002", order_session_key="fc-0002")
    second = {"order_id": "fc-0002", "external_order_id": "INV-1002"}

    ok = deliver(client, host="127.0.0.1:8000", extra={"HTTP_HOST": "127.0.0.1:8000"})
    bare = deliver(client, host="127.0.0.1", extra={"HTTP_HOST": "127.0.0.1:8000"}, **second)

    assert (ok.status_code, bare.status_code) == (200, 200)
    assert (ok.json()["status"], bare.json()["status"]) == ("applied", "applied")


def test_a_signature_without_the_port_verifies_when_the_port_comes_from_server_port(client):
    make_order()

    response = deliver(client, host="testserver", extra={"SERVER_PORT": "8000"})

    assert response.status_code == 200
    assert response.json()["status"] == "applied"


def test_an_ipv6_host_with_a_port_accepts_the_bracketed_and_bare_address(client):
    for n, signed in enumerate(["[::1]:8000", "[::1]", "::1"]):
        make_order(order_id=f"INV-{n}", order_session_key=f"fc-{n}")
        response = deliver(
            client,
            host=signed,
            order_id=f"fc-{n}",
            external_order_id=f"INV-{n}",
            extra={"HTTP_HOST": "[::1]:8000"},
        )
        assert response.status_code == 200, signed


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("testserver:8000", "testserver"),  # a port is dropped, never added
        ("testserver:9000", "testserver:8000"),
        ("other.example", "testserver:8000"),
        ("other.example:8000", "testserver:8000"),
        ("[::2]", "[::1]:8000"),
        ("testserver", "testserver.evil:8000"),
    ],
)
def test_a_signature_for_another_host_or_port_is_still_refused(client, signed, received):
    order = make_order()

    response = deliver(client, host=signed, extra={"HTTP_HOST": received})

    assert response.status_code == 401
    assert "invalid or missing signature" in response.json()["error"]
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert not WebhookEvent.objects.exists()


def test_behind_a_proxy_the_configured_webhook_host_is_verified(client, settings):
    settings.FLEXCHARGE_WEBHOOK_HOST = "billing.example.com"
    make_order()
    make_order(order_id="INV-1002", order_session_key="fc-0002")

    public = deliver(client, host="billing.example.com")
    internal = deliver(client, host="testserver", order_id="fc-0002", external_order_id="INV-1002")

    assert (public.status_code, internal.status_code) == (200, 401)


def test_a_configured_webhook_host_with_a_port_also_accepts_it_without(client, settings):
    settings.FLEXCHARGE_WEBHOOK_HOST = "billing.example.com:8443"
    for n in range(4):
        make_order(order_id=f"INV-{n}", order_session_key=f"fc-{n}")

    def send(n: int, host: str):
        ids = {"order_id": f"fc-{n}", "external_order_id": f"INV-{n}"}
        return deliver(client, host=host, extra={"HTTP_HOST": "internal:8000"}, **ids).status_code

    assert send(0, "billing.example.com:8443") == 200
    assert send(1, "billing.example.com") == 200
    assert send(2, "internal:8000") == 401
    assert send(3, "internal") == 401


# --- 400 ---


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b'"order.completed"',
        b"null",
        b"[" * 50_000,
        b'{"OrderId":"fc-0001","ExternalOrderId":"INV-1001"}',
        b'{"Event":"order.completed"}',
        b'{"Event":"order.refunded","OrderId":null}',
        b'{"Event":"order.expired","ExternalOrderId":""}',
        b'{"Event":"order.completed","OrderId":null,"ExternalOrderId":""}',
        b'{"Event":5,"OrderId":"fc-0001","ExternalOrderId":"INV-1001"}',
        b'{"Event":"order.completed","OrderId":42,"ExternalOrderId":"INV-1001"}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":["INV-1001"]}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001","IsTestMode":"yes"}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001","IsResent":1}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001","TimeStamp":1}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001","TimeStamp":"soon"}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001","ConfirmationId":{}}',
        b'{"Event":"order.completed","OrderId":"fc-\\u0000","ExternalOrderId":"INV-1001"}',
        b'{"Event":"order.completed","OrderId":"' + b"f" * 65 + b'","ExternalOrderId":"INV-1001"}',
        b'{"Event":"' + b"e" * 65 + b'","OrderId":"fc-0001","ExternalOrderId":"INV-1001"}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":"INV-1001","x":1'
        + b"0" * 5000
        + b"}",
        b'\x00{"Event":"order.completed"}',
    ],
    ids=lambda body: repr(body[:40]),
)
def test_a_signed_body_the_app_cannot_use_is_answered_400_and_changes_nothing(client, body):
    order = make_order()

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 400
    assert response.json()["status"] == "refused"
    order.refresh_from_db()
    assert order.status == Status.PENDING
    stored = WebhookEvent.objects.get()
    assert stored.status == Stored.FAILED
    assert stored.error


@pytest.mark.parametrize(
    "body",
    [
        b'{"Event":"order.completed","ExternalOrderId":"INV-1001","IsTestMode":true}',
        b'{"Event":"order.completed","OrderId":"fc-0001","IsTestMode":true}',
        b'{"Event":"order.completed","OrderId":"","ExternalOrderId":"INV-1001"}',
        b'{"Event":"order.completed","OrderId":"fc-0001","ExternalOrderId":null}',
    ],
    ids=["no-OrderId", "no-ExternalOrderId", "empty-OrderId", "null-ExternalOrderId"],
)
def test_one_of_the_two_order_ids_is_enough_to_apply_an_order_event(client, body):
    order = make_order()

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert WebhookEvent.objects.get().order == order


def test_the_emptiness_of_both_order_ids_is_the_reason_given(client):
    body = b'{"Event":"order.completed","IsTestMode":true}'

    response = post(client, body, sign_headers(OFFICIAL["key"], "testserver", body))

    assert response.status_code == 400
    assert response.json()["error"] == "OrderId and ExternalOrderId are both missing or empty"


def test_a_test_mode_event_on_a_live_site_is_answered_400(client, settings):
    settings.FLEXCHARGE_TEST_MODE = False
    order = make_order()

    response = deliver(client, is_test_mode=True)

    assert response.status_code == 400
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert "test-mode event on a live site" in WebhookEvent.objects.get().error


def test_a_live_event_on_a_test_mode_site_is_answered_400(client):
    make_order()

    response = deliver(client, is_test_mode=False)

    assert response.status_code == 400
    assert FlexChargeOrder.objects.get().status == Status.PENDING


# --- 413 ---


def test_a_body_over_the_limit_is_answered_413_before_anything_else(client, settings):
    settings.FLEXCHARGE_WEBHOOK_MAX_BODY = 100
    make_order()

    response = deliver(client, event_data={"padding": "x" * 200})

    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


def test_a_body_over_djangos_upload_limit_is_answered_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    make_order()

    response = deliver(client, event_data={"padding": "x" * 200})

    assert response.status_code == 413


def test_the_default_limit_refuses_a_large_unsigned_body_with_413(client):
    response = client.post(URL, data=b"x" * (64 * 1024 + 1), content_type="text/plain")

    assert response.status_code == 413


# --- 500 ---


def test_our_failure_answers_500_keeps_the_row_and_a_redelivery_applies(
    client, monkeypatch, signal_log, django_capture_on_commit_callbacks
):
    order = make_order()

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    with monkeypatch.context() as patch:
        patch.setattr(order_state, "transition", broken)
        failed = deliver(client)

    assert failed.status_code == 500
    kept = WebhookEvent.objects.get()
    assert kept.status == Stored.FAILED
    assert "RuntimeError: database hiccup" in kept.error
    order.refresh_from_db()
    assert order.status == Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        redelivered = deliver(client, is_resent=True)

    assert redelivered.status_code == 200
    assert redelivered.json()["status"] == "applied"
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert signal_log.names() == ["order_status_changed", "order_approved"]


def test_missing_subscriber_keys_are_our_failure_so_flexcharge_retries(client, settings):
    body, headers = signed_webhook(
        "order.completed", order_id="fc-0001", external_order_id="INV-1001", key=OFFICIAL["key"]
    )
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = []

    response = post(client, body, headers)

    assert response.status_code == 500
    assert not WebhookEvent.objects.exists()


# --- host project policies ---


def test_the_view_works_under_login_required_middleware(client, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    make_order()

    response = deliver(client)

    assert response.status_code == 200


def test_the_view_ignores_restrictive_rest_framework_defaults(client, settings):
    settings.REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"anon": "1/day"},
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.BrowsableAPIRenderer"],
        "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.AcceptHeaderVersioning",
        "ALLOWED_VERSIONS": ["2"],
        "DEFAULT_VERSION": "2",
    }
    make_order()
    make_order(order_id="INV-1002", order_session_key="fc-0002")

    first = deliver(client)
    second = deliver(client, order_id="fc-0002", external_order_id="INV-1002")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first["Content-Type"].startswith("application/json")


def test_the_view_needs_no_csrf_token():
    make_order()

    response = deliver(Client(enforce_csrf_checks=True))

    assert response.status_code == 200


def test_the_view_opts_out_of_atomic_requests_and_login_required():
    view = WebhookView.as_view()

    assert "default" in view._non_atomic_requests
    assert view.login_required is False
    assert view.csrf_exempt is True


@pytest.mark.django_db(transaction=True)
def test_under_atomic_requests_the_failed_row_survives(client, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    make_order()
    monkeypatch.setattr(order_state, "transition", lambda *a, **k: 1 / 0)

    response = deliver(client)

    assert response.status_code == 500
    assert WebhookEvent.objects.get().status == Stored.FAILED


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


def test_post_webhook_helper_delivers_through_the_url_name(client):
    make_order()

    response = post_webhook(client, order_id="fc-0001", external_order_id="INV-1001")

    assert response.status_code == 200


# --- concurrency ---


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_deliveries_of_one_event_change_the_order_once(signal_log):
    order = make_order()
    stamp = timezone.now()
    deliveries = [
        signed_webhook(
            "order.completed",
            order_id="fc-0001",
            external_order_id="INV-1001",
            timestamp=stamp,
            is_resent=i % 2 == 1,
        )
        for i in range(20)
    ]
    start = threading.Barrier(len(deliveries))
    answers: list[tuple[int, str]] = []

    def send(body: bytes, headers: dict[str, str]) -> None:
        try:
            client = Client()
            start.wait()
            response = post(client, body, headers)
            answers.append((response.status_code, response.json()["status"]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=delivery) for delivery in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(answers) == [(200, "applied")] + [(200, "duplicate")] * 19
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert signal_log.names() == ["order_status_changed", "order_approved"]
    assert WebhookEvent.objects.filter(status=Stored.APPLIED).count() == 1


# --- the view's own parser ---


def test_the_body_the_view_verifies_is_what_its_parser_returns(client, monkeypatch):
    from django_flexcharge.views import RawBodyParser

    order = make_order()
    seen = []
    real = RawBodyParser.parse

    def spy(self, stream, media_type=None, parser_context=None):
        seen.append(real(self, stream, media_type, parser_context))
        return seen[-1]

    monkeypatch.setattr(RawBodyParser, "parse", spy)
    response = deliver(client)

    assert response.status_code == 200
    [body] = seen
    assert b'"order.completed"' in body
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.APPROVED


def test_a_parser_that_refuses_the_body_refuses_the_delivery(client, monkeypatch):
    from rest_framework.exceptions import ParseError

    from django_flexcharge.views import RawBodyParser

    order = make_order()

    def refuse(self, stream, media_type=None, parser_context=None):
        raise ParseError("unreadable")

    monkeypatch.setattr(RawBodyParser, "parse", refuse)
    response = deliver(client)

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    order.refresh_from_db()
    assert order.status == FlexChargeOrder.Status.PENDING
