"""Properties of the inputs and of money: what is valid round-trips, what is not names its field.

``types``: every dataclass, given one bad value at a time (wrong type, empty,
too long, out of range, malformed), raises ``FlexChargeValidationError`` naming
exactly that field, and nothing else escapes (no TypeError, no AttributeError).
Valid values are normalised once and then stay as they are.

``money``: minor -> major -> minor is the identity for every ISO-4217 currency
and exponent; the refund body FlexCharge receives carries the exact decimal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
import responses
from django.utils import timezone
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from django_flexcharge.client import FlexChargeClient, dumps
from django_flexcharge.exceptions import FlexChargeValidationError
from django_flexcharge.money import ISO_4217, exponent, to_major, to_minor
from django_flexcharge.types import BillingAddress, Card, Payer, Payment, Subscription, luhn_ok
from django_flexcharge.webhook_event_data import refund_amounts
from tests.conftest import API, TEST_PANS, token_body

pytestmark = pytest.mark.reliability

PROPS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
THIS_YEAR = timezone.now().year
CURRENCIES = sorted(ISO_4217)

# --- valid values ---------------------------------------------------------------------------

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1)
names = words.map(str.strip).filter(lambda s: 0 < len(s) <= 255)
codes = st.text(st.characters(codec="ascii", categories=("L", "N")), max_size=12)
label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
emails = st.builds(lambda a, b, c: f"{a}.{b}@{c}.example", label, label, label)


def with_luhn(digits: str) -> str:
    """``digits`` plus the check digit that makes the whole number pass Luhn."""
    for check in "0123456789":
        if luhn_ok(digits + check):
            return digits + check
    raise AssertionError("unreachable")


pans = st.text(alphabet="0123456789", min_size=11, max_size=18).map(with_luhn) | st.sampled_from(
    TEST_PANS
)


def spaced(pan: str) -> st.SearchStrategy[str]:
    """The PAN as typed: maybe in groups of four, with spaces or dashes."""
    groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
    return st.sampled_from([pan, " ".join(groups), "-".join(groups), f" {pan} "])


cards = st.fixed_dictionaries(
    {
        "number": pans.flatmap(spaced),
        "cvv": st.sampled_from(["", "123", "9999", "007"]),
        "exp_month": st.integers(1, 12),
        "exp_year": st.integers(THIS_YEAR + 1, 2100),
        "first_name": names,
        "last_name": names,
    }
)
aware = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.timezones()
)
payments = st.fixed_dictionaries(
    {
        "order_id": label,
        "transaction_id": label,
        "amount": st.integers(1, 10**12),
        "currency": st.sampled_from(CURRENCIES).map(
            lambda c: c.lower() if len(c) % 2 else c
        ),  # any case
        "response_code": codes,
        "response_description": st.text(max_size=100),
        "processor": codes,
        "occurred_at": aware,
    }
)
payers = st.fixed_dictionaries(
    {
        "email": emails,
        "id": codes,
        "phone": st.from_regex(r"\A\+?[0-9]{0,15}\Z"),
        "birthdate": st.none() | st.dates(),
    }
)
billings = st.fixed_dictionaries(
    {
        "first_name": names,
        "last_name": names,
        "address_line1": names,
        "city": names,
        "zipcode": st.from_regex(r"\A[0-9]{5}(-?[0-9]{4})?\Z"),
        "country_code": st.sampled_from(["US", "us", " de ", "GB"]),
        "state": st.sampled_from(["CA", "NY", "Bavaria"]),
    }
)
subscriptions = st.fixed_dictionaries(
    {
        "id": label,
        "interval": st.sampled_from(["monthly", "yearly", "weekly"]),
        "price": st.integers(1, 10**9),
        "currency": st.sampled_from(CURRENCIES),
        "payment_number": st.none() | st.integers(1, 1000),
        "total_payments": st.none() | st.integers(1, 1000),
    }
)
VALID = {
    Card: cards,
    Payment: payments,
    Payer: payers,
    BillingAddress: billings,
    Subscription: subscriptions,
}
PREFIX = {
    Card: "card",
    Payment: "payment",
    Payer: "payer",
    BillingAddress: "billing",
    Subscription: "subscription",
}

# --- invalid values, per field ---------------------------------------------------------------

not_a_string = st.none() | st.integers() | st.floats() | st.binary() | st.lists(st.integers())
not_an_int = (
    st.sampled_from([None, True, False, 1.0, "1", Decimal(1), 10**3 + 0.5])
    | st.floats()
    | st.text(max_size=5)
    | st.decimals()
)
blank = st.sampled_from(["", " ", "\t\n"])
too_long = st.integers(256, 400).map(lambda n: "x" * n)
INVALID: dict[type, dict[str, st.SearchStrategy[Any]]] = {
    Card: {
        "number": not_a_string
        | blank
        | st.from_regex(r"\A[0-9]{1,11}\Z")
        | st.from_regex(r"\A[0-9]{20,25}\Z")
        | st.from_regex(r"\A[0-9]{6}[a-z./][0-9]{6}\Z")
        | pans.map(lambda p: p[:-1] + str((int(p[-1]) + 1) % 10)),  # Luhn fails
        "cvv": not_a_string | st.from_regex(r"\A([0-9]{1,2}|[0-9]{5,8}|[a-z]{3})\Z"),
        "exp_month": not_an_int | st.integers(max_value=0) | st.integers(min_value=13),
        "exp_year": not_an_int
        | st.integers(max_value=1999)
        | st.integers(min_value=2101)
        | st.integers(2000, THIS_YEAR - 1),
        "first_name": not_a_string | blank | too_long,
        "last_name": not_a_string | blank | too_long,
    },
    Payment: {
        "order_id": not_a_string | blank | st.just("x" * 101),
        "transaction_id": not_a_string | blank | st.just("x" * 101),
        "amount": not_an_int | st.integers(max_value=0),
        "currency": not_a_string | st.sampled_from(["", "US", "USDD", "XYZ", "€"]),
        "response_code": not_a_string | too_long,
        "processor": not_a_string | too_long,
        "occurred_at": st.datetimes() | st.dates() | st.text(max_size=20) | st.integers(),
    },
    Payer: {
        "email": not_a_string | blank | st.sampled_from(["jane", "jane@", "@x.com", "a b@c.d"]),
        "id": not_a_string | too_long,
        "phone": not_a_string | too_long,
        "birthdate": st.text(max_size=10) | st.integers(),
    },
    BillingAddress: {
        "first_name": not_a_string | blank | too_long,
        "city": not_a_string | blank | too_long,
        "zipcode": not_a_string | blank | st.sampled_from(["1234", "123456", "ABCDE"]),
        "country_code": not_a_string | st.sampled_from(["", "USA", "U", "1A", "ü"]),
        "state": st.sampled_from(["", "   "]),  # required for a US address
    },
    Subscription: {
        "id": not_a_string | blank | st.just("x" * 101),
        "interval": not_a_string | blank | st.just("x" * 33),
        "price": not_an_int | st.integers(max_value=0),
        "currency": not_a_string | st.sampled_from(["", "usdx", "ABC"]),
        "payment_number": st.booleans() | st.floats() | st.text(max_size=3) | st.integers(-5, 0),
        "total_payments": st.booleans() | st.floats() | st.text(max_size=3) | st.integers(-5, 0),
    },
}
CASES = [(kind, name) for kind, fields in INVALID.items() for name in fields]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k.__name__}.{n}" for k, n in CASES])
@settings(PROPS, max_examples=60)
@given(data=st.data())
def test_one_bad_value_raises_a_validation_error_naming_its_field(kind, name, data):
    values = data.draw(VALID[kind], label="valid")
    if kind is BillingAddress:
        values["country_code"] = "US"  # so zipcode and state rules apply
    bad = data.draw(INVALID[kind][name], label=name)
    if kind is Card and name == "cvv":
        assume(not (isinstance(bad, str) and re.fullmatch(r"[0-9]{3,4}|", bad)))
    values[name] = bad

    with pytest.raises(FlexChargeValidationError) as raised:
        kind(**values)

    assert raised.value.field == f"{PREFIX[kind]}.{name}"
    assert str(raised.value).startswith(f"{PREFIX[kind]}.{name}: ")
    if kind is Card and len(str(values["number"])) >= 6:
        assert str(values["number"]) not in str(raised.value)  # never the PAN in a message


#: Fields holding an integer; every other field of INVALID holds text (or a date).
INTEGER_FIELDS = {"exp_month", "exp_year", "amount", "price", "payment_number", "total_payments"}
WRONG_TYPES = {
    "integer": [None, True, False, 1.5, "1", b"1", Decimal(1), [1]],
    "text": [None, True, 1, 1.5, b"text", ["text"], {"a": 1}],
}


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k.__name__}.{n}" for k, n in CASES])
def test_every_wrong_type_raises_a_validation_error_naming_its_field(kind, name):
    # Deterministic companion of the test above: each wrong type, in each field, every run.
    values = _valid_example(kind)
    for wrong in WRONG_TYPES["integer" if name in INTEGER_FIELDS else "text"]:
        if wrong is None and name in (
            "birthdate",
            "occurred_at",
            "payment_number",
            "total_payments",
        ):
            continue  # None is valid there: optional, or "now"
        with pytest.raises(FlexChargeValidationError) as raised:
            kind(**{**values, name: wrong})
        assert raised.value.field == f"{PREFIX[kind]}.{name}", wrong


def _valid_example(kind: type) -> dict[str, Any]:
    when = timezone.now()
    return {
        Card: {
            "number": TEST_PANS[2],
            "cvv": "123",
            "exp_month": 12,
            "exp_year": THIS_YEAR + 1,
            "first_name": "Jane",
            "last_name": "Doe",
        },
        Payment: {"order_id": "INV-1", "transaction_id": "ch_1", "amount": 1999, "currency": "USD"},
        Payer: {"email": "jane@example.com"},
        BillingAddress: {
            "first_name": "Jane",
            "last_name": "Doe",
            "address_line1": "1 Main St",
            "city": "Springfield",
            "zipcode": "94111",
            "country_code": "US",
            "state": "CA",
        },
        Subscription: {"id": "sub_1", "interval": "monthly", "price": 1999, "currency": "USD"},
    }[kind] | ({"occurred_at": when} if kind is Payment else {})


@pytest.mark.parametrize("kind", list(VALID), ids=lambda k: k.__name__)
@PROPS
@given(data=st.data())
def test_valid_values_round_trip(kind, data):
    values = data.draw(VALID[kind], label="values")

    made = kind(**values)
    again = kind(**{f.name: getattr(made, f.name) for f in dataclasses.fields(kind)})

    assert again == made  # normalising twice changes nothing
    for field in dataclasses.fields(kind):
        given_value, kept = values.get(field.name), getattr(made, field.name)
        if field.name == "number":
            assert kept == re.sub(r"[\s-]", "", given_value)
        elif field.name in ("currency", "country_code"):
            assert kept == given_value.strip().upper()
        elif isinstance(given_value, str):
            assert kept == given_value.strip()
        elif field.name in values:
            assert kept == given_value
    if kind is Card:
        assert made.number not in repr(made)
        assert made.number not in str(made)
        assert made.last4 in repr(made)


# --- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize("currency", CURRENCIES)
def test_every_currency_round_trips_minor_major_minor(currency):
    places = exponent(currency)
    for amount in (0, 1, 5, 9, 10, 99, 100, 101, 1999, 10**places, 10**15 + 7, -1999):
        major = to_major(amount, currency)
        assert to_minor(major, currency) == amount
        assert to_minor(str(major), currency) == amount
        assert -major.as_tuple().exponent == places  # always exactly the currency's places
    if places:
        with pytest.raises(ValueError):
            to_minor(Decimal(1).scaleb(-places - 1), currency)


@PROPS
@given(amount=st.integers(-(10**18), 10**18), currency=st.sampled_from(CURRENCIES))
def test_minor_major_minor_is_the_identity(amount, currency):
    major = to_major(amount, currency)
    assert to_minor(major, currency) == amount
    assert Decimal(format(major, "f")) == major


@PROPS
@given(
    digits=st.integers(0, 10**15),
    currency=st.sampled_from(CURRENCIES),
)
def test_major_minor_major_is_the_identity_within_the_currency_precision(digits, currency):
    major = Decimal(digits).scaleb(-exponent(currency))
    assert to_major(to_minor(major, currency), currency) == major


NUMBER = re.compile(rb'"amountToRefund":(-?[0-9]+(?:\.[0-9]+)?)[,}]')


@settings(PROPS, max_examples=200)
@given(amount=st.integers(1, 10**13), currency=st.sampled_from(CURRENCIES))
def test_the_refund_body_carries_the_exact_decimal(amount, currency):
    client = FlexChargeClient(api_url=API)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, API + "oauth2/token", json=token_body())
        mock.add(responses.POST, API + "orders/fc-1/refund", json={"status": "SUCCESS"})
        client.refund("fc-1", amount, currency, message="fuzz")
        body = mock.calls[-1].request.body

    literal = NUMBER.search(body)
    assert literal is not None, body  # a JSON number, not a string or an exponent form
    expected = to_major(amount, currency)
    assert Decimal(literal.group(1).decode()) == expected
    assert literal.group(1).decode() == format(expected, "f")
    assert json.loads(body, parse_float=Decimal)["amountToRefund"] == expected
    assert to_minor(json.loads(body, parse_float=Decimal)["amountToRefund"], currency) == amount


@PROPS
@given(amount=st.integers(1, 10**12), currency=st.sampled_from(CURRENCIES))
def test_a_refund_total_in_a_webhook_reads_back_as_the_same_minor_units(amount, currency):
    major = to_major(amount, currency)
    for value in (format(major, "f"), major, float(major) if amount < 10**9 else str(major)):
        # What FlexCharge's JSON gives us after json.loads(parse_float=Decimal), or as text.
        assert refund_amounts({"TotalRefundedAmount": value}, currency)[0] == amount
    assert dumps({"a": major}) == b'{"a":' + format(major, "f").encode() + b"}"
