"""Driving the admin's Refund and Cancel actions over HTTP, as a person in a browser does."""

from __future__ import annotations

import re
from html import unescape
from itertools import count

from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client

from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.testing import FakeFlexChargeClient

_ids = count(1)


CHANGELIST = "/admin/django_flexcharge/flexchargeorder/"


def refunds(fake: FakeFlexChargeClient) -> list[tuple[str, int, str, str]]:
    return [
        (c["order_session_key"], c["amount"], c["currency"], c["message"])
        for c in fake.calls_to("refund")
    ]


def cancels(fake: FakeFlexChargeClient) -> list[str]:
    return [c["order_session_key"] for c in fake.calls_to("cancel")]


def staff_client(django_user_model, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(f"staff{next(_ids)}", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def post_action(client: Client, action: str, orders: list[FlexChargeOrder], **data: object):
    """The changelist's action form (``index`` present), or an intermediate page's POST."""
    payload = {"action": action, "_selected_action": [o.pk for o in orders], **data}
    return client.post(CHANGELIST, payload)


def refund_form_post(
    client: Client, orders: list[FlexChargeOrder], rows: dict[int, dict[str, str]], url: str = ""
):
    """The Refund form's POST: an error page, or the confirmation page."""
    data: dict[str, object] = {"apply": "Review the refund"}
    for order in orders:
        for key, value in rows.get(order.pk, {"kind": "full"}).items():
            data[f"refund-{order.pk}-{key}"] = value
    if url:
        return client.post(url, data)
    return post_action(client, "refund_orders", orders, **data)


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def confirm(client: Client, page, url: str = CHANGELIST):
    """Press "Yes, refund ..." on a confirmation page: its hidden fields, as a browser sends them."""
    html = page.content.decode()
    assert 'id="flexcharge-refund-confirm-form"' in html, "not the confirmation page"
    form = html[html.index('id="flexcharge-refund-confirm-form"') :]
    data: dict[str, list[str]] = {}
    for name, value in HIDDEN.findall(form):
        data.setdefault(name, []).append(unescape(value))
    data["confirm"] = ["yes"]
    return client.post(url, data)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]
