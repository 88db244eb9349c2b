"""The variants the load generator compares; each answers a tiny 200.

Approval path (``/checkout/<variant>/``), one host row per request:

* ``a``: the host's checkout alone: one INSERT in a transaction.
* ``b``: ``a`` plus ``payment_approved.send(...)`` inside the transaction; the
  package stores a ``Transmission`` and enqueues its task on commit.
* ``f``: the floor: ``a`` plus one INSERT of a ``Transmission``-shaped row with
  a body of the same shape and size. Any correct implementation must at least
  write that row in the caller's transaction.

Webhook intake (``/hook/<variant>/``; the package's view is ``/flexcharge/webhook/``):

* ``d``: the floor: a bare DRF view storing the raw body with one INSERT in a
  transaction, with the same DRF policies as the package's view.
* ``z``: a bare DRF view answering 200.
"""

import uuid

import common
from django.db import transaction
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from django_flexcharge.signals import payment_approved
from django_flexcharge.types import Payment

from .models import FloorRow, HostOrder, RawDelivery

AMOUNT = 1999
EMAIL = common.BUYER_EMAIL
PAYER, BILLING = common.buyer()


def _host_order() -> HostOrder:
    return HostOrder.objects.create(
        number=uuid.uuid4().hex, amount=AMOUNT, currency="USD", email=EMAIL
    )


@csrf_exempt
@require_POST
def checkout_a(request):
    with transaction.atomic():
        _host_order()
    return HttpResponse("ok")


def _approve() -> None:
    """What a checkout does once the processor approved: the host row, then the signal."""
    with transaction.atomic():
        order = _host_order()
        payment_approved.send(
            sender=HostOrder,
            payment=Payment(
                order_id=order.number,
                transaction_id=f"txn-{order.pk}",
                amount=AMOUNT,
                currency="USD",
                response_code="00",
                response_description="Approved",
                processor="bench-gateway",
            ),
            payer=PAYER,
            billing=BILLING,
        )


@csrf_exempt
@require_POST
def checkout_b(request):
    _approve()
    return HttpResponse("ok")


def floor_payload(order_id: str, transaction_id: str, key: str) -> dict:
    """A ``/transmit`` body of the same shape and size as the package stores."""
    return {
        "isDeclined": False,
        "idempotencyKey": key,
        "mid": "4f3c2a10-6b7e-4d59-9a1f-0e5d2c7b8a61",
        "orderId": order_id,
        "isMIT": False,
        "transaction": {
            "id": transaction_id,
            "timestampUtc": "2026-01-01T00:00:00Z",
            "timezoneUtcOffset": 0,
            "amount": AMOUNT,
            "currency": "USD",
            "responseCode": "00",
            "responseDescription": "Approved",
            "responseStatus": "APPROVED",
            "responseCodeSource": "bench-gateway",
            "processorName": "bench-gateway",
            "avsResultCode": "NA",
            "cvvResultCode": "NA",
            "cavvResultCode": "NA",
            "cardNotPresent": True,
        },
        "payer": {"email": EMAIL},
        "paymentMethod": {},
        "billingInformation": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "country": "US",
            "countryCode": "US",
            "addressLine1": "1 Main St",
            "city": "Springfield",
            "zipcode": "12345",
            "state": "IL",
        },
    }


@csrf_exempt
@require_POST
def checkout_f(request):
    with transaction.atomic():
        order = _host_order()
        key = uuid.uuid4()
        txn = f"txn-{order.pk}"
        FloorRow.objects.create(
            order_id=order.number,
            transaction_id=txn,
            amount=AMOUNT,
            currency="USD",
            payload=floor_payload(order.number, txn, str(key)),
            idempotency_key=key,
        )
    return HttpResponse("ok")


class BareView(APIView):
    """The DRF policies of the package's webhook view, without its work."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []


class StoreRawBody(BareView):
    def post(self, request):
        with transaction.atomic():
            row = RawDelivery.objects.create(body=request.body.decode("utf-8", "replace"))
        return Response({"status": "stored", "event": row.pk})


class Answer200(BareView):
    def post(self, request):
        return Response({"status": "ok"})


def ping(request):
    return HttpResponse("pong")
