"""Health in each state: the report, the JSON view and its protection, the command's exit status, the plugin."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import health
from django_flexcharge.client import get_client
from django_flexcharge.models import FlexChargeOrder, Transmission, WebhookEvent
from django_flexcharge.testing import meta_headers, signed_webhook
from tests.conftest import API

pytestmark = pytest.mark.django_db

URL = "/flexcharge/health/"
Status = FlexChargeOrder.Status


def queued(minutes_old: float, *, declined_hours_ago: float = 0) -> FlexChargeOrder:
    now = timezone.now()
    return FlexChargeOrder.objects.create(
        order_id=f"INV-{minutes_old}-{declined_hours_ago}",
        amount=100,
        currency="USD",
        created=now - dt.timedelta(minutes=minutes_old),
        declined_at=now - dt.timedelta(hours=declined_hours_ago),
    )


def test_an_idle_site_is_healthy():
    report = health.collect()
    assert report["healthy"] is True
    assert report["problems"] == []
    assert report["oldest_queued_age_seconds"] is None
    assert report["last_webhook_received_at"] is None


def test_a_row_queued_too_long_is_reported():
    queued(minutes_old=5)
    assert health.collect()["healthy"] is True
    queued(minutes_old=20)
    report = health.collect()
    assert report["healthy"] is False
    assert 1190 < report["oldest_queued_age_seconds"] < 1300
    assert "is a worker running?" in report["problems"][0]


def test_rows_past_their_retry_budget_are_reported(settings):
    settings.FLEXCHARGE_HEALTH_MAX_QUEUE_AGE = 10**9
    queued(minutes_old=1, declined_hours_ago=25)  # the same-day window closed
    Transmission.objects.create(
        order_id="INV-T", transaction_id="t", amount=1, currency="USD", payload={}, attempts=200
    )
    report = health.collect()
    assert report["rows_past_retry_budget"] == 2
    assert "1 order(s) past the same-day window, 1 transmission(s)" in report["problems"][0]


def test_webhook_silence_is_a_problem_only_when_configured(settings):
    assert health.collect()["healthy"] is True
    settings.FLEXCHARGE_HEALTH_WEBHOOK_SILENCE = 3600
    assert "no webhook received" in health.collect()["problems"][0]
    WebhookEvent.objects.create(event="order.completed", nonce="n", body="{}")
    report = health.collect()
    assert report["healthy"] is True
    assert report["last_webhook_received_at"] is not None


def test_signature_refusals_are_counted_by_the_webhook_view(client, settings):
    settings.FLEXCHARGE_HEALTH_MAX_REFUSALS = 2
    for _ in range(3):
        body, headers = signed_webhook(
            "order.completed", order_id="fc-1", external_order_id="INV-1", key="d3Jvbmcta2V5"
        )
        response = client.post(
            "/flexcharge/webhook/", data=body, content_type="text/plain", **meta_headers(headers)
        )
        assert response.status_code == 401
    report = health.collect()
    assert report["signature_refusals_last_hour"] == 3
    assert "3 webhook signature refusals" in report["problems"][0]


def test_refusals_older_than_an_hour_are_not_counted():
    health.note_signature_refusal()
    now = timezone.now().timestamp()
    assert health.signature_refusals_last_hour(now) == 1
    assert health.signature_refusals_last_hour(now + 3601) == 0


def test_the_token_endpoints_last_answer(mocked):
    mocked.replace(responses.POST, API + "oauth2/token", status=400, json={"title": "bad key"})
    with pytest.raises(Exception, match="bad key"):
        get_client().get_token()
    report = health.collect()
    assert report["token_endpoint_last_answer"]["status"] == 400
    assert "token endpoint last answered 400" in report["problems"][0]
    mocked.replace(responses.POST, API + "oauth2/token", json={"accessToken": "t", "expires": 0})
    get_client().get_token()
    report = health.collect()
    assert report["token_endpoint_last_answer"]["status"] == 200
    assert report["healthy"] is True


# --- the JSON view ---


def test_the_view_refuses_anonymous_callers(client):
    assert client.get(URL).status_code == 403


@override_settings(FLEXCHARGE_HEALTH_TOKEN="monitor-secret")
def test_the_view_answers_a_monitor_with_the_token(client):
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer monitor-secret")
    assert response.status_code == 200
    assert response.json()["healthy"] is True
    queued(minutes_old=60)
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer monitor-secret")
    assert response.status_code == 503
    assert response.json()["healthy"] is False


def test_the_view_answers_staff(admin_client):
    assert admin_client.get(URL).status_code == 200


BRAND_B = {
    "APP_KEY": "b-app-key",
    "APP_SECRET": "b-app-secret",
    "MID": "0b0b0b0b-1111-4222-8333-444455556666",
    "SITE_ID": "0b0b0b0b-7777-4888-9999-aaaabbbbcccc",
}


@override_settings(FLEXCHARGE_ACCOUNTS={"brand-b": BRAND_B})
def test_health_per_account_counts_only_that_accounts_rows(admin_client):
    stuck = queued(minutes_old=60)
    stuck.account = "brand-b"
    stuck.save(update_fields=["account"])
    assert health.collect(account="default")["healthy"] is True
    assert health.collect(account="brand-b")["healthy"] is False
    assert health.collect()["healthy"] is False  # all accounts
    assert admin_client.get(URL, {"account": "default"}).status_code == 200
    assert admin_client.get(URL, {"account": "brand-b"}).status_code == 503
    assert admin_client.get(URL, {"account": "nope"}).status_code == 404
    call_command("flexcharge_health", "--account", "default", stdout=StringIO())
    with pytest.raises(CommandError, match="unhealthy"):
        call_command("flexcharge_health", "--account", "brand-b", stdout=StringIO())
    with pytest.raises(CommandError, match="nope"):
        call_command("flexcharge_health", "--account", "nope", stdout=StringIO())


# --- the command and the plugin ---


def test_the_command_prints_the_report_and_exits_zero_when_healthy():
    out = StringIO()
    call_command("flexcharge_health", stdout=out)
    assert "status: healthy" in out.getvalue()
    assert "oldest queued row: none queued" in out.getvalue()


def test_the_command_fails_when_unhealthy():
    queued(minutes_old=60)
    out = StringIO()
    with pytest.raises(CommandError, match="unhealthy"):
        call_command("flexcharge_health", "--json", stdout=out)
    assert json.loads(out.getvalue())["healthy"] is False


def test_the_health_check_plugin():
    pytest.importorskip("health_check")
    from health_check.exceptions import ServiceUnavailable

    from django_flexcharge.healthcheck import FlexChargeHealth

    FlexChargeHealth().run()
    queued(minutes_old=60)
    with pytest.raises(ServiceUnavailable, match="worker running"):
        FlexChargeHealth().run()


@pytest.mark.parametrize("value", [-1, "900", True])
def test_a_bad_health_threshold_is_a_check_error(settings, value):
    from django_flexcharge.checks import check_health_settings

    settings.FLEXCHARGE_HEALTH_MAX_QUEUE_AGE = value
    assert [m.id for m in check_health_settings()] == ["django_flexcharge.E045"]


def test_a_short_health_token_is_a_check_warning(settings):
    from django_flexcharge.checks import check_health_settings

    settings.FLEXCHARGE_HEALTH_TOKEN = "short"
    assert [m.id for m in check_health_settings()] == ["django_flexcharge.W045"]
    settings.FLEXCHARGE_HEALTH_TOKEN = "x" * 32
    assert check_health_settings() == []
