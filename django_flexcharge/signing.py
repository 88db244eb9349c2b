"""FlexCharge webhook signatures (HMAC-SHA512), as in the official sample client.

FlexCharge signs ``"POST\\n{nonce};{date};{host};{content_sha512}"`` with the
base64-decoded subscriber key and sends the result after ``Signature=`` in
``x-fc-authorization``. The same code signs (the emulator, the test helpers and
``flexcharge_send_test_webhook``) and verifies (the webhook view), so the two
sides cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from typing import NamedTuple

SIGNED_HEADERS = "x-fc-nonce;x-fc-date;host;x-fc-content-sha512"
AUTHORIZATION_PREFIX = f"HMAC-SHA512 SignedHeaders={SIGNED_HEADERS}&Signature="
#: Shortest key (decoded bytes) ever used to verify. A blank entry decodes to an
#: empty HMAC key, which anyone can sign with; FlexCharge's keys are 64 bytes.
MIN_KEY_BYTES = 16


class KeyProblem(NamedTuple):
    """Why a subscriber key is never used to verify. ``text`` never holds the key."""

    kind: str  # "type", "blank", "base64" or "short"
    text: str


def key_problem(subscriber_key: object) -> KeyProblem | None:
    """None when ``subscriber_key`` may verify signatures; otherwise why not."""
    if not isinstance(subscriber_key, str):
        return KeyProblem("type", f"is a {type(subscriber_key).__name__}, not a str")
    if not subscriber_key.strip():
        return KeyProblem("blank", "is blank")
    try:
        size = len(decode_key(subscriber_key))
    except ValueError:
        return KeyProblem("base64", "is not valid base64")
    if size < MIN_KEY_BYTES:
        return KeyProblem("short", f"decodes to {size} bytes (at least {MIN_KEY_BYTES} needed)")
    return None


def decode_key(subscriber_key: str) -> bytes:
    """Return the raw key bytes of a base64 subscriber key (ValueError if not base64)."""
    try:
        return base64.b64decode(subscriber_key.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("subscriber key is not valid base64") from err


def content_hash(body: bytes) -> str:
    """``x-fc-content-sha512``: base64 of the SHA-512 of the raw body."""
    return base64.b64encode(hashlib.sha512(body).digest()).decode("ascii")


def string_to_sign(nonce: str, date: str, host: str, body_hash: str) -> str:
    return f"POST\n{nonce};{date};{host};{body_hash}"


def compute_signature(key: bytes, nonce: str, date: str, host: str, body: bytes) -> str:
    """The value after ``Signature=`` in ``x-fc-authorization``."""
    message = string_to_sign(nonce, date, host, content_hash(body)).encode("utf-8")
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode("ascii")


def body_signature(key: bytes, body: bytes) -> str:
    """``x-fc-signature``: base64 HMAC-SHA512 of the raw body (sent, not needed to verify)."""
    return base64.b64encode(hmac.new(key, body, hashlib.sha512).digest()).decode("ascii")


def sign_headers(
    subscriber_key: str,
    host: str,
    body: bytes,
    *,
    nonce: str | None = None,
    date: str | None = None,
) -> dict[str, str]:
    """Every header FlexCharge sends with a delivery of ``body`` to ``host``."""
    key = decode_key(subscriber_key)
    nonce = nonce or secrets.token_hex(16)
    date = date or formatdate(usegmt=True)
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content_hash(body),
        "x-fc-authorization": AUTHORIZATION_PREFIX
        + compute_signature(key, nonce, date, host, body),
        "x-fc-signature": body_signature(key, body),
    }


def signature_from_authorization(value: str) -> str:
    """The base64 signature after ``Signature=``, or "" when the header is malformed."""
    _, sep, signature = value.partition("Signature=")
    return signature.strip() if sep else ""


def verify(
    body: bytes,
    headers: Mapping[str, str],
    host: str,
    subscriber_keys: Iterable[str],
) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` for ``host`` under any key.

    ``headers`` must be case-insensitive (``request.headers`` is). Every
    comparison is constant-time; every key is tried (rotation), so the time
    taken does not reveal which key matched.
    """
    nonce = headers.get("x-fc-nonce", "")
    date = headers.get("x-fc-date", "")
    given_hash = headers.get("x-fc-content-sha512", "")
    given = signature_from_authorization(headers.get("x-fc-authorization", ""))
    if not (nonce and date and given):
        return False
    actual_hash = content_hash(body)
    # A content hash header is part of the signed string; a mismatch means the
    # body was altered, whatever the signature says.
    if given_hash and not hmac.compare_digest(given_hash.encode(), actual_hash.encode()):
        return False
    matched = False
    for subscriber_key in subscriber_keys:
        # A blank or short key would let anyone sign: never verify with one,
        # whatever the caller passed.
        if key_problem(subscriber_key) is not None:
            continue
        key = decode_key(subscriber_key)
        expected = compute_signature(key, nonce, date, host, body)
        matched |= hmac.compare_digest(expected.encode(), given.encode())
    return matched
