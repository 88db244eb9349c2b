"""django_flexcharge.testing and flexcharge_send_test_webhook, as a host project uses them."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import responses
from django.core.management import CommandError, call_command
from django.http.request import HttpHeaders

from django_flexcharge import signing
from django_flexcharge.client import FlexChargeClient, get_client, set_client
from django_flexcharge.exceptions import FlexChargeConfigurationError, FlexChargeTimeout
from django_flexcharge.models import FlexChargeOrder, WebhookEvent
from django_flexcharge.testing import (
    FakeFlexChargeClient,
    meta_headers,
    post_webhook,
    signed_webhook,
    webhook_body,
    webhook_host,
)
from tests.signing_vectors import OFFICIAL, OTHER_KEY

# --- signed_webhook ---


def test_a_signed_webhook_verifies_with_the_configured_key():
    body, headers = signed_webhook("order.completed", order_id="fc-1", external_order_id="INV-1")

    assert signing.verify(body, headers, "testserver", [OFFICIAL["key"]])
    payload = json.loads(body)
    assert payload["Event"] == "order.completed"
    assert (payload["OrderId"], payload["ExternalOrderId"]) == ("fc-1", "INV-1")
    assert (payload["IsTestMode"], payload["IsResent"], payload["EventData"]) == (True, False, None)


def test_a_signed_webhook_takes_key_host_nonce_and_date():
    date = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)

    body, headers = signed_webhook(
        "order.expired",
        order_id="fc-1",
        external_order_id="INV-1",
        key=OTHER_KEY,
        host="shop.example:8443",
        nonce="0123456789abcdef0123456789abcdef",
        date=date,
    )

    assert headers["x-fc-nonce"] == "0123456789abcdef0123456789abcdef"
    assert headers["x-fc-date"] == "Sat, 01 Jun 2024 12:00:00 GMT"
    assert signing.verify(body, headers, "shop.example:8443", [OTHER_KEY])
    assert not signing.verify(body, headers, "shop.example:8443", [OFFICIAL["key"]])


def test_the_second_published_vector_is_reproduced_by_the_helpers():
    body = webhook_body(
        "order.expired",
        order_id="3f0c1e7a-1111-4a2b-9c3d-000000000001",
        external_order_id="INV-1001",
        timestamp="2024-06-01T12:00:00.000000Z",
    )

    assert body == (
        b'{"Event":"order.expired","TimeStamp":"2024-06-01T12:00:00.000000Z","EventData":null,'
        b'"ExternalOrderId":"INV-1001","OrderId":"3f0c1e7a-1111-4a2b-9c3d-000000000001",'
        b'"ConfirmationId":null,"IsTestMode":true,"IsResent":false}'
    )


def test_timestamps_are_written_like_flexcharge_writes_them():
    stamp = dt.datetime(2023, 3, 20, 17, 16, 40, 898703, tzinfo=dt.UTC)

    body = webhook_body("order.completed", order_id="a", external_order_id="b", timestamp=stamp)

    assert json.loads(body)["TimeStamp"] == "2023-03-20T17:16:40.898703Z"


def test_signing_without_a_configured_key_says_which_setting(settings):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = []

    with pytest.raises(FlexChargeConfigurationError, match="FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS"):
        signed_webhook("order.completed", order_id="fc-1", external_order_id="INV-1")


def test_meta_headers_are_what_django_reads_back():
    _, headers = signed_webhook("order.completed", order_id="fc-1", external_order_id="INV-1")

    read = HttpHeaders(meta_headers(headers))

    assert read["X-Fc-Nonce"] == headers["x-fc-nonce"]
    assert read["x-fc-authorization"] == headers["x-fc-authorization"]


@pytest.mark.django_db
def test_post_webhook_applies_an_event_in_a_host_test(client):
    order = FlexChargeOrder.objects.create(
        order_id="INV-1", order_session_key="fc-1", amount=500, currency="USD", status="pending"
    )

    response = post_webhook(
        client, "order.expired", order_id="fc-1", external_order_id="INV-1", is_resent=True
    )

    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == "expired"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://shop.example.com/flexcharge/webhook/", "shop.example.com"),
        ("https://shop.example.com:443/flexcharge/webhook/", "shop.example.com"),
        ("http://127.0.0.1:8000/flexcharge/webhook/", "127.0.0.1:8000"),
        ("http://user:secret@localhost:80/hook", "localhost"),
        ("http://[::1]:8000/hook", "[::1]:8000"),
    ],
)
def test_webhook_host_is_what_the_site_sees_in_host(url, host):
    assert webhook_host(url) == host


# --- FakeFlexChargeClient ---


def test_the_fake_is_installed_like_the_real_client():
    fake = FakeFlexChargeClient()

    set_client(fake)

    assert get_client() is fake
    assert isinstance(fake, FlexChargeClient)


def test_the_fake_answers_like_flexcharge_by_default():
    fake = FakeFlexChargeClient()

    evaluated = fake.evaluate({"idempotencyKey": "k-1", "orderId": "INV-1"})
    again = fake.evaluate({"idempotencyKey": "k-1", "orderId": "INV-1"})
    vaulted = fake.tokenize(
        {"payment_method": {"credit_card": {"number": "4000002760003184", "month": "09"}}}
    )

    assert evaluated["status"] == "SUBMITTED"
    assert evaluated["orderSessionKey"] == evaluated["orderId"] == again["orderSessionKey"]
    assert vaulted["transaction"]["payment_method"]["last_four_digits"] == "3184"
    assert fake.refund("fc-1", 500, "USD")["status"] == "SUCCESS"
    assert fake.cancel("fc-1") == {}
    assert fake.external_cancel("INV-1") == {}
    assert fake.get_order("fc-1")["statusName"] == "PROCESSING"
    assert fake.outcome("fc-1")["status"] == "SUBMITTED"
    assert fake.list_orders(pageSize=5)["pageSize"] == 5
    assert fake.transmit({})["success"] is True
    assert fake.authenticate()["accessToken"] == fake.get_token()


def test_the_fake_records_every_call_by_parameter_name():
    fake = FakeFlexChargeClient()

    fake.refund("fc-1", 500, "USD", message="duplicate charge")
    fake.cancel("fc-2", idempotency_key="k-9")

    assert [call.method for call in fake.calls] == ["refund", "cancel"]
    refund = fake.calls_to("refund")[0]
    assert (refund["order_session_key"], refund["amount"], refund["currency"]) == (
        "fc-1",
        500,
        "USD",
    )
    assert refund["message"] == "duplicate charge"
    assert fake.calls_to("cancel")[0]["idempotency_key"] == "k-9"


def test_queued_answers_come_in_order_then_the_default():
    fake = FakeFlexChargeClient()
    fake.queue("evaluate", {"status": "APPROVED"}, {"status": "DECLINED"})

    answers = [fake.evaluate({})["status"] for _ in range(3)]

    assert answers == ["APPROVED", "DECLINED", "SUBMITTED"]


def test_queued_exceptions_are_raised():
    fake = FakeFlexChargeClient()
    fake.queue("refund", FlexChargeTimeout("no answer"), FlexChargeTimeout)

    with pytest.raises(FlexChargeTimeout, match="no answer"):
        fake.refund("fc-1", 500, "USD")
    with pytest.raises(FlexChargeTimeout):
        fake.refund("fc-1", 500, "USD")
    assert fake.refund("fc-1", 500, "USD")["status"] == "SUCCESS"


def test_a_callable_answer_sees_the_call_and_set_answer_lasts():
    fake = FakeFlexChargeClient()
    fake.set_answer("get_order", lambda call: {"id": call["order_session_key"], "status": 7})

    assert fake.get_order("fc-1") == {"id": "fc-1", "status": 7}
    assert fake.get_order("fc-2") == {"id": "fc-2", "status": 7}


def test_answers_are_copies_the_caller_cannot_change():
    fake = FakeFlexChargeClient()
    answer = {"status": "APPROVED", "errors": []}
    fake.set_answer("evaluate", answer)

    fake.evaluate({})["errors"].append("changed")

    assert fake.evaluate({})["errors"] == []


def test_scripting_a_method_the_client_does_not_have_is_an_error():
    with pytest.raises(ValueError, match="no endpoint method 'evalute'"):
        FakeFlexChargeClient().queue("evalute", {})


def test_the_fake_never_reaches_the_network():
    with pytest.raises(AssertionError, match="no answer for GET /orders/fc-1/transactions"):
        FakeFlexChargeClient()._request("GET", "orders/fc-1/transactions")


def test_reset_forgets_calls_and_scripts():
    fake = FakeFlexChargeClient()
    fake.queue("evaluate", {"status": "APPROVED"})
    fake.cancel("fc-1")

    fake.reset()

    assert fake.calls == []
    assert fake.evaluate({})["status"] == "SUBMITTED"


# --- flexcharge_send_test_webhook ---

URL = "https://shop.example.com/flexcharge/webhook/"


def sent_request(rsps: responses.RequestsMock):
    [call] = rsps.calls
    return call.request


def test_the_command_sends_a_delivery_signed_for_the_urls_host(capsys):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, URL, json={"status": "applied"})
        call_command(
            "flexcharge_send_test_webhook",
            URL,
            "--order-id",
            "fc-1",
            "--external-order-id",
            "INV-1",
            "--confirmation-id",
            "22ACD1D9",
        )
        request = sent_request(rsps)

    assert signing.verify(request.body, request.headers, "shop.example.com", [OFFICIAL["key"]])
    assert request.headers["Content-Type"].startswith("text/plain")
    payload = json.loads(request.body)
    assert (payload["Event"], payload["ConfirmationId"], payload["IsTestMode"]) == (
        "order.completed",
        "22ACD1D9",
        True,
    )
    out = capsys.readouterr().out
    assert "200" in out
    assert '{"status": "applied"}' in out


def test_the_command_needs_nothing_but_the_url(capsys):
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, URL, json={"status": "ignored"})
        call_command("flexcharge_send_test_webhook", URL)
        request = sent_request(rsps)

    assert signing.verify(request.body, request.headers, "shop.example.com", [OFFICIAL["key"]])
    payload = json.loads(request.body)
    assert payload["Event"] == "order.completed"
    assert payload["OrderId"]
    assert payload["ExternalOrderId"].startswith("test-")


@pytest.mark.django_db(transaction=True)
def test_the_command_without_ids_is_stored_as_ignored_by_a_live_site(live_server):
    call_command("flexcharge_send_test_webhook", live_server.url + "/flexcharge/webhook/")
    [event] = WebhookEvent.objects.all()
    assert (event.status, event.event) == ("ignored", "order.completed")


def test_the_command_signs_for_host_and_key_when_given():
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, "http://127.0.0.1:8000/flexcharge/webhook/", json={})
        call_command(
            "flexcharge_send_test_webhook",
            "http://127.0.0.1:8000/flexcharge/webhook/",
            "--event",
            "order.refunded",
            "--order-id",
            "fc-1",
            "--external-order-id",
            "INV-1",
            "--key",
            OTHER_KEY,
            "--host",
            "billing.example.com",
            "--event-data",
            '{"TotalRefundedAmount": 5}',
            "--resent",
            "--no-test-mode",
        )
        request = sent_request(rsps)

    assert signing.verify(request.body, request.headers, "billing.example.com", [OTHER_KEY])
    payload = json.loads(request.body)
    assert payload["EventData"] == {"TotalRefundedAmount": 5}
    assert (payload["IsResent"], payload["IsTestMode"]) == (True, False)


def test_the_command_fails_when_the_site_refuses():
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, URL, status=401, json={"status": "refused"})
        with pytest.raises(CommandError, match="answered 401"):
            call_command(
                "flexcharge_send_test_webhook",
                URL,
                "--order-id",
                "fc-1",
                "--external-order-id",
                "INV-1",
            )


def test_the_command_reports_an_unreachable_site():
    # Nothing registered: responses refuses the connection like a closed port.
    with responses.RequestsMock(), pytest.raises(CommandError, match="could not reach"):
        call_command(
            "flexcharge_send_test_webhook",
            URL,
            "--order-id",
            "fc-1",
            "--external-order-id",
            "INV-1",
        )


def test_the_command_refuses_event_data_that_is_not_json():
    with pytest.raises(CommandError, match="--event-data"):
        call_command(
            "flexcharge_send_test_webhook",
            URL,
            "--order-id",
            "fc-1",
            "--external-order-id",
            "INV-1",
            "--event-data",
            "{nope",
        )


@pytest.mark.django_db(transaction=True)
def test_the_command_delivers_to_a_running_site(live_server):
    order = FlexChargeOrder.objects.create(
        order_id="INV-7", order_session_key="fc-7", amount=500, currency="USD", status="pending"
    )

    call_command(
        "flexcharge_send_test_webhook",
        live_server.url + "/flexcharge/webhook/",
        "--order-id",
        "fc-7",
        "--external-order-id",
        "INV-7",
    )

    order.refresh_from_db()
    assert order.status == "approved"
