"""The fake processor's card table: deterministic answers by card number."""

from __future__ import annotations

import re

import pytest
from shop.processor import APPROVED, TEST_CARDS, processor

TABLE = [
    # number, checkout code, renewal code
    ("4111111111111111", "00", "00"),
    ("5555555555554444", "00", "00"),
    ("4000002760003184", "00", "51"),
    ("4000300011112220", "00", "51"),
    ("4242424242424242", "00", "00"),  # not in the table: approved
]


@pytest.mark.parametrize(("number", "checkout_code", "renewal_code"), TABLE)
def test_checkout_then_renewal_answers_follow_the_table(number, checkout_code, renewal_code):
    first = processor.authorize(
        order_id="INV-1", amount=999, currency="USD", number=number, cvv="123"
    )
    assert first.approved
    assert first.response_code == checkout_code
    renewal = processor.charge_stored(
        order_id="INV-2", amount=999, currency="USD", payment_method=first.payment_method
    )
    assert renewal.response_code == renewal_code
    assert renewal.approved is (renewal_code == "00")
    if not renewal.approved:
        assert renewal.response_description == "Insufficient funds"
        assert renewal.cvv_result_code == "NA"  # no CVV on a merchant-initiated charge


def test_checkout_decline_card_is_declined_and_not_stored():
    result = processor.authorize(
        order_id="INV-1", amount=999, currency="USD", number="4000000000000002", cvv="123"
    )
    assert not result.approved
    assert (result.response_code, result.response_description) == ("05", "Do not honor")
    assert result.payment_method == ""
    assert result.transaction_id.startswith("fp_")


@pytest.mark.parametrize(
    "number", sorted(n for n, card in TEST_CARDS.items() if card.checkout == APPROVED)
)
def test_stored_card_id_never_holds_the_card_number(number):
    result = processor.authorize(
        order_id="INV-1", amount=999, currency="USD", number=number, cvv="123"
    )
    # Only the PCI-permitted truncation: first six and last four digits.
    match = re.fullmatch(r"pm_(\d{6})_(\d{4})_[0-9a-f]+", result.payment_method)
    assert match
    assert match.groups() == (number[:6], number[-4:])


def test_answers_do_not_depend_on_amount_or_spacing():
    spaced = processor.authorize(
        order_id="INV-1", amount=1013, currency="USD", number="4000 0027 6000 3184", cvv=""
    )
    assert spaced.approved
    renewal = processor.charge_stored(
        order_id="INV-2", amount=1066, currency="USD", payment_method=spaced.payment_method
    )
    assert renewal.response_code == "51"


def test_a_foreign_stored_card_id_is_refused():
    with pytest.raises(ValueError, match="fakepay"):
        processor.charge_stored(order_id="INV-2", amount=1, currency="USD", payment_method="x")
