"""Request bodies: names exactly as flexcharge-api.md §4-§6, and never a PAN where it is not wanted."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import payloads
from django_flexcharge.models import FlexChargeOrder, VaultedCard
from django_flexcharge.types import Payer
from tests.conftest import make_payment

KEY = "6f1c2b4e-8d3a-4f5b-9c7e-2a1d0e9f8b76"


@pytest.fixture
def vaulted() -> VaultedCard:
    # Unsaved is enough: payloads only read attributes.
    return VaultedCard(
        token="tok-123",
        last4="3184",
        bin="400000",
        brand="VISA",
        exp_month=9,
        exp_year=2030,
        holder_name="Jane Doe",
    )


def test_tokenize_body_is_the_snake_case_generation(card):
    body = payloads.tokenize_body(card, email="jane@example.com", sense_key="sk-1")
    assert body == {
        "payment_method": {
            "email": "jane@example.com",
            "sense_key": "sk-1",
            "credit_card": {
                "first_name": "Jane",
                "last_name": "Doe",
                "number": "4000002760003184",
                "verification_value": "999",
                "month": "09",
                "year": str(card.exp_year),
            },
        }
    }


def test_tokenize_body_leaves_out_empty_email_and_sense_key(card):
    method = payloads.tokenize_body(card)["payment_method"]
    assert set(method) == {"credit_card"}


def test_evaluate_body_has_every_documented_field(payment, payer, billing, subscription, vaulted):
    now = timezone.now()
    body = payloads.evaluate_body(
        payment,
        idempotency_key=KEY,
        card=vaulted,
        payer=payer,
        billing=billing,
        subscription=subscription,
        now=now,
    )
    assert body["isDeclined"] is True
    assert body["idempotencyKey"] == KEY
    assert body["mid"] == "d9d0b5fd-9433-44d3-8051-63fee28768e8"
    assert body["siteId"] == "ffae80fd-2b8e-487a-94c3-87503a0c71bb"
    assert body["orderId"] == "INV-100045"
    assert body["isMIT"] is True
    assert body["isRecurring"] is True
    assert set(body["transaction"]) == {
        "id",
        "timestampUtc",
        "timezoneUtcOffset",
        "amount",
        "currency",
        "responseCode",
        "responseDescription",
        "responseStatus",
        "responseCodeSource",
        "processorName",
        "avsResultCode",
        "cvvResultCode",
        "cavvResultCode",
        "cardNotPresent",
    }
    assert body["transaction"]["responseStatus"] == "DECLINED"
    assert body["transaction"]["amount"] == 1999
    assert body["transaction"]["cardNotPresent"] is True
    assert body["payer"] == {"email": "jane@example.com", "id": "cust_42", "phone": "+15551234567"}
    assert body["billingInformation"]["zipcode"] == "94111"
    assert body["billingInformation"]["countryCode"] == "US"
    assert body["paymentMethod"] == {
        "cardNumber": "tok-123",
        "token": True,
        "holderName": "Jane Doe",
        "cardBrand": "VISA",
        "cardBinNumber": "400000",
        "cardLast4Digits": "3184",
        "expirationMonth": 9,
        "expirationYear": 2030,
    }
    assert body["subscription"] == {
        "subscriptionId": "sub_123",
        "interval": "monthly",
        "price": "1999",
        "currency": "USD",
        "paymentNumber": "4",
        "totalPayments": None,
    }


@override_settings(FLEXCHARGE_MIT_EXPIRY_DAYS=15)
def test_expiry_is_now_plus_the_setting_in_utc_with_z(payment, payer, billing, vaulted):
    now = dt.datetime(2024, 6, 10, 14, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    body = payloads.evaluate_body(
        payment, idempotency_key=KEY, card=vaulted, payer=payer, billing=billing, now=now
    )
    assert body["expiryDateUtc"] == "2024-06-25T12:30:05Z"


def test_a_customer_initiated_evaluate_has_no_expiry_and_is_not_recurring(
    payment, payer, billing, vaulted
):
    body = payloads.evaluate_body(
        payment, idempotency_key=KEY, card=vaulted, payer=payer, billing=billing, is_mit=False
    )
    assert body["isMIT"] is False
    assert body["isRecurring"] is False
    assert "expiryDateUtc" not in body
    assert "subscription" not in body


def test_blank_result_codes_are_sent_as_na(payer, billing, vaulted):
    payment = make_payment(avs_result_code="", cvv_result_code="", cavv_result_code="")
    tx = payloads.evaluate_body(
        payment, idempotency_key=KEY, card=vaulted, payer=payer, billing=billing
    )["transaction"]
    assert (tx["avsResultCode"], tx["cvvResultCode"], tx["cavvResultCode"]) == ("NA", "NA", "NA")


def test_given_result_codes_are_sent_as_given(payer, billing, vaulted):
    payment = make_payment(avs_result_code="Y", cvv_result_code="M", cavv_result_code="2")
    tx = payloads.evaluate_body(
        payment, idempotency_key=KEY, card=vaulted, payer=payer, billing=billing
    )["transaction"]
    assert (tx["avsResultCode"], tx["cvvResultCode"], tx["cavvResultCode"]) == ("Y", "M", "2")


def test_transaction_time_is_utc_with_the_local_offset_in_hours(payer, billing, vaulted):
    local = dt.datetime(2024, 6, 10, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    tx = payloads.transaction(make_payment(occurred_at=local), status="DECLINED")
    assert tx["timestampUtc"] == "2024-06-10T14:30:00Z"
    assert tx["timezoneUtcOffset"] == -5


def test_transmit_body_is_not_declined_and_carries_the_key(payer, billing, card):
    body = payloads.transmit_body(
        make_payment(), idempotency_key=KEY, card=card, payer=payer, billing=billing
    )
    assert body["isDeclined"] is False
    assert body["isMIT"] is False
    assert body["idempotencyKey"] == KEY
    assert body["transaction"]["responseStatus"] == "APPROVED"
    assert body["billingInformation"]["city"] == "San Francisco"


def test_transmit_body_from_a_card_holds_metadata_only(card):
    body = payloads.transmit_body(make_payment(), idempotency_key=KEY, card=card)
    text = json.dumps(body)
    assert card.number not in text
    assert '"999"' not in text
    assert "cardNumber" not in body["paymentMethod"]
    assert body["paymentMethod"]["cardLast4Digits"] == "3184"
    assert body["paymentMethod"]["cardBinNumber"] == "400000"
    assert body["paymentMethod"]["cardBrand"] == "VISA"


def test_transmit_body_without_payer_sends_na_email_and_no_billing():
    body = payloads.transmit_body(make_payment(), idempotency_key=KEY)
    assert body["payer"] == {"email": "NA"}
    assert "billingInformation" not in body


def test_transmit_body_without_a_card_omits_the_payment_method_never_sends_it_empty():
    body = payloads.transmit_body(make_payment(card_type="DEBIT"), idempotency_key=KEY)
    assert "paymentMethod" not in body


def test_transmit_body_sends_what_the_payment_says_about_mit_and_card_type(card):
    renewal = make_payment(is_mit=True, card_type="debit")
    body = payloads.transmit_body(renewal, idempotency_key=KEY, card=card)
    assert body["isMIT"] is True
    assert body["paymentMethod"]["cardType"] == "DEBIT"


def test_transmit_body_leaves_card_type_out_when_the_payment_does_not_say(card):
    body = payloads.transmit_body(make_payment(), idempotency_key=KEY, card=card)
    assert body["isMIT"] is False
    assert "cardType" not in body["paymentMethod"]
    assert "" not in body["paymentMethod"].values()


def test_evaluate_body_sends_the_payment_card_type(payer, billing, vaulted):
    body = payloads.evaluate_body(
        make_payment(card_type="CREDIT"),
        idempotency_key=KEY,
        card=vaulted,
        payer=payer,
        billing=billing,
    )
    assert body["paymentMethod"]["cardType"] == "CREDIT"


def test_payer_birthdate_is_an_iso_date():
    payer = Payer(email="a@example.com", birthdate=dt.date(1990, 2, 3))
    assert payloads.payer_body(payer) == {"email": "a@example.com", "birthdate": "1990-02-03"}


def test_billing_without_a_country_name_sends_the_code(billing):
    from dataclasses import replace

    body = payloads.billing_body(replace(billing, country=""))
    assert body["country"] == "US"


def test_cancel_key_is_stable_per_order_and_differs_from_the_evaluate_key():
    order = FlexChargeOrder(idempotency_key=uuid.UUID(KEY))
    first = payloads.cancel_idempotency_key(order)
    assert first == payloads.cancel_idempotency_key(order)
    assert first != KEY
    assert uuid.UUID(first).version == 5


def test_transmit_body_never_sends_empty_required_codes():
    body = payloads.transmit_body(make_payment(response_code="", processor=""), idempotency_key="k")
    txn = body["transaction"]
    assert (txn["responseCode"], txn["responseCodeSource"]) == ("00", "unspecified")
    given = payloads.transmit_body(
        make_payment(response_code="A1", processor="nmi"), idempotency_key="k"
    )
    assert (given["transaction"]["responseCode"], given["transaction"]["responseCodeSource"]) == (
        "A1",
        "nmi",
    )
