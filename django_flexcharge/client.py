"""FlexChargeClient: the one place that talks HTTP to FlexCharge.

One ``requests.Session`` (connection reuse), one ``_request()`` that joins the
URL, applies the bearer token, the (connect, read) timeout and maps every
failure to the ``FlexChargeError`` tree; each endpoint is a short method.
Ids placed in a URL path are percent-encoded as one segment, so a merchant
order id such as ``INV/2026 #7`` reaches ``orders/INV%2F2026%20%237/...``.

Each FlexCharge account (``FLEXCHARGE_ACCOUNTS``) has its own client, credentials
and token: ``get_client(alias)``; the cache key carries the alias.

The access token lives 10 minutes. It is kept in Django's cache, so every
process of a site shares it (each also keeps a copy in memory, so the cache
is read once per token), and renewed 60 s before ``expires``; when many
threads need a new one at once exactly one token request goes out. A 401 drops
the token and retries the call once with a fresh one.

Nothing here logs or raises a request body: bodies may carry a PAN and CVV
(``/tokenize``). Log lines carry method, path (no query string, which holds the
tokenization key), status, time and FlexCharge's trace id. While a request is
in flight its body, query, credentials and bearer token are ``Secret`` values
and the methods are ``sensitive_variables``, so an error report or a tracker
that collects frame locals sees none of them; FlexCharge's answers are
redacted (``redaction.redact``) before they reach an exception. The
emulator's public credentials are never sent anywhere but to loopback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from . import __version__, error_hints, telemetry
from .accounts import account_conf, check_alias
from .conf import FlexChargeSettings
from .exceptions import (
    FlexChargeAPIError,
    FlexChargeAuthError,
    FlexChargeConflict,
    FlexChargeConnectionError,
    FlexChargeNotFound,
    FlexChargeRateLimited,
    FlexChargeServerError,
    FlexChargeTimeout,
)
from .money import to_major
from .public_credentials import refuse_public
from .redaction import Secret, redact, redact_text, reveal

logger = logging.getLogger("django_flexcharge.client")

#: Renew the token this many seconds before FlexCharge's ``expires``.
TOKEN_MARGIN = 60
#: ``/evaluate`` result statuses (§6.4): business results, even in a ``success: false``
#: envelope that lists errors (a DECLINED evaluation may say why).
EVALUATE_STATUSES = frozenset(
    {"SUBMITTED", "APPROVED", "DECLINED", "CHALLENGE", "CAPTUREREQUIRED", "PROCESSING"}
)
#: ``/outcome`` statuses (§7.1): the evaluate ones plus the ends of a managed rescue.
OUTCOME_STATUSES = EVALUATE_STATUSES | {"EXPIRED", "CANCELLED", "NOTFOUND"}
_TOKEN_LOCKS: dict[str, threading.Lock] = {}
_TOKEN_LOCKS_GUARD = threading.Lock()


def dumps(body: Any) -> bytes:
    """JSON-encode ``body``, writing ``Decimal`` values as exact JSON numbers (``19.99``, not a string)."""
    decimals: dict[str, str] = {}

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            marker = f"__decimal_{uuid.uuid4().hex}__"
            decimals[f'"{marker}"'] = format(value, "f")
            return marker
        if isinstance(value, uuid.UUID):
            return str(value)
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = json.dumps(body, default=default, separators=(",", ":"))
    for marker, number in decimals.items():
        text = text.replace(marker, number)
    return text.encode("utf-8")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _segment(value: str) -> str:
    """``value`` percent-encoded as one URL path segment (``/``, ``?``, ``#``, spaces...)."""
    return quote(str(value), safe="")


def _card_values(body: Any) -> tuple[str, ...]:
    """The PAN and CVV of a ``/tokenize`` body: kept out of any error built from the answer."""
    method = body.get("payment_method") if isinstance(body, dict) else None
    card = method.get("credit_card") if isinstance(method, dict) else None
    if not isinstance(card, dict):
        return ()
    return tuple(str(card[key]) for key in ("number", "verification_value") if card.get(key))


def _field_errors(data: dict[str, Any]) -> tuple[dict[str, list[str]], str]:
    """Field errors and trace id from either FlexCharge error shape."""
    trace_id = ""
    errors: dict[str, list[str]] = {}
    source: Any = data
    # Older variant: {"status": "400", "errors": {"OrderId": [...], "TraceId": [...]}}
    if isinstance(data.get("errors"), dict):
        source = data["errors"]
    if isinstance(source, dict):
        for key, value in source.items():
            if key.lower() == "traceid":
                trace_id = str(value[0] if isinstance(value, list) and value else value)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                errors[key] = [str(v) for v in value]
    # Envelope: {"success": false, "errors": [{"item1": msg, "item2": code, ...}]}
    if isinstance(data.get("errors"), list):
        for item in data["errors"]:
            if isinstance(item, dict):
                message = str(item.get("item1") or item.get("message") or item)
                code = str(item.get("item2") or item.get("code") or "error")
            else:
                message, code = str(item), "error"
            errors.setdefault(code, []).append(message)
    return errors, trace_id


class FlexChargeClient:
    """A FlexCharge API client. Settings are read when used unless given here."""

    def __init__(
        self,
        *,
        api_url: str | None = None,
        app_key: str | None = None,
        app_secret: str | None = None,
        mid: str | None = None,
        tokenization_key: str | None = None,
        timeout: tuple[float, float] | None = None,
        session: requests.Session | None = None,
        account: str = "default",
    ) -> None:
        #: The account alias whose settings fill what is not given here.
        self.account = account
        self._api_url = api_url
        self._app_key = app_key
        self._app_secret = app_secret
        self._mid = mid
        self._tokenization_key = tokenization_key
        self._timeout = timeout
        #: (cache key, token, expires): this process's copy of the shared token.
        self._local_token: tuple[str, str, float] | None = None
        self.session = session or requests.Session()
        #: requests' settings from the environment, per scheme and host (``_environment``);
        #: None for a session the caller built, which keeps its own ``trust_env``.
        self._environ: dict[str, dict[str, Any]] | None = None
        if session is None:
            self._environ = {}
            self.session.trust_env = False
        self.session.headers.update(
            {"Accept": "application/json", "User-Agent": f"django-flexcharge/{__version__}"}
        )

    # --- configuration (lazy, so override_settings works on a shared client) ---

    @property
    def conf(self) -> FlexChargeSettings:
        return account_conf(self.account)

    @property
    def api_url(self) -> str:
        url = self._api_url or self.conf.API_URL
        return url if url.endswith("/") else url + "/"

    @property
    def timeout(self) -> tuple[float, float]:
        return self._timeout or self.conf.TIMEOUT

    @property
    def mid(self) -> str:
        return self._mid or self.conf.MID

    def _credentials(self) -> tuple[str, str]:
        return (self._app_key or self.conf.APP_KEY, self._app_secret or self.conf.APP_SECRET)

    def _known_secrets(self, token: Secret[str] | None) -> tuple[str, ...]:
        """What FlexCharge might echo back that must never reach an error: keys and token."""
        own = self.conf
        values = (
            self._app_key or own._get("FLEXCHARGE_APP_KEY", ""),
            self._app_secret or own._get("FLEXCHARGE_APP_SECRET", ""),
            self._tokenization_key or own._get("FLEXCHARGE_TOKENIZATION_KEY", ""),
            reveal(token) or "",
        )
        return tuple(str(value) for value in values if value)

    def __repr__(self) -> str:
        return f"<FlexChargeClient {self.api_url}>"

    @property
    def _token_cache_key(self) -> str:
        app_key = self._app_key or self.conf.APP_KEY
        digest = hashlib.sha256(f"{self.api_url}|{app_key}".encode()).hexdigest()[:24]
        # The alias keeps two accounts apart even when they share an app key.
        return f"django_flexcharge:token:{self.account}:{digest}"

    # --- the token ---

    def _cached_token(self) -> str | None:
        key = self._token_cache_key
        # This process's copy first: the shared cache (often a database or a
        # network hop) is read once per token, not once per call.
        local = self._local_token
        if local and local[0] == key and local[2] - TOKEN_MARGIN > time.time():
            return local[1]
        entry = cache.get(key)
        if entry and entry.get("expires", 0) - TOKEN_MARGIN > time.time():
            self._local_token = (key, str(entry["token"]), float(entry["expires"]))
            return str(entry["token"])
        return None

    def _token_lock(self) -> threading.Lock:
        with _TOKEN_LOCKS_GUARD:
            return _TOKEN_LOCKS.setdefault(self._token_cache_key, threading.Lock())

    def get_token(self) -> str:
        """A valid access token: from the cache, or one new token for all waiting threads."""
        token = self._cached_token()
        if token:
            return token
        with self._token_lock():
            token = self._cached_token()
            if token:
                return token
            # Across processes: the first to add the lock fetches; the others
            # wait a little for its token before fetching one themselves.
            lock_key = self._token_cache_key + ":lock"
            owner = cache.add(lock_key, "1", timeout=15)
            if not owner:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    token = self._cached_token()
                    if token:
                        return token
            try:
                data = self.authenticate()
            finally:
                if owner:
                    cache.delete(lock_key)
            token = str(data.get("accessToken") or "")
            if not token:
                raise FlexChargeAuthError("FlexCharge returned no accessToken", status=200)
            expires = data.get("expires")
            if isinstance(expires, int | float) and expires > 0:
                # FlexCharge sends epoch milliseconds; tolerate seconds.
                expires_at = expires / 1000 if expires > 1e11 else float(expires)
            else:
                expires_at = time.time() + 600
            ttl = int(expires_at - time.time() - TOKEN_MARGIN)
            if ttl > 0:
                cache.set(self._token_cache_key, {"token": token, "expires": expires_at}, ttl)
                self._local_token = (self._token_cache_key, token, expires_at)
            return token

    def drop_token(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given)."""
        local = self._local_token
        if local and (token is None or local[1] == token):
            self._local_token = None
        entry = cache.get(self._token_cache_key)
        if entry and (token is None or entry.get("token") == token):
            cache.delete(self._token_cache_key)

    # --- the one request method ---

    @sensitive_variables()
    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | Secret[dict[str, Any]] | None = None,
        auth: bool = True,
        card: Secret[tuple[str, ...]] | None = None,
        accept_statuses: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        if body is not None and not isinstance(body, Secret):
            body = Secret(body)
        for attempt in (1, 2):
            token = Secret(self.get_token()) if auth else None
            with telemetry.exchange(method, path, self.account) as exchange:
                response = self._send(method, path, body=body, params=params, token=token)
                exchange.answered(response)
            if response.status_code == 401 and auth and attempt == 1:
                # Expired or revoked early: one retry with a fresh token.
                self.drop_token(reveal(token))
                continue
            return self._decode(method, path, response, card, accept_statuses, token)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _headers(token: Secret[str] | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        return headers

    def _environment(self, url: str) -> dict[str, Any]:
        """The proxies (``HTTPS_PROXY``, ``NO_PROXY``...) and CA bundle
        (``REQUESTS_CA_BUNDLE``) the environment gives for ``url``'s host, read once.

        ``requests`` reads them on every call otherwise, which cost 0.13-0.17 ms
        per call, a tenth of a delivered row (docs/benchmarks.md). ``~/.netrc`` is
        never read: a matching entry would replace the bearer token.
        """
        if self._environ is None:
            return {}
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.hostname}:{parts.port}"
        found = self._environ.get(key)
        if found is None:
            merged = requests.Session().merge_environment_settings(url, {}, None, None, None)
            found = {name: merged[name] for name in ("proxies", "verify", "cert")}
            self._environ[key] = found
        return found

    @sensitive_variables()
    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Secret[Any] | None,
        params: dict[str, Any] | Secret[dict[str, Any]] | None,
        token: Secret[str] | None = None,
    ) -> requests.Response:
        url = self.api_url + path.lstrip("/")
        started = time.monotonic()
        try:
            # Revealed only inside the call: no local of this frame holds them.
            response = self.session.request(
                method,
                url,
                data=dumps(reveal(body)) if body is not None else None,
                params=reveal(params),
                headers=self._headers(token),
                timeout=self.timeout,
                **self._environment(url),
            )
        except requests.RequestException as err:
            # Never chained: the exception text may hold the URL with its query
            # string (the tokenization key), and its traceback runs through
            # requests' frames, whose locals hold the body and the bearer token
            # (error reporters and trackers print the chain). Its class name is kept,
            # with the base URL tried (never a query string or user info).
            shown = error_hints.base_url(self.api_url)
            if isinstance(err, requests.Timeout):
                logger.warning("FlexCharge %s %s%s timed out", method, shown, path)
                raise FlexChargeTimeout(
                    f"FlexCharge {method} {shown}{path} timed out ({type(err).__name__}, "
                    "FLEXCHARGE_TIMEOUT)"
                ) from None
            logger.warning("FlexCharge %s %s%s failed: %s", method, shown, path, type(err).__name__)
            raise FlexChargeConnectionError(
                f"FlexCharge {method} /{path} could not be reached ({type(err).__name__}): "
                + error_hints.unreachable_hint(self.api_url)
            ) from None
        logger.info(
            "FlexCharge %s /%s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    @sensitive_variables()
    def _decode(
        self,
        method: str,
        path: str,
        response: requests.Response,
        card: Secret[tuple[str, ...]] | None = None,
        accept_statuses: frozenset[str] = frozenset(),
        token: Secret[str] | None = None,
    ) -> dict[str, Any]:
        status = response.status_code
        try:
            data = response.json() if response.content.strip() else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if 200 <= status < 300 and data is not None:
                data = {"data": data}
            elif 200 <= status < 300:
                raise FlexChargeAPIError(
                    f"FlexCharge {method} /{path} answered with a body that is not JSON",
                    status=status,
                )
            else:
                data = {}
        if card:
            # An answer may echo the card (a validator, a 200 without a token).
            data = redact(data, reveal(card))
        if 200 <= status < 300 and not self._is_envelope_failure(data, accept_statuses):
            return data
        # Nor a key, secret or bearer token echoed in an error body.
        # Rebound, not passed on: the raw answer must not stay in this frame's locals.
        data = redact(data, self._known_secrets(token))
        self._raise(method, path, response, data)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _is_envelope_failure(
        data: dict[str, Any], accept_statuses: frozenset[str] = frozenset()
    ) -> bool:
        # A business failure comes back as 200 with success: false. A business
        # *result* is not an error: a status the endpoint lists as a result
        # (``accept_statuses``: evaluate DECLINED, outcome EXPIRED...) is returned
        # even when errors are listed; otherwise FAILED, no status or any error is one.
        if data.get("success") is not False:
            return False
        status = str(data.get("status") or "").upper()
        if status in accept_statuses:
            return False
        return bool(data.get("errors")) or status in ("", "FAILED")

    def _raise(
        self, method: str, path: str, response: requests.Response, data: dict[str, Any]
    ) -> None:
        status = response.status_code
        errors, trace_id = _field_errors(data)
        trace_id = (
            trace_id
            or response.headers.get("traceparent", "")
            or response.headers.get("apigw-requestid", "")
        )
        code = str(data.get("responseCode") or data.get("statusCode") or "")
        message = str(
            data.get("responseMessage")
            or data.get("title")
            or f"FlexCharge {method} /{path} failed ({redact_text(response.reason or '') or status})"
        )
        hint = error_hints.setting_hint(path, status, errors, self.api_url)
        if hint:
            message = f"{message} ({hint})"
        kwargs: dict[str, Any] = {
            "status": status,
            "code": code,
            "errors": errors,
            "trace_id": trace_id,
            "response": data,
        }
        logger.warning(
            "FlexCharge %s /%s error %s%s",
            method,
            path,
            status,
            error_hints.log_fields(code=code, trace=trace_id),
        )
        if status == 401 or (status == 400 and path == "oauth2/token"):
            raise FlexChargeAuthError(message, **kwargs)
        if status == 404:
            raise FlexChargeNotFound(message, **kwargs)
        if status == 409:
            raise FlexChargeConflict(message, **kwargs)
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            raise FlexChargeRateLimited(message, retry_after=retry_after, **kwargs)
        if status >= 500:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            raise FlexChargeServerError(message, retry_after=retry_after, **kwargs)
        raise FlexChargeAPIError(message, **kwargs)

    # --- endpoints ---

    @sensitive_variables()
    def authenticate(self) -> dict[str, Any]:
        """``POST /oauth2/token`` (use ``get_token()``, which caches)."""
        return self._request("POST", "oauth2/token", body=self._credential_body(), auth=False)

    def _credential_body(self) -> Secret[dict[str, str]]:
        app_key, app_secret = self._credentials()
        refuse_public("FLEXCHARGE_APP_KEY", app_key, self.api_url)
        refuse_public("FLEXCHARGE_APP_SECRET", app_secret, self.api_url)
        return Secret({"AppKey": app_key, "AppSecret": app_secret})

    @sensitive_variables()
    def tokenize(self, body: dict[str, Any] | Secret[dict[str, Any]]) -> dict[str, Any]:
        """``POST /tokenize``: vault a card.

        The mid + tokenization key in the query are the documented credential; the
        bearer token is sent too (FlexCharge tolerates it, and a server that treats
        /tokenize like every other endpoint requires it), with the usual 401 retry.
        The answer comes back with any echo of the PAN or CVV redacted.
        """
        body = body if isinstance(body, Secret) else Secret(body)
        return self._request(
            "POST",
            "tokenize",
            body=body,
            params=self._tokenize_params(),
            card=Secret(_card_values(body.reveal())),
        )

    def _tokenize_params(self) -> Secret[dict[str, str]]:
        key = self._tokenization_key or self.conf.TOKENIZATION_KEY
        refuse_public("FLEXCHARGE_TOKENIZATION_KEY", key, self.api_url)
        return Secret({"mid": self.mid, "environment": key})

    def transmit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "transmit", body=body)

    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "evaluate", body=body, accept_statuses=EVALUATE_STATUSES)

    def outcome(self, order_session_key: str) -> dict[str, Any]:
        """Deprecated by FlexCharge in favour of ``get_order``; kept for old accounts."""
        return self._request(
            "POST",
            "outcome",
            body={"orderSessionKey": order_session_key},
            accept_statuses=OUTCOME_STATUSES,
        )

    def get_order(self, order_session_key: str) -> dict[str, Any]:
        return self._request("GET", f"orders/{_segment(order_session_key)}")

    def list_orders(self, **params: Any) -> dict[str, Any]:
        """``GET /orders`` with FlexCharge's query parameters (``status``, ``from``, ``pageSize``...)."""
        return self._request("GET", "orders", params=params)

    def refund(
        self,
        order_session_key: str,
        amount: int,
        currency: str,
        *,
        message: str = "",
    ) -> dict[str, Any]:
        """Refund ``amount`` minor units; FlexCharge takes ``amountToRefund`` in major units."""
        body: dict[str, Any] = {"amountToRefund": to_major(amount, currency)}
        if message:
            body["refundMessage"] = message
        return self._request("POST", f"orders/{_segment(order_session_key)}/refund", body=body)

    def cancel(self, order_session_key: str, *, idempotency_key: str = "") -> dict[str, Any]:
        body = {"idempotencyKey": idempotency_key} if idempotency_key else {}
        return self._request("POST", f"orders/{_segment(order_session_key)}/cancel", body=body)

    def external_cancel(self, order_id: str, *, idempotency_key: str = "") -> dict[str, Any]:
        """Cancel by the host's order id, when ``/evaluate`` never returned FlexCharge's id."""
        body = {"idempotencyKey": idempotency_key} if idempotency_key else {}
        return self._request("POST", f"orders/{_segment(order_id)}/external-cancel", body=body)


_clients: dict[str, FlexChargeClient] = {}
#: Set by ``set_client(client)`` without an account: answers for every account (tests).
_override: FlexChargeClient | None = None
_clients_guard = threading.Lock()


def get_client(account: str = "default") -> FlexChargeClient:
    """The process-wide client of ``account`` (one Session each, so connections are reused)."""
    if _override is not None:
        return _override
    client = _clients.get(account)
    if client is None:
        check_alias(account)
        with _clients_guard:
            client = _clients.setdefault(account, FlexChargeClient(account=account))
    return client


def set_client(client: FlexChargeClient | None, *, account: str | None = None) -> None:
    """Replace the process-wide client (tests: a fake; None: new real ones on next use).

    Without ``account`` the client answers for every account; with it, for that alias only.
    """
    global _override
    with _clients_guard:
        if account is None:
            _override = client
            _clients.clear()
        elif client is None:
            _clients.pop(account, None)
        else:
            _clients[account] = client
