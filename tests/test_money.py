"""money: exact conversions at the API edge, by each currency's exponent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_flexcharge.money import (
    ISO_4217,
    exponent,
    format_amount,
    is_currency,
    to_major,
    to_minor,
)


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("USD", 2), ("eur", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3), ("CLF", 4)],
)
def test_exponent_per_currency(currency, digits):
    assert exponent(currency) == digits


def test_an_unknown_currency_is_refused():
    assert not is_currency("XYZ")
    assert is_currency("USD")
    with pytest.raises(ValueError, match="XYZ"):
        exponent("XYZ")


@pytest.mark.parametrize(
    ("amount", "currency", "major"),
    [
        (1999, "USD", Decimal("19.99")),
        (1200, "USD", Decimal("12.00")),
        (1, "USD", Decimal("0.01")),
        (500, "JPY", Decimal("500")),
        (1234, "KWD", Decimal("1.234")),
    ],
)
def test_to_major_is_exact(amount, currency, major):
    assert to_major(amount, currency) == major
    assert str(to_major(amount, currency)) == str(major)


@pytest.mark.parametrize("amount", [19.99, "1999", True, None])
def test_to_major_takes_integer_minor_units_only(amount):
    with pytest.raises(TypeError):
        to_major(amount, "USD")  # type: ignore[arg-type]


def test_to_minor_refuses_more_precision_than_the_currency_has():
    assert to_minor("19.99", "USD") == 1999
    assert to_minor(Decimal("500"), "JPY") == 500
    with pytest.raises(ValueError, match="decimal places"):
        to_minor("19.999", "USD")
    with pytest.raises(ValueError, match="decimal places"):
        to_minor("1.5", "JPY")


def test_format_amount_for_messages():
    assert format_amount(1999, "usd") == "19.99 USD"
    assert format_amount(500, "JPY") == "500 JPY"
    assert format_amount(1234, "KWD") == "1.234 KWD"


@given(
    amount=st.integers(min_value=0, max_value=10**15), currency=st.sampled_from(sorted(ISO_4217))
)
def test_minor_to_major_and_back_is_the_identity(amount, currency):
    assert to_minor(to_major(amount, currency), currency) == amount
