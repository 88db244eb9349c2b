"""Two FlexCharge accounts against the emulator over real HTTP, webhooks to a live site.

Each merchant has its own app key, MID, site id, tokenization and subscriber
keys: a call that reached the wrong account would be refused there, and each
merchant's own records show which calls it got. Every test runs twice: two
emulators (one URL per account), and one emulator serving both merchants at one
URL (as FlexCharge does, telling them apart by their credentials).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from django.conf import settings as django_settings
from django.test import override_settings

from django_flexcharge.exceptions import FlexChargeValidationError
from django_flexcharge.models import FlexChargeOrder, Refund, Transmission, WebhookEvent
from django_flexcharge.services import (
    cancel_order,
    evaluate_declined_payment,
    is_under_rescue,
    refund_order,
    transmit_approved_payment,
    vault_card,
)
from django_flexcharge.testing import signed_webhook, webhook_host
from flexcharge_emulator import Emulator, EmulatorConfig, MultiEmulator
from tests.conftest import make_payment
from tests.factories import B_KEY, BRAND_B, site_emulator_config

# A live server and emulator threads over real HTTP: the end-to-end runs (SQLite and
# PostgreSQL) carry these; the fast version matrix leaves them out with the other e2e tests.
# On SQLite the test database is a file (tests/settings.py), so the live server's
# threads have connections of their own, as on PostgreSQL.
pytestmark = pytest.mark.e2e

Status = FlexChargeOrder.Status


BRAND_B_ONLY = {"brand-b": BRAND_B}


@dataclass
class Pair:
    a: Emulator  # the default account (flat settings)
    b: Emulator  # "brand-b"
    site: str


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(params=["two emulators", "one emulator, two merchants"])
def pair(request, live_server) -> Iterator[Pair]:
    common = {"rescue_delay": None, "expire_delay": None, "pickup_delay": 0.0}
    config_a = site_emulator_config(
        webhook_url=f"{live_server.url}/flexcharge/webhook/",
        **common,
    )
    config_b = EmulatorConfig(
        app_key=BRAND_B["APP_KEY"],
        app_secret=BRAND_B["APP_SECRET"],
        mid=BRAND_B["MID"],
        site_id=BRAND_B["SITE_ID"],
        tokenization_key=BRAND_B["TOKENIZATION_KEY"],
        subscriber_key=B_KEY,
        webhook_url=f"{live_server.url}/flexcharge/webhook/brand-b/",
        **common,
    )
    if request.param == "two emulators":
        with Emulator(config_a) as a, Emulator(config_b) as b:
            accounts = {"brand-b": {**BRAND_B, "API_URL": b.base_url}}
            with override_settings(FLEXCHARGE_API_URL=a.base_url, FLEXCHARGE_ACCOUNTS=accounts):
                yield Pair(a, b, live_server.url)
        return
    with MultiEmulator([config_a, config_b]) as multi:
        a, b = multi.merchant(config_a.mid), multi.merchant(config_b.mid)
        # One API URL for both accounts: the flat setting, which brand-b inherits.
        with override_settings(FLEXCHARGE_API_URL=multi.base_url, FLEXCHARGE_ACCOUNTS=BRAND_B_ONLY):
            yield Pair(a, b, live_server.url)


@pytest.mark.django_db(transaction=True)
def test_each_call_reaches_its_own_account_and_no_other(pair, card, payer, billing):
    a, b = pair.a, pair.b
    # Checkout: each account vaults with its own MID and tokenization key.
    card_a = vault_card(card, email=payer.email)
    card_b = vault_card(card, email=payer.email, account="brand-b")
    assert (card_a.account, card_b.account) == ("default", "brand-b")
    assert set(a.state.tokens) == {card_a.token}
    assert set(b.state.tokens) == {card_b.token}

    # Approval copy under B only.
    row = transmit_approved_payment(make_payment("INV-T"), card=card_b, account="brand-b")
    row.refresh_from_db()
    assert (row.account, row.status) == ("brand-b", Transmission.Status.SENT), row.last_error
    assert [t["mid"] for t in b.state.transmits] == [BRAND_B["MID"]]
    assert a.state.transmits == []

    # The same host order id declined under both accounts: two orders, one per account.
    order_a = evaluate_declined_payment(
        make_payment("INV-1"), card=card_a, payer=payer, billing=billing
    )
    order_b = evaluate_declined_payment(
        make_payment("INV-1"), card=card_b, payer=payer, billing=billing
    )
    order_a.refresh_from_db()
    order_b.refresh_from_db()
    assert order_b.account == "brand-b"  # taken from the card
    assert (order_a.status, order_b.status) == (Status.PENDING, Status.PENDING)
    assert [r["siteId"] for r in a.state.evaluate_requests] == [django_settings.FLEXCHARGE_SITE_ID]
    assert [r["siteId"] for r in b.state.evaluate_requests] == [BRAND_B["SITE_ID"]]
    assert is_under_rescue("INV-1")
    assert is_under_rescue("INV-1", account="brand-b")

    # Rescue by webhook: B's signed order.completed to B's URL approves B's order only.
    b.approve(order_b.order_session_key)
    assert b.flush_webhooks()
    assert _wait(lambda: FlexChargeOrder.objects.get(pk=order_b.pk).status == Status.APPROVED)
    order_a.refresh_from_db()
    assert order_a.status == Status.PENDING
    event = WebhookEvent.objects.get(event="order.completed")
    assert (event.account, event.status, event.order_id) == ("brand-b", "applied", order_b.pk)
    assert [d["status"] for d in b.state.deliveries] == [200]

    # Refund under B reaches B; cancel under A reaches A.
    order_b.refresh_from_db()
    refund = refund_order(order_b, 500, reason="goodwill")
    assert (refund.account, refund.outcome) == ("brand-b", Refund.Outcome.SUCCEEDED)
    # Its order.refunded webhook goes to B's URL; let it land before the next write
    # (SQLite takes one writer at a time, and the live server is another thread).
    assert b.flush_webhooks()
    assert [(r["order_id"], r["amount"], r["status"]) for r in b.state.refunds] == [
        (order_b.order_session_key, 500, "SUCCESS")
    ]
    assert a.state.refunds == []
    assert cancel_order(order_a).status == Status.CANCELLED
    assert a.flush_webhooks()
    assert len(a.state.cancels) == 1
    assert b.state.cancels == []
    order_b.refresh_from_db()
    assert order_b.status == Status.PARTIALLY_REFUNDED

    # One token per account, fetched once each, however many calls were made.
    assert (a.state.token_requests, b.state.token_requests) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_signed_for_one_account_is_refused_at_the_other(pair, card, payer, billing):
    card_a = vault_card(card)
    order_a = evaluate_declined_payment(
        make_payment("INV-X"), card=card_a, payer=payer, billing=billing
    )
    order_a.refresh_from_db()
    url_a = f"{pair.site}/flexcharge/webhook/"
    url_b = f"{pair.site}/flexcharge/webhook/brand-b/"
    ids = {"order_id": order_a.order_session_key, "external_order_id": "INV-X"}
    # Signed with A's key, sent to B's URL: B's keys do not verify it.
    body, headers = signed_webhook("order.completed", host=webhook_host(url_b), **ids)
    answer = requests.post(url_b, data=body, headers=headers, timeout=5)
    assert answer.status_code == 401
    # Signed with B's key, sent to A's URL.
    body, headers = signed_webhook(
        "order.completed", host=webhook_host(url_a), account="brand-b", **ids
    )
    answer = requests.post(url_a, data=body, headers=headers, timeout=5)
    assert answer.status_code == 401
    # Correctly signed for B at B's URL: stored for B, but A's order is not B's to change.
    body, headers = signed_webhook(
        "order.completed", host=webhook_host(url_b), account="brand-b", **ids
    )
    answer = requests.post(url_b, data=body, headers=headers, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    order_a.refresh_from_db()
    assert order_a.status == Status.PENDING
    assert WebhookEvent.objects.get().account == "brand-b"
    # An alias nobody declared has no URL.
    unknown = f"{pair.site}/flexcharge/webhook/brand-z/"
    assert requests.post(unknown, data=body, headers=headers, timeout=5).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_card_vaulted_under_one_account_is_refused_under_another(pair, card, payer, billing):
    card_a = vault_card(card)
    with pytest.raises(FlexChargeValidationError, match="vaulted under FlexCharge account"):
        evaluate_declined_payment(
            make_payment("INV-Y"), card=card_a, payer=payer, billing=billing, account="brand-b"
        )
    with pytest.raises(FlexChargeValidationError, match="card"):
        evaluate_declined_payment(
            make_payment("INV-Y"),
            card=card_a.token,
            payer=payer,
            billing=billing,
            account="brand-b",
        )
    with pytest.raises(FlexChargeValidationError, match="vaulted under FlexCharge account"):
        transmit_approved_payment(make_payment("INV-Y"), card=card_a, account="brand-b")
    assert not FlexChargeOrder.objects.exists()
    assert not Transmission.objects.exists()
    assert pair.b.state.evaluate_requests == []
    assert pair.b.state.transmits == []
