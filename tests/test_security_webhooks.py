"""Forged webhooks, as an attacker reaches the view (issue: security items 1 and 2).

Each forgery is also shown to be the only thing refused: the same delivery
signed with the site's real key is applied.
"""

from __future__ import annotations

import pytest
from django.test import Client

from django_flexcharge import signing
from django_flexcharge.conf import conf
from django_flexcharge.exceptions import FlexChargeConfigurationError
from django_flexcharge.models import FlexChargeOrder, WebhookEvent
from django_flexcharge.testing import meta_headers, signed_webhook
from flexcharge_emulator.config import DEFAULT_SUBSCRIBER_KEY
from tests.factories import webhook_order as make_order
from tests.signing_vectors import OFFICIAL

URL = "/flexcharge/webhook/"
REAL_KEY = OFFICIAL["key"]
Status = FlexChargeOrder.Status

pytestmark = pytest.mark.django_db


def deliver(client: Client, key: str, nonce: str | None = None):
    body, headers = signed_webhook(
        "order.completed",
        order_id="fc-0001",
        external_order_id="INV-1001",
        key=key,
        nonce=nonce,
    )
    return client.post(URL, data=body, content_type="text/plain", **meta_headers(headers))


def test_a_trailing_comma_after_rotation_never_lets_an_empty_key_sign(settings, client):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = f"{REAL_KEY}, "
    order = make_order()

    forged = deliver(client, key="")  # HMAC with an empty key: what " " decoded to

    assert forged.status_code == 401
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert not WebhookEvent.objects.exists()
    assert deliver(client, key=REAL_KEY).status_code == 200
    order.refresh_from_db()
    assert order.status == Status.APPROVED


@pytest.mark.parametrize(
    "weak",
    [" ", "", "AA==", "c2hvcnQ=", "MDEyMzQ1Njc4OWFiY2Rl"],  # blank, empty, 1, 5, 15 bytes
)
def test_a_blank_or_short_key_in_the_list_never_verifies(settings, client, weak):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [REAL_KEY, weak]
    order = make_order()

    assert deliver(client, key=weak.strip()).status_code == 401

    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert conf.WEBHOOK_SUBSCRIBER_KEYS == [REAL_KEY]


def test_verify_refuses_a_short_key_even_when_a_caller_passes_one():
    body = b"{}"
    headers = signing.sign_headers("", "testserver", body)
    assert not signing.verify(body, headers, "testserver", ["", " ", "c2hvcnQ="])
    sixteen = "MDEyMzQ1Njc4OWFiY2RlZg=="  # exactly 16 bytes: the least that is used
    headers = signing.sign_headers(sixteen, "testserver", body)
    assert signing.verify(body, headers, "testserver", [sixteen])


def test_the_emulators_public_key_on_a_real_site_is_refused_at_run_time(settings, client):
    settings.FLEXCHARGE_API_URL = "https://api.flex-charge.com/v1/"
    settings.FLEXCHARGE_TEST_MODE = False
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [DEFAULT_SUBSCRIBER_KEY, REAL_KEY]
    order = make_order()

    forged = deliver(client, key=DEFAULT_SUBSCRIBER_KEY)

    # Our misconfiguration: a 500 (FlexCharge retries), nothing stored or applied.
    assert forged.status_code == 500
    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert not WebhookEvent.objects.exists()
    with pytest.raises(FlexChargeConfigurationError) as caught:
        _ = conf.WEBHOOK_SUBSCRIBER_KEYS
    assert caught.value.setting == "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS"
    assert DEFAULT_SUBSCRIBER_KEY not in str(caught.value)


def test_the_emulators_public_key_is_fine_when_the_site_talks_to_the_emulator(settings, client):
    settings.FLEXCHARGE_API_URL = "http://127.0.0.1:8765/v1/"
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = [DEFAULT_SUBSCRIBER_KEY]
    order = make_order()

    assert deliver(client, key=DEFAULT_SUBSCRIBER_KEY).status_code == 200

    order.refresh_from_db()
    assert order.status == Status.APPROVED


@pytest.mark.parametrize("value", [None, 42, {"key": REAL_KEY}])
def test_a_keys_setting_of_the_wrong_type_refuses_every_delivery_without_crashing(
    settings, client, value
):
    settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS = value
    order = make_order()

    assert deliver(client, key=REAL_KEY).status_code == 500  # not set: FlexCharge retries

    order.refresh_from_db()
    assert order.status == Status.PENDING
