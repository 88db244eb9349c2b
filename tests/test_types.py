"""types: every input validates itself, names the bad field, and a Card never shows its PAN."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest
from django.utils import timezone

from django_flexcharge.exceptions import FlexChargeValidationError
from django_flexcharge.types import (
    BillingAddress,
    Card,
    Payer,
    Subscription,
    card_brand,
    luhn_ok,
)
from tests.conftest import make_payment


def refused(field: str):
    """pytest.raises for a FlexChargeValidationError naming ``field``."""
    return pytest.raises(FlexChargeValidationError, match="^" + re.escape(field) + ": ")


# --- Card ---


def test_a_card_normalises_spaces_and_dashes(card):
    spaced = replace(card, number="4000 0027-6000 3184")
    assert spaced.number == "4000002760003184"
    assert (spaced.last4, spaced.bin, spaced.brand) == ("3184", "400000", "VISA")
    assert spaced.holder_name == "Jane Doe"


def test_a_card_never_shows_its_number_or_cvv(card):
    for text in (repr(card), str(card), f"{card}", repr([card])):
        assert card.number not in text
        assert "999" not in text
    assert repr(card) == f"Card(****3184, 09/{card.exp_year})"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"number": "4000002760003185"}, "card.number"),  # Luhn
        ({"number": "12345"}, "card.number"),
        ({"number": "4000abcd60003184"}, "card.number"),
        ({"number": None}, "card.number"),
        ({"cvv": "12"}, "card.cvv"),
        ({"cvv": 123}, "card.cvv"),
        ({"exp_month": 13}, "card.exp_month"),
        ({"exp_month": "09"}, "card.exp_month"),
        ({"exp_year": 30}, "card.exp_year"),
        ({"exp_year": True}, "card.exp_year"),
        ({"exp_year": 2001}, "card.exp_year"),
        ({"first_name": "  "}, "card.first_name"),
        ({"last_name": "x" * 256}, "card.last_name"),
    ],
)
def test_a_bad_card_is_refused_naming_the_field(card, change, field):
    with refused(field):
        replace(card, **change)


def test_an_empty_cvv_is_allowed(card):
    assert replace(card, cvv="").cvv == ""


def test_a_card_expiring_this_month_is_still_valid(card):
    today = timezone.now().date()
    assert replace(card, exp_month=today.month, exp_year=today.year).exp_year == today.year


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4111111111111111", "VISA"),
        ("5100260023585100", "MASTERCARD"),
        ("2221000000000009", "MASTERCARD"),
        ("378282246310005", "AMEX"),
        ("6011111111111117", "DISCOVER"),
        ("3530111333300000", "JCB"),
        ("36227206271667", "DINERS"),
        ("9999999999999995", ""),
    ],
)
def test_card_brand_from_the_bin(number, brand):
    assert luhn_ok(number)
    assert card_brand(number) == brand


# --- Payment ---


def test_a_payment_is_customer_initiated_with_an_unknown_card_type_unless_told():
    assert (make_payment().is_mit, make_payment().card_type) == (False, "")
    assert make_payment(is_mit=True, card_type=" debit ").card_type == "DEBIT"


def test_a_payment_defaults_its_time_to_now_and_upper_cases_the_currency():
    payment = make_payment(currency="usd", occurred_at=None)
    assert payment.currency == "USD"
    assert abs(payment.when - timezone.now()) < dt.timedelta(seconds=5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"order_id": ""}, "payment.order_id"),
        ({"order_id": "x" * 101}, "payment.order_id"),
        ({"transaction_id": None}, "payment.transaction_id"),
        ({"amount": 0}, "payment.amount"),
        ({"amount": -1}, "payment.amount"),
        ({"amount": 19.99}, "payment.amount"),
        ({"amount": True}, "payment.amount"),
        ({"currency": "XYZ"}, "payment.currency"),
        ({"currency": 840}, "payment.currency"),
        ({"response_code": 51}, "payment.response_code"),
        ({"occurred_at": dt.datetime(2024, 1, 1)}, "payment.occurred_at"),  # naive
        ({"occurred_at": "2024-01-01T00:00:00Z"}, "payment.occurred_at"),
        ({"is_mit": "yes"}, "payment.is_mit"),
        ({"is_mit": None}, "payment.is_mit"),
        ({"card_type": 1}, "payment.card_type"),
        ({"card_type": "CREDIT CARD"}, "payment.card_type"),
        ({"card_type": "X" * 17}, "payment.card_type"),
    ],
)
def test_a_bad_payment_is_refused_naming_the_field(change, field):
    with refused(field):
        make_payment(**change)


# --- Payer, BillingAddress, Subscription ---


def test_a_payer_needs_a_valid_email():
    with refused("payer.email"):
        Payer(email="")
    with refused("payer.email"):
        Payer(email="jane@")
    with refused("payer.birthdate"):
        Payer(email="jane@example.com", birthdate="1990-01-01")  # type: ignore[arg-type]
    assert Payer(email=" jane@example.com ").email == "jane@example.com"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"first_name": ""}, "billing.first_name"),
        ({"city": " "}, "billing.city"),
        ({"country_code": "USA"}, "billing.country_code"),
        ({"country_code": None}, "billing.country_code"),
        ({"zipcode": "9411"}, "billing.zipcode"),
        ({"state": ""}, "billing.state"),
    ],
)
def test_a_bad_billing_address_is_refused_naming_the_field(billing, change, field):
    with refused(field):
        replace(billing, **change)


def test_outside_the_us_any_postcode_and_no_state_are_fine():
    address = BillingAddress(
        first_name="Jan",
        last_name="Jansen",
        address_line1="Damrak 1",
        city="Amsterdam",
        zipcode="1012 LG",
        country_code="nl",
    )
    assert address.country_code == "NL"


def test_a_nine_digit_us_zip_is_fine(billing):
    assert replace(billing, zipcode="94111-1234").zipcode == "94111-1234"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "subscription.id"),
        ({"interval": ""}, "subscription.interval"),
        ({"price": 0}, "subscription.price"),
        ({"currency": "usdollar"}, "subscription.currency"),
        ({"payment_number": 0}, "subscription.payment_number"),
        ({"total_payments": "12"}, "subscription.total_payments"),
    ],
)
def test_a_bad_subscription_is_refused_naming_the_field(subscription, change, field):
    with refused(field):
        replace(subscription, **change)


def test_a_subscription_without_counters_is_fine():
    sub = Subscription(id="sub_1", interval="monthly", price=999, currency="eur")
    assert (sub.currency, sub.payment_number, sub.total_payments) == ("EUR", None, None)


def test_inputs_are_immutable(card):
    with pytest.raises(AttributeError):
        card.number = "4111111111111111"  # type: ignore[misc]
    assert isinstance(card, Card)
