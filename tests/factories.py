"""Test data: the one place tests build orders, vaulted cards and FlexCharge's answers.

Rows are stored directly in the state a test needs (what a delivered
``/evaluate`` or a webhook would have left), never through the code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from itertools import count
from typing import Any

from django.conf import settings as django_settings
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder, VaultedCard, WebhookEvent
from flexcharge_emulator import EmulatorConfig

Status = FlexChargeOrder.Status
_numbers = count(1)


def make_order(
    order_id: str = "INV-1",
    status: str = Status.PENDING,
    *,
    session_key: str | None = "fc-order-1",
    amount: int = 1999,
    currency: str = "USD",
    declined_at: dt.datetime | None = None,
    save: bool = True,
    **fields: Any,
) -> FlexChargeOrder:
    """An order stored in ``status`` (``save=False``: not stored yet); ``fields`` are model
    fields (they win over the rest)."""
    key = uuid.uuid4()
    values: dict[str, Any] = {
        "order_id": order_id,
        "status": status,
        "order_session_key": session_key,
        "amount": amount,
        "currency": currency,
        "declined_at": declined_at or timezone.now(),
        "idempotency_key": key,
        "request_payload": {"idempotencyKey": str(key), "orderId": order_id, "isDeclined": True},
    }
    values.update(fields)
    order = FlexChargeOrder(**values)
    if save:
        order.save(force_insert=True)
    return order


def numbered_order(status: str = Status.PENDING, **fields: Any) -> FlexChargeOrder:
    """``make_order`` with ids of its own (``INV-<n>``, a UUID-shaped FlexCharge id): for
    tests that store many orders."""
    n = next(_numbers)
    fields.setdefault("session_key", f"00000000-0000-4000-8000-{n:012d}")
    return make_order(f"INV-{n}", status, **fields)


def webhook_order(**fields: Any) -> FlexChargeOrder:
    """The order the webhook tests' deliveries name (``fc-0001`` / ``INV-1001``) by default."""
    fields.setdefault("order_session_key", "fc-0001")
    return make_order(
        fields.pop("order_id", "INV-1001"), fields.pop("status", Status.PENDING), **fields
    )


def make_event(status: str = WebhookEvent.Status.FAILED, **fields: Any) -> WebhookEvent:
    """A stored webhook delivery with an id of its own."""
    n = next(_numbers)
    values = {
        "event": "order.completed",
        "external_order_id": f"INV-{n}",
        "nonce": f"nonce-{n}",
        "body": "{}",
    }
    return WebhookEvent.objects.create(status=status, **{**values, **fields})


def make_vaulted(
    token: str = "d3e10716-6aac-4eb8-a74d-c1a3027f1d96", **overrides: Any
) -> VaultedCard:
    values: dict[str, Any] = {
        "token": token,
        "last4": "3184",
        "bin": "400000",
        "brand": "VISA",
        "exp_month": 9,
        "exp_year": timezone.now().year + 3,
        "holder_name": "Jane Doe",
        "email": "jane@example.com",
    }
    values.update(overrides)
    return VaultedCard.objects.create(**values)


def evaluate_answer(status: str = "SUBMITTED", session_key: str = "fc-order-1") -> dict[str, Any]:
    """The envelope FlexCharge answers ``/evaluate`` with."""
    return {
        "orderSessionKey": session_key,
        "senseKey": None,
        "orderId": session_key,
        "success": True,
        "result": "Success",
        "status": status,
        "statusCode": None,
        "errors": [],
        "customProperties": {},
    }


def site_emulator_config(**options: Any) -> EmulatorConfig:
    """An emulator that accepts this test site's own credentials and subscriber key."""
    return EmulatorConfig(
        app_key=django_settings.FLEXCHARGE_APP_KEY,
        app_secret=django_settings.FLEXCHARGE_APP_SECRET,
        mid=django_settings.FLEXCHARGE_MID,
        site_id=django_settings.FLEXCHARGE_SITE_ID,
        tokenization_key=django_settings.FLEXCHARGE_TOKENIZATION_KEY,
        subscriber_key=django_settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS[0],
        **options,
    )


#: A second account, "brand-b" of ``FLEXCHARGE_ACCOUNTS``, with keys of its own.
B_KEY = base64.b64encode(b"brand-b subscriber key, tests only, not a secret").decode()
BRAND_B = {
    "APP_KEY": "b-app-key",
    "APP_SECRET": "b-app-secret",
    "MID": "0b0b0b0b-1111-4222-8333-444455556666",
    "SITE_ID": "0b0b0b0b-7777-4888-9999-aaaabbbbcccc",
    "TOKENIZATION_KEY": "b-tokenization-key",
    "WEBHOOK_SUBSCRIBER_KEYS": [B_KEY],
}


def make_due(order: FlexChargeOrder) -> None:
    """Move the clock past the retry: what waiting for next_attempt_at would do."""
    FlexChargeOrder.objects.filter(pk=order.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
