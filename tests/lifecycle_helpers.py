"""Helpers shared by the lifecycle tests (services, tasks, commands)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import responses as responses_lib
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder, VaultedCard
from tests.conftest import API


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
    """The §6.4 envelope FlexCharge answers ``/evaluate`` with."""
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


def bodies(mocked: responses_lib.RequestsMock, path: str) -> list[dict[str, Any]]:
    """JSON bodies of every request the mock saw to ``path`` (e.g. ``"evaluate"``)."""
    url = API + path
    return [
        json.loads(call.request.body)
        for call in mocked.calls
        if call.request.url.split("?")[0] == url and call.request.body
    ]


def calls_to(mocked: responses_lib.RequestsMock, path: str) -> int:
    url = API + path
    return sum(1 for call in mocked.calls if call.request.url.split("?")[0] == url)


def make_order(
    order_id: str = "INV-1",
    status: str = FlexChargeOrder.Status.PENDING,
    *,
    session_key: str | None = "fc-order-1",
    amount: int = 1999,
    currency: str = "USD",
    declined_at: dt.datetime | None = None,
    **overrides: Any,
) -> FlexChargeOrder:
    """An order stored directly in ``status`` (what a delivered /evaluate would leave)."""
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
    values.update(overrides)
    return FlexChargeOrder.objects.create(**values)
