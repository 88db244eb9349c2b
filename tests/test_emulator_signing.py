"""The emulator signs webhooks on its own (flexcharge_emulator.signing), as FlexCharge documents.

Its code shares nothing with the app's ``django_flexcharge.signing``: both
must reproduce FlexCharge's vectors, and the app must verify what the
emulator signs.
"""

from __future__ import annotations

import pytest
from django.http.request import HttpHeaders

from django_flexcharge import money, signing
from flexcharge_emulator import currency
from flexcharge_emulator.signing import sign_headers
from tests.signing_vectors import OFFICIAL, OTHER_KEY, SECOND


@pytest.mark.parametrize("vector", [OFFICIAL, SECOND], ids=["official", "second"])
def test_the_emulator_reproduces_flexcharges_vectors(vector):
    headers = sign_headers(
        vector["key"], vector["host"], vector["body"], nonce=vector["nonce"], date=vector["date"]
    )
    assert headers == {
        "x-fc-nonce": vector["nonce"],
        "x-fc-date": vector["date"],
        "x-fc-content-sha512": vector["content_sha512"],
        "x-fc-authorization": signing.AUTHORIZATION_PREFIX + vector["signature"],
        "x-fc-signature": vector["body_signature"],
    }


def test_the_app_verifies_what_the_emulator_signs_with_a_fresh_nonce_and_date():
    body = b'{"Event":"order.completed","OrderId":"fc-1"}'
    headers = sign_headers(SECOND["key"], "shop.example:8000", body)
    assert len(headers["x-fc-nonce"]) == 32
    assert headers["x-fc-date"].endswith(" GMT")
    received = HttpHeaders({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    assert signing.verify(body, received, "shop.example:8000", [SECOND["key"]])
    assert not signing.verify(body, received, "shop.example:8000", [OTHER_KEY])
    assert not signing.verify(body + b" ", received, "shop.example:8000", [SECOND["key"]])
    assert not signing.verify(body, received, "other.example", [SECOND["key"]])


def test_the_emulators_currency_digits_agree_with_the_apps():
    for code in sorted(money.ISO_4217):
        assert currency.exponent(code) == money.exponent(code), code
    assert currency.exponent("jpy") == 0
    assert currency.exponent("XXX") == 2  # unknown to both: the emulator assumes cents
