"""HMAC-SHA512 webhook signatures against the vectors of flexcharge-api.md §11.4."""

from __future__ import annotations

import pytest
from django.http.request import HttpHeaders

from django_flexcharge import signing
from tests.signing_vectors import OFFICIAL, OTHER_KEY, SECOND


def vector_headers(vector: dict) -> dict[str, str]:
    return {
        "x-fc-nonce": vector["nonce"],
        "x-fc-date": vector["date"],
        "x-fc-content-sha512": vector["content_sha512"],
        "x-fc-authorization": signing.AUTHORIZATION_PREFIX + vector["signature"],
        "x-fc-signature": vector["body_signature"],
    }


@pytest.mark.parametrize("vector", [OFFICIAL, SECOND], ids=["official", "second"])
def test_signing_reproduces_the_published_vector(vector):
    headers = signing.sign_headers(
        vector["key"], vector["host"], vector["body"], nonce=vector["nonce"], date=vector["date"]
    )

    assert headers == vector_headers(vector)


@pytest.mark.parametrize("vector", [OFFICIAL, SECOND], ids=["official", "second"])
def test_the_published_vector_verifies(vector):
    assert signing.verify(vector["body"], vector_headers(vector), vector["host"], [vector["key"]])


def test_the_official_body_is_the_255_bytes_of_the_sample():
    assert len(OFFICIAL["body"]) == 255
    assert signing.content_hash(OFFICIAL["body"]) == OFFICIAL["content_sha512"]


def test_django_request_headers_verify_whatever_their_case():
    meta = {
        "HTTP_" + name.upper().replace("-", "_"): value
        for name, value in vector_headers(OFFICIAL).items()
    }

    assert signing.verify(OFFICIAL["body"], HttpHeaders(meta), OFFICIAL["host"], [OFFICIAL["key"]])


def test_either_of_two_keys_verifies_during_rotation():
    headers = vector_headers(OFFICIAL)

    assert signing.verify(OFFICIAL["body"], headers, OFFICIAL["host"], [OTHER_KEY, OFFICIAL["key"]])
    assert signing.verify(OFFICIAL["body"], headers, OFFICIAL["host"], [OFFICIAL["key"], OTHER_KEY])


def test_a_key_that_is_not_configured_does_not_verify():
    assert not signing.verify(
        OFFICIAL["body"], vector_headers(OFFICIAL), OFFICIAL["host"], [OTHER_KEY]
    )


def test_a_key_that_is_not_base64_is_skipped_not_fatal():
    headers = vector_headers(OFFICIAL)

    assert signing.verify(
        OFFICIAL["body"], headers, OFFICIAL["host"], ["not base64!", OFFICIAL["key"]]
    )
    assert not signing.verify(OFFICIAL["body"], headers, OFFICIAL["host"], ["not base64!"])


def test_no_keys_verify_nothing():
    assert not signing.verify(OFFICIAL["body"], vector_headers(OFFICIAL), OFFICIAL["host"], [])


def test_another_host_does_not_verify():
    headers = vector_headers(OFFICIAL)

    assert not signing.verify(OFFICIAL["body"], headers, "attacker.example", [OFFICIAL["key"]])
    assert not signing.verify(
        OFFICIAL["body"], headers, OFFICIAL["host"] + ":443", [OFFICIAL["key"]]
    )


def test_one_changed_byte_of_the_body_does_not_verify():
    body = OFFICIAL["body"].replace(b"order.completed", b"order.cancelled")

    assert not signing.verify(body, vector_headers(OFFICIAL), OFFICIAL["host"], [OFFICIAL["key"]])


def test_a_changed_body_fails_even_with_its_own_content_hash():
    body = OFFICIAL["body"].replace(b"22ACD1D9", b"00000000")
    headers = {**vector_headers(OFFICIAL), "x-fc-content-sha512": signing.content_hash(body)}

    assert not signing.verify(body, headers, OFFICIAL["host"], [OFFICIAL["key"]])


@pytest.mark.parametrize("name", ["x-fc-nonce", "x-fc-date", "x-fc-authorization"])
def test_a_missing_signed_header_does_not_verify(name):
    headers = vector_headers(OFFICIAL)
    del headers[name]

    assert not signing.verify(OFFICIAL["body"], headers, OFFICIAL["host"], [OFFICIAL["key"]])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-fc-nonce", "5f1c2de28a76457c9cb79d1740f2260b"),
        ("x-fc-date", "Mon, 20 Mar 2023 17:16:41 GMT"),
        ("x-fc-authorization", "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host"),
        ("x-fc-authorization", "Signature="),
        ("x-fc-content-sha512", "AAAA"),
    ],
)
def test_a_changed_header_does_not_verify(name, value):
    headers = {**vector_headers(OFFICIAL), name: value}

    assert not signing.verify(OFFICIAL["body"], headers, OFFICIAL["host"], [OFFICIAL["key"]])


def test_fresh_signatures_use_a_new_nonce_and_the_current_date():
    first = signing.sign_headers(OFFICIAL["key"], "shop.example", b"{}")
    second = signing.sign_headers(OFFICIAL["key"], "shop.example", b"{}")

    assert first["x-fc-nonce"] != second["x-fc-nonce"]
    assert len(first["x-fc-nonce"]) == 32
    assert first["x-fc-date"].endswith(" GMT")
    assert signing.verify(b"{}", first, "shop.example", [OFFICIAL["key"]])
