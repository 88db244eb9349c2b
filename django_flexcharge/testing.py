"""Helpers for host projects' own tests: signed webhooks and a fake API client.

::

    from django_flexcharge.testing import FakeFlexChargeClient, post_webhook

    def test_rescued_invoice_is_paid(client, invoice):
        response = post_webhook(client, "order.completed",
                                order_id="fc-123", external_order_id=invoice.number)
        assert response.status_code == 200

Webhooks are signed with ``django_flexcharge.signing``, the code the webhook
view verifies with, using the first of ``FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS``.
``EmulatorControl(url, token)`` calls a running emulator's ``/_emulator/``
control endpoints with the token it printed (``EmulatorControl.of(emulator)`` for
one started in this process). It speaks HTTP only, so this module needs no
emulator installed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.urls import reverse

from .conf import conf
from .exceptions import FlexChargeConfigurationError
from .fake_client import Call, FakeFlexChargeClient
from .signing import sign_headers

__all__ = [
    "Call",
    "EmulatorControl",
    "FakeFlexChargeClient",
    "meta_headers",
    "post_webhook",
    "signed_webhook",
    "webhook_body",
    "webhook_host",
]

#: The header the emulator's control endpoints read the per-run token from.
CONTROL_TOKEN_HEADER = "X-Emulator-Token"  # noqa: S105 - a header name


class EmulatorControl:
    """Calls a running emulator's ``/_emulator/...`` with its token:
    ``EmulatorControl(url, token).post("orders/ID/approve")``."""

    def __init__(self, url: str, token: str, *, timeout: float = 10) -> None:
        self.url = url.rstrip("/") + "/_emulator/"
        self.session = requests.Session()
        self.session.headers[CONTROL_TOKEN_HEADER] = token
        self.timeout = timeout

    @classmethod
    def of(cls, emulator: Any, **kwargs: Any) -> EmulatorControl:
        """The client of an ``Emulator`` started in this process: its URL and its
        run's control token (``emulator.config.control_token``)."""
        return cls(emulator.url, emulator.config.control_token, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.url + path.lstrip("/"), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def state(self) -> dict[str, Any]:
        """``GET /_emulator/state``, decoded."""
        response = self.get("state")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


def webhook_body(
    event: str,
    *,
    order_id: str,
    external_order_id: str,
    timestamp: dt.datetime | str | None = None,
    is_test_mode: bool = True,
    is_resent: bool = False,
    event_data: Any = None,
    confirmation_id: str | None = None,
) -> bytes:
    """A delivery body as FlexCharge writes it: compact PascalCase JSON (§11.3)."""
    if timestamp is None:
        timestamp = dt.datetime.now(dt.UTC)
    if isinstance(timestamp, dt.datetime):
        timestamp = timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = {
        "Event": event,
        "TimeStamp": timestamp,
        "EventData": event_data,
        "ExternalOrderId": external_order_id,
        "OrderId": order_id,
        "ConfirmationId": confirmation_id,
        "IsTestMode": is_test_mode,
        "IsResent": is_resent,
    }
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def signed_webhook(
    event: str,
    *,
    order_id: str,
    external_order_id: str,
    key: str | None = None,
    host: str = "testserver",
    timestamp: dt.datetime | str | None = None,
    is_test_mode: bool = True,
    is_resent: bool = False,
    event_data: Any = None,
    nonce: str | None = None,
    date: dt.datetime | str | None = None,
    confirmation_id: str | None = None,
    account: str = "default",
) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)`` of a delivery signed for ``host`` with ``key`` (default: the
    first subscriber key of ``account``). ``date`` is ``x-fc-date`` (default now); ``nonce``
    defaults to a fresh random one. Headers use FlexCharge's names (``x-fc-nonce`` ...)."""
    body = webhook_body(
        event,
        order_id=order_id,
        external_order_id=external_order_id,
        timestamp=timestamp,
        is_test_mode=is_test_mode,
        is_resent=is_resent,
        event_data=event_data,
        confirmation_id=confirmation_id,
    )
    if key is None:
        keys = conf.account(account).WEBHOOK_SUBSCRIBER_KEYS
        if not keys:
            raise FlexChargeConfigurationError(
                "FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS is not set: pass key= or configure one.",
                setting="FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS",
            )
        key = keys[0]
    if isinstance(date, dt.datetime):
        date = format_datetime(date.astimezone(dt.UTC), usegmt=True)
    return body, sign_headers(key, host, body, nonce=nonce, date=date)


def meta_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``{"x-fc-nonce": ...}`` -> ``{"HTTP_X_FC_NONCE": ...}`` for Django's test client."""
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


def post_webhook(
    client: Any,
    event: str = "order.completed",
    *,
    order_id: str,
    external_order_id: str,
    url: str | None = None,
    content_type: str = "text/plain; charset=utf-8",
    host: str = "testserver",
    account: str = "default",
    **signing: Any,
) -> Any:
    """Sign and POST a delivery with Django's test ``client``; returns the response.

    ``url`` defaults to ``account``'s webhook URL (``reverse("django_flexcharge:webhook")``
    for the default account); the request's ``Host`` is the signed ``host``, the key
    the account's first. Other keywords go to ``signed_webhook``.
    """
    body, headers = signed_webhook(
        event,
        order_id=order_id,
        external_order_id=external_order_id,
        host=host,
        account=account,
        **signing,
    )
    if url is None:
        kwargs = {} if account == "default" else {"account": account}
        url = reverse("django_flexcharge:webhook", kwargs=kwargs)
    return client.post(
        url,
        data=body,
        content_type=content_type,
        HTTP_HOST=host,
        **meta_headers(headers),
    )


def webhook_host(url: str) -> str:
    """The host FlexCharge signs for a delivery to ``url``: ``host[:port]`` as HTTP
    clients send it (no port when it is the scheme's default), which is what
    Django's ``request.get_host()`` reports."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    default_port = {"http": "80", "https": "443"}.get(parts.scheme)
    host, sep, port = netloc.rpartition(":")
    if sep and port == default_port and not netloc.endswith("]"):
        return host
    return netloc
