"""Services, receivers and the client with an account (responses-mocked HTTP)."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from django.core.cache import cache
from django.test import override_settings

from django_flexcharge import signals
from django_flexcharge.accounts import clear_account_cache
from django_flexcharge.client import get_client
from django_flexcharge.exceptions import FlexChargeConfigurationError
from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.services import (
    evaluate_declined_payment,
    is_under_rescue,
    transmit_approved_payment,
    vault_card,
)
from tests.conftest import API, make_payment, token_body
from tests.factories import BRAND_B, evaluate_answer, make_vaulted

pytestmark = pytest.mark.django_db

B_API = "https://b.example.test/v1/"


@pytest.fixture
def apis():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, API + "oauth2/token", json=token_body("tok-a"))
        rsps.add(responses.POST, B_API + "oauth2/token", json=token_body("tok-b"))
        for base in (API, B_API):
            rsps.add(responses.POST, base + "evaluate", json=evaluate_answer())
            rsps.add(responses.POST, base + "transmit", json={"success": True})
        yield rsps


def calls(rsps, url: str) -> list[Any]:
    return [c for c in rsps.calls if c.request.url.split("?")[0] == url]


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": {**BRAND_B, "API_URL": B_API}})
def test_tokens_are_fetched_and_cached_per_account(apis, django_capture_on_commit_callbacks):
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            transmit_approved_payment(make_payment(f"INV-{n}"))
            transmit_approved_payment(make_payment(f"INV-{n}"), account="brand-b")
    assert len(calls(apis, API + "oauth2/token")) == 1
    assert len(calls(apis, B_API + "oauth2/token")) == 1
    bearer = {c.request.headers["Authorization"] for c in calls(apis, B_API + "transmit")}
    assert bearer == {"Bearer tok-b"}
    keys = [key for key in cache._cache if "token" in key]  # locmem: the cache's own dict
    assert any(":brand-b:" in key for key in keys)
    assert any(":default:" in key for key in keys)
    # One client per account, the same one every time.
    assert get_client("brand-b") is get_client("brand-b") is not get_client()
    assert Transmission.objects.filter(account="brand-b", status="sent").count() == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda: transmit_approved_payment(make_payment(), account="nope"),
        lambda: is_under_rescue("INV-1", account="nope") or get_client("nope"),
        lambda: vault_card(None, account="nope"),  # the alias is checked first
    ],
)
def test_an_unknown_account_is_named_before_anything_is_stored(call):
    with pytest.raises(FlexChargeConfigurationError, match="'nope'"):
        call()
    assert not Transmission.objects.exists()


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": {**BRAND_B, "API_URL": B_API}})
def test_the_host_signals_carry_the_account(
    apis, payer, billing, django_capture_on_commit_callbacks
):
    card = make_vaulted(account="brand-b")
    with django_capture_on_commit_callbacks(execute=True):
        signals.payment_declined.send(
            sender=None,
            payment=make_payment("INV-S"),
            card=card,
            payer=payer,
            billing=billing,
        )
        signals.payment_approved.send(sender=None, payment=make_payment("INV-T"), account="brand-b")
    assert FlexChargeOrder.objects.get().account == "brand-b"  # from the card
    assert Transmission.objects.get().account == "brand-b"
    assert len(calls(apis, B_API + "evaluate")) == 1
    assert calls(apis, API + "evaluate") == []
    assert calls(apis, B_API + "evaluate")[0].request.body.count(BRAND_B["MID"].encode()) == 1


def load(alias: str) -> dict[str, Any] | None:
    return {**BRAND_B, "API_URL": B_API} if alias == "merchant-7" else None


def test_an_account_from_the_loader_works_end_to_end(
    apis, payer, billing, django_capture_on_commit_callbacks
):
    with (
        override_settings(FLEXCHARGE_ACCOUNT_LOADER="tests.test_accounts_services.load"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        card = make_vaulted(account="merchant-7")
        order = evaluate_declined_payment(
            make_payment("INV-L"), card=card, payer=payer, billing=billing
        )
    clear_account_cache()
    order.refresh_from_db()
    assert (order.account, order.status) == ("merchant-7", FlexChargeOrder.Status.PENDING)
    assert len(calls(apis, B_API + "evaluate")) == 1
