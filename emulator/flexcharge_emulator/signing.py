"""How FlexCharge signs a webhook delivery (HMAC-SHA512), written from its documentation.

The emulator does not borrow the app's signing code: it is a second,
independent implementation, so the app's verifier is tested against
signatures it did not compute itself. FlexCharge's official sample signs
``"POST\\n{nonce};{date};{host};{content_sha512}"`` with the base64-decoded
subscriber key, where ``content_sha512`` is base64(SHA-512(raw body)), and
sends the base64 result after ``Signature=`` in ``x-fc-authorization``;
``x-fc-signature`` is base64(HMAC-SHA512(key, raw body)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from email.utils import formatdate

AUTHORIZATION = "HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;x-fc-content-sha512&Signature="


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_headers(
    subscriber_key: str,
    host: str,
    body: bytes,
    *,
    nonce: str | None = None,
    date: str | None = None,
) -> dict[str, str]:
    """The headers FlexCharge sends with ``body`` to ``host``: a fresh nonce (32 hex
    characters) and the current RFC 1123 date unless given."""
    key = base64.b64decode(subscriber_key.strip(), validate=True)
    nonce = nonce or secrets.token_hex(16)
    date = date or formatdate(usegmt=True)
    content = _b64(hashlib.sha512(body).digest())
    to_sign = f"POST\n{nonce};{date};{host};{content}".encode()
    return {
        "x-fc-nonce": nonce,
        "x-fc-date": date,
        "x-fc-content-sha512": content,
        "x-fc-authorization": AUTHORIZATION + _b64(hmac.new(key, to_sign, hashlib.sha512).digest()),
        "x-fc-signature": _b64(hmac.new(key, body, hashlib.sha512).digest()),
    }
