"""``--account`` of flexcharge_sync, flexcharge_retry, flexcharge_prune, flexcharge_send_test_webhook."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent
from tests.conftest import API, token_body
from tests.factories import B_KEY, BRAND_B, evaluate_answer, make_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
B_API = "https://b.example.test/v1/"
ACCOUNTS = {"brand-b": {**BRAND_B, "API_URL": B_API}}


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def ago(**delta: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(**delta)


@pytest.fixture
def two_apis():
    with (
        override_settings(FLEXCHARGE_ACCOUNTS=ACCOUNTS),
        responses.RequestsMock(assert_all_requests_are_fired=False) as rsps,
    ):
        for base in (API, B_API):
            rsps.add(responses.POST, base + "oauth2/token", json=token_body())
        yield rsps


def _order(account: str, order_id: str = "INV-1", **fields) -> FlexChargeOrder:
    return make_order(order_id, account=account, **fields)


def test_sync_visits_one_account_or_all(two_apis):
    a = _order("default", session_key="fc-a")
    b = _order("brand-b", session_key="fc-b")
    for base, key in ((API, "fc-a"), (B_API, "fc-b")):
        two_apis.add(responses.GET, base + f"orders/{key}", json={"id": key, "status": 7})
    run("flexcharge_sync", "--account", "brand-b")
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == (Status.PENDING, Status.APPROVED)
    urls = [call.request.url for call in two_apis.calls]
    assert B_API + "orders/fc-b" in urls
    assert not any(url.startswith(API) for url in urls)
    out = run("flexcharge_sync")
    a.refresh_from_db()
    assert a.status == Status.APPROVED
    assert "Checked 1 orders" in out  # b is approved now: only a was pending


def test_sync_by_order_id_and_account(two_apis):
    _order("default", session_key="fc-a")
    b = _order("brand-b", session_key="fc-b")
    two_apis.add(responses.GET, B_API + "orders/fc-b", json={"id": "fc-b", "status": 2})
    run("flexcharge_sync", "--order", "INV-1", "--account", "brand-b")
    b.refresh_from_db()
    assert b.status in (Status.CANCELLED, Status.EXPIRED)
    assert len([c for c in two_apis.calls if c.request.url.startswith(API)]) == 0


def test_unknown_account_is_a_command_error(two_apis):
    for command in ("flexcharge_sync", "flexcharge_retry", "flexcharge_prune"):
        with pytest.raises(CommandError, match="'brand-z'"):
            run(command, "--account", "brand-z")


def test_retry_sends_each_row_to_its_own_account(two_apis):
    a = _order("default", status=Status.QUEUED, session_key=None, created=ago(minutes=5))
    b = _order("brand-b", status=Status.QUEUED, session_key=None, created=ago(minutes=5))
    for base, key in ((API, "fc-a"), (B_API, "fc-b")):
        two_apis.add(responses.POST, base + "evaluate", json=evaluate_answer(session_key=key))
    out = run("flexcharge_retry", "--run", "--account", "brand-b")
    assert "Ran 1 evaluations" in out
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.order_session_key) == (Status.QUEUED, "fc-b")
    run("flexcharge_retry", "--run")
    a.refresh_from_db()
    assert a.order_session_key == "fc-a"
    evaluates = [c.request.url for c in two_apis.calls if c.request.url.endswith("evaluate")]
    assert evaluates == [B_API + "evaluate", API + "evaluate"]


def test_prune_one_account(two_apis):
    old = ago(days=100)
    for account in ("default", "brand-b"):
        WebhookEvent.objects.create(account=account, event="x", nonce="n", body="{}")
        Transmission.objects.create(
            account=account, order_id="I", transaction_id="t", amount=1, currency="USD", payload={}
        )
    WebhookEvent.objects.update(received_at=old)
    Transmission.objects.update(created=old)
    run("flexcharge_prune", "--account", "brand-b")
    assert list(WebhookEvent.objects.values_list("account", flat=True)) == ["default"]
    assert list(Transmission.objects.values_list("account", flat=True)) == ["default"]


def test_send_test_webhook_signs_with_the_accounts_key(live_server):
    order = make_order("INV-W", account="brand-b", session_key="fc-w")
    url = live_server.url + "/flexcharge/webhook/brand-b/"
    with override_settings(FLEXCHARGE_ACCOUNTS=ACCOUNTS):
        with pytest.raises(CommandError, match="401"):
            run("flexcharge_send_test_webhook", url)  # the default account's key
        out = run(
            "flexcharge_send_test_webhook",
            url,
            "--account",
            "brand-b",
            "--order-id",
            "fc-w",
            "--external-order-id",
            "INV-W",
        )
        with pytest.raises(CommandError, match="'brand-z'"):
            run("flexcharge_send_test_webhook", url, "--account", "brand-z")
    assert out.startswith("200")
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert WebhookEvent.objects.get(status="applied").account == "brand-b"
    assert B_KEY in BRAND_B["WEBHOOK_SUBSCRIBER_KEYS"]
