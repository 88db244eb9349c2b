"""``/oauth2/token`` access tokens: HS256 JWTs shaped like the sandbox's (§3).

Each emulator signs with a random key of its own, so a token from another
emulator process (or one before a restart) is "unknown" and gets 401, as a
real token from another environment would. Tokens live in the issuer, not in
``State``, so ``/_emulator/reset`` does not log every client out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from typing import Any

AUDIENCE = ["payments", "orders", "merchants", "eligibility-sftp", "eligibility", "contact"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    def __init__(self, mid: str, ttl: int) -> None:
        self.mid = mid
        self.ttl = ttl
        self.client_id = str(uuid.uuid4())  # the api-key id: JWT sub and response id
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._issued: dict[str, float] = {}  # jti -> exp (epoch seconds)

    def issue(self) -> dict[str, Any]:
        """The §3 response body for a successful token request."""
        now = time.time()
        exp = int(now) + self.ttl
        jti = str(uuid.uuid4())
        payload = {
            "sub": self.client_id,
            "unique_name": self.client_id,
            "jti": jti,
            "iat": str(int(now * 1000)),
            "aud": AUDIENCE,
            "custom:mid": self.mid,
            "nbf": int(now),
            "exp": exp,
            "iss": "Api-Client-Service",
        }
        with self._lock:
            self._issued[jti] = exp
            # Forget long-expired tokens so a long benchmark does not grow memory.
            for old in [k for k, v in self._issued.items() if v < now - 3600]:
                del self._issued[old]
        return {
            "accessToken": self._encode(payload),
            "refreshToken": _b64url(secrets.token_bytes(48)),
            "expires": exp * 1000,  # epoch milliseconds, as documented
            "id": self.client_id,
            "session": None,
            "daysToEnforceMFA": None,
            "skipAvailable": None,
            "success": True,
            "result": None,
            "status": None,
            "statusCode": None,
            "errors": [],
            "customProperties": {},
        }

    def valid(self, authorization: str | None) -> bool:
        """True for ``Bearer <token>`` or a bare token that we issued and is not expired."""
        if not authorization:
            return False
        scheme, _, rest = authorization.strip().partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else authorization.strip()
        try:
            header, payload, signature = token.split(".")
            expected = self._sign(f"{header}.{payload}".encode("ascii"))
            if not hmac.compare_digest(expected, signature):
                return False
            claims = json.loads(_b64url_decode(payload))
        except (ValueError, UnicodeError):
            return False
        with self._lock:
            exp = self._issued.get(str(claims.get("jti")))
        return exp is not None and exp > time.time()

    def expire_all(self) -> None:
        """Make every issued token fail with 401 (to test a client's re-authentication)."""
        with self._lock:
            self._issued.clear()

    def _encode(self, payload: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
        return f"{header}.{body}.{self._sign(f'{header}.{body}'.encode('ascii'))}"

    def _sign(self, data: bytes) -> str:
        return _b64url(hmac.new(self._key, data, hashlib.sha256).digest())
