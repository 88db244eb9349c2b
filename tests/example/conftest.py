"""Fixtures of the example project's tests: plans, customers and an in-memory FlexCharge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_flexcharge.client import set_client
from django_flexcharge.testing import FakeFlexChargeClient


def pytest_ignore_collect(collection_path: Any, config: Any) -> bool | None:
    """Leave these tests out of a run under the package's own settings.

    They need the ``shop`` app, which only ``tests.example_settings`` installs:
    ``pytest --ds=tests.example_settings tests/example``. A plain ``pytest``
    (``tests.settings``) then runs the package's tests without failing to
    import ``shop`` here.
    """
    from django.conf import settings

    if collection_path.name.startswith("test_") and "shop" not in settings.INSTALLED_APPS:
        return True
    return None


BILLING = {
    "first_name": "Jane",
    "last_name": "Doe",
    "address_line1": "123 Main St.",
    "address_line2": "",
    "city": "San Francisco",
    "state": "CA",
    "zipcode": "94111",
    "country_code": "US",
    "phone": "+15551234567",
}


@pytest.fixture(autouse=True)
def flexcharge() -> Iterator[FakeFlexChargeClient]:
    """Every FlexCharge call of the app goes to this fake: recorded, answered, no network."""
    fake = FakeFlexChargeClient()
    set_client(fake)
    yield fake
    set_client(None)


@pytest.fixture
def plan(db: Any) -> Any:
    from shop.models import Plan

    return Plan.objects.create(slug="basic", name="Basic", price=999, currency="USD")


@pytest.fixture
def customer(db: Any) -> Any:
    return get_user_model().objects.create_user(
        "jane", email="jane@example.com", password="pw", first_name="Jane", last_name="Doe"
    )


@pytest.fixture
def customer_client(client: Any, customer: Any) -> Any:
    client.force_login(customer)
    return client


def checkout_data(number: str = "4111111111111111", **overrides: Any) -> dict[str, Any]:
    data = {
        **BILLING,
        "card_number": number,
        "exp_month": "9",
        "exp_year": str(timezone.now().year + 2),
        "cvv": "737",
        "flexcharge_sense_key": "sense-key-from-the-browser",
    }
    data.update(overrides)
    return data


def stored_subscription(customer: Any, plan: Any, number: str = "4111111111111111") -> Any:
    """What a checkout leaves behind, written directly (no vault thread, so the ``db`` fixture
    is enough): billing details, a vaulted card, the processor's stored-card id."""
    from shop.models import BillingDetails, Subscription

    from django_flexcharge.models import VaultedCard

    BillingDetails.objects.update_or_create(user=customer, defaults=BILLING)
    card = VaultedCard.objects.create(
        token=f"tok-{customer.pk}-{number[-4:]}-{VaultedCard.objects.count()}",
        last4=number[-4:],
        bin=number[:6],
        brand="VISA",
        exp_month=9,
        exp_year=timezone.now().year + 2,
        holder_name="Jane Doe",
        email=customer.email,
        customer=customer,
    )
    return Subscription.objects.create(
        user=customer,
        plan=plan,
        current_period_end=timezone.now(),
        card=card,
        processor_payment_method=f"pm_{number[:6]}_{number[-4:]}_0000",
    )
