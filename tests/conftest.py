"""Shared fixtures: valid inputs, a clean token cache, signal capture, responses mocking."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import responses as responses_lib
from django.core.cache import cache
from django.utils import timezone

from django_flexcharge import signals
from django_flexcharge.client import set_client
from django_flexcharge.types import BillingAddress, Card, Payer, Payment, Subscription

API = "https://api-sandbox.flex-charge.com/v1/"
#: Test PANs (Luhn-valid). The card-data scan looks for exactly these.
TEST_PANS = ("4000002760003184", "4000300011112220", "4111111111111111", "5100260023585100")
TEST_CVVS = ("999", "123", "737")


@pytest.fixture(autouse=True)
def _fresh_client_and_cache() -> Iterator[None]:
    cache.clear()
    set_client(None)
    yield
    cache.clear()
    set_client(None)


@pytest.fixture(autouse=True)
def _fresh_enqueue_failure_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's first enqueue failure is the first of its burst (delivery.EnqueueFailures)."""
    from django_flexcharge import delivery

    monkeypatch.setattr(delivery, "enqueue_failures", delivery.EnqueueFailures())


@pytest.fixture
def api() -> str:
    return API


@pytest.fixture
def mocked() -> Iterator[responses_lib.RequestsMock]:
    """``responses`` with a valid token endpoint already registered."""
    with responses_lib.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(
            responses_lib.POST,
            API + "oauth2/token",
            json=token_body(),
        )
        yield rsps


def bodies(mocked: responses_lib.RequestsMock, path: str) -> list[dict]:
    """JSON bodies of every request the mock saw to ``path`` (e.g. ``"evaluate"``)."""
    url = API + path
    return [
        json.loads(call.request.body)
        for call in mocked.calls
        if call.request.url.split("?")[0] == url and call.request.body
    ]


def calls_to(mocked: responses_lib.RequestsMock, path: str) -> int:
    url = API + path
    return sum(1 for call in mocked.calls if call.request.url.split("?")[0] == url)


def token_body(token: str = "tok-1", ttl: int = 600) -> dict:
    expires_ms = int((timezone.now() + dt.timedelta(seconds=ttl)).timestamp() * 1000)
    return {
        "accessToken": token,
        "refreshToken": "refresh",
        "expires": expires_ms,
        "id": "0ba84f6e-7a9e-43f1-ae6d-c508b466424a",
        "session": None,
        "success": True,
        "result": None,
        "status": None,
        "statusCode": None,
        "errors": [],
        "customProperties": {},
    }


@pytest.fixture
def card() -> Card:
    return Card(
        number="4000002760003184",
        cvv="999",
        exp_month=9,
        exp_year=timezone.now().year + 3,
        first_name="Jane",
        last_name="Doe",
    )


@pytest.fixture
def payer() -> Payer:
    return Payer(email="jane@example.com", id="cust_42", phone="+15551234567")


def make_billing(**extra: str) -> BillingAddress:
    """Jane Doe's billing address, the one every test payment carries."""
    return BillingAddress(
        first_name="Jane",
        last_name="Doe",
        address_line1="123 Main St.",
        city="San Francisco",
        zipcode="94111",
        country_code="US",
        state="CA",
        **extra,
    )


@pytest.fixture
def billing() -> BillingAddress:
    return make_billing(country="United States")


@pytest.fixture
def subscription() -> Subscription:
    return Subscription(
        id="sub_123", interval="monthly", price=1999, currency="USD", payment_number=4
    )


def make_payment(order_id: str = "INV-100045", **overrides: object) -> Payment:
    values: dict = {
        "order_id": order_id,
        "transaction_id": "ch_" + order_id,
        "amount": 1999,
        "currency": "USD",
        "response_code": "51",
        "response_description": "Insufficient funds",
        "processor": "stripe",
        "occurred_at": timezone.now(),
        "avs_result_code": "NA",
        "cvv_result_code": "NA",
        "cavv_result_code": "NA",
    }
    values.update(overrides)
    return Payment(**values)


@pytest.fixture
def payment() -> Payment:
    return make_payment()


class SignalLog:
    """Records every outbound order signal as (signal name, order_id, kwargs)."""

    NAMES = (
        "order_status_changed",
        "order_approved",
        "order_expired",
        "order_declined",
        "order_cancelled",
        "order_refunded",
    )

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self._receivers = []
        for name in self.NAMES:

            def receiver(sender, _name=name, **kwargs):
                self.calls.append((_name, kwargs["order"].order_id, kwargs))

            getattr(signals, name).connect(receiver, weak=False)
            self._receivers.append((name, receiver))

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def disconnect(self) -> None:
        for name, receiver in self._receivers:
            getattr(signals, name).disconnect(receiver)


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    log = SignalLog()
    yield log
    log.disconnect()


@pytest.fixture
def emulator_served(monkeypatch: pytest.MonkeyPatch) -> list:
    """The ``EmulatorConfig`` each ``flexcharge_emulator`` run would serve (nothing is served)."""
    from flexcharge_emulator import __main__ as emulator_cli

    seen: list = []
    monkeypatch.setattr(emulator_cli, "serve", lambda config, announce, **more: seen.append(config))
    return seen
