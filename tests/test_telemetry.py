"""Spans and metrics through the OpenTelemetry API, captured by the SDK's in-memory exporters."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import responses
from opentelemetry import metrics, trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from django_flexcharge import health, services, webhooks
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.models import FlexChargeOrder
from django_flexcharge.telemetry import endpoint_name
from django_flexcharge.testing import signed_webhook
from tests.conftest import API, TEST_CVVS, TEST_PANS, make_payment
from tests.factories import evaluate_answer, make_order, make_vaulted

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status
_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _sdk() -> None:
    """Install the SDK once per process (the API allows one global provider)."""
    if not isinstance(trace.get_tracer_provider(), sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))


@pytest.fixture
def spans() -> InMemorySpanExporter:
    _EXPORTER.clear()
    return _EXPORTER


def points(name: str) -> list[Any]:
    data = _READER.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def total(name: str, **attributes: Any) -> float:
    return sum(
        p.value
        for p in points(name)
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


def test_endpoint_names_hide_ids():
    assert endpoint_name("post", "orders/INV%2F7/refund") == "POST orders/{id}/refund"
    assert endpoint_name("GET", "orders/fc-1") == "GET orders/{id}"
    assert endpoint_name("GET", "orders") == "GET orders"
    assert endpoint_name("POST", "tokenize?mid=x&environment=secret") == "POST tokenize"


@pytest.fixture
def queued(payer, billing, django_capture_on_commit_callbacks) -> FlexChargeOrder:
    with django_capture_on_commit_callbacks(execute=False):
        return services.evaluate_declined_payment(
            make_payment(), card=make_vaulted(), payer=payer, billing=billing
        )


def test_each_exchange_is_a_span_with_endpoint_status_attempt_and_account(mocked, queued, spans):
    before = total("flexcharge.retries", **{"flexcharge.endpoint": "POST evaluate"})
    mocked.add(responses.POST, API + "evaluate", status=503, json={"title": "down"})
    assert send_evaluation(queued.pk) == "retry"
    mocked.replace(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))
    FlexChargeOrder.objects.filter(pk=queued.pk).update(next_attempt_at=None)
    send_evaluation(queued.pk)
    evaluate = [s for s in spans.get_finished_spans() if s.name == "FlexCharge POST evaluate"]
    assert [
        (s.attributes["flexcharge.attempt"], s.attributes["http.response.status_code"])
        for s in evaluate
    ] == [(1, 503), (2, 200)]
    assert evaluate[0].attributes["flexcharge.account"] == "default"
    assert evaluate[0].status.status_code == trace.StatusCode.ERROR
    assert evaluate[1].status.status_code == trace.StatusCode.UNSET
    token = [s for s in spans.get_finished_spans() if s.name == "FlexCharge POST oauth2/token"]
    assert len(token) == 1
    assert total("flexcharge.retries", **{"flexcharge.endpoint": "POST evaluate"}) == before + 1
    assert total("flexcharge.calls", **{"http.response.status_code": "503"}) >= 1
    durations = [
        p
        for p in points("flexcharge.call.duration")
        if p.attributes["flexcharge.endpoint"] == "POST evaluate"
    ]
    assert durations[0].count >= 2


def test_no_span_holds_card_data_or_credentials(mocked, spans, card, settings):
    mocked.add(
        responses.POST,
        API + "tokenize",
        json={"transaction": {"payment_method": {"token": "vault-1"}}},
    )
    services.vault_card(card)
    secrets = [
        *TEST_PANS,
        *TEST_CVVS,
        settings.FLEXCHARGE_APP_SECRET,
        settings.FLEXCHARGE_TOKENIZATION_KEY,
        "tok-1",
    ]
    for span in spans.get_finished_spans():
        text = repr(dict(span.attributes)) + span.name
        assert not [s for s in secrets if s and s in text], span.name


def test_webhooks_are_spans_and_counted_by_verdict(client, spans):
    make_order("INV-W", Status.PENDING, session_key="fc-w")
    before = total("flexcharge.webhooks", **{"flexcharge.webhook.verdict": "applied"})
    refused_before = total("flexcharge.webhooks", **{"flexcharge.webhook.verdict": "refused"})
    body, headers = signed_webhook("order.completed", order_id="fc-w", external_order_id="INV-W")
    from django_flexcharge.testing import meta_headers

    response = client.post(
        "/flexcharge/webhook/", data=body, content_type="text/plain", **meta_headers(headers)
    )
    assert response.status_code == 200
    resent = client.post(
        "/flexcharge/webhook/", data=body, content_type="text/plain", **meta_headers(headers)
    )
    assert resent.json()["status"] == "duplicate"  # same nonce and body: a redelivery
    other_body, other_headers = signed_webhook(
        "order.expired", order_id="fc-w", external_order_id="INV-W", nonce=headers["x-fc-nonce"]
    )
    again = client.post(
        "/flexcharge/webhook/",
        data=other_body,
        content_type="text/plain",
        **meta_headers(other_headers),
    )
    assert again.status_code == 401  # the nonce is spent on another body
    (applied, duplicate, refused) = [
        s for s in spans.get_finished_spans() if s.name == "FlexCharge webhook"
    ]
    assert applied.attributes["flexcharge.webhook.verdict"] == "applied"
    assert applied.attributes["flexcharge.webhook.event"] == "order.completed"
    assert duplicate.attributes["flexcharge.webhook.verdict"] == "duplicate"
    assert refused.attributes["flexcharge.webhook.verdict"] == "refused"
    assert total("flexcharge.webhooks", **{"flexcharge.webhook.verdict": "applied"}) == before + 1
    assert (
        total("flexcharge.webhooks", **{"flexcharge.webhook.verdict": "refused"})
        == refused_before + 1
    )


def test_money_recovered_is_counted_per_currency(django_capture_on_commit_callbacks):
    before = total("flexcharge.recovered", currency="JPY")
    make_order("INV-J", Status.PENDING, session_key="fc-j", amount=500000, currency="JPY")
    body, headers = signed_webhook("order.completed", order_id="fc-j", external_order_id="INV-J")
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.receive(body, headers, "testserver")
    assert total("flexcharge.recovered", currency="JPY") == before + 500000


def test_queue_age_is_a_gauge_set_when_health_is_read():
    import datetime as dt

    from django.utils import timezone

    make_order(
        "INV-Q", Status.QUEUED, session_key=None, created=timezone.now() - dt.timedelta(minutes=3)
    )
    health.collect()
    (point,) = [
        p
        for p in points("flexcharge.queue.oldest_age")
        if p.attributes["flexcharge.queue"] == "evaluate"
    ]
    assert 170 < point.value < 200


def test_log_records_carry_structured_fields(mocked, queued, caplog):
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED"))
    with caplog.at_level(logging.INFO, logger="django_flexcharge.attempts"):
        send_evaluation(queued.pk)
    (record,) = [r for r in caplog.records if r.name == "django_flexcharge.attempts"]
    assert record.order_id == queued.order_id
    assert record.endpoint == "POST evaluate"
    assert record.attempt == 1
    assert record.account == "default"
    assert record.http_status == 200
