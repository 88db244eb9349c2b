"""An order's whole story: attempts stored per call, status changes with their cause, the timeline, the toolbar."""

from __future__ import annotations

import re

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_flexcharge import webhooks
from django_flexcharge.admin.timeline import order_timeline
from django_flexcharge.attempts import scrub
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.models import CallAttempt, FlexChargeOrder, StatusChange
from django_flexcharge.refunds import refund_order
from django_flexcharge.testing import signed_webhook
from tests.conftest import API, make_payment
from tests.factories import evaluate_answer, make_vaulted

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status


@pytest.fixture
def queued(payer, billing, django_capture_on_commit_callbacks) -> FlexChargeOrder:
    from django_flexcharge.services import evaluate_declined_payment

    with django_capture_on_commit_callbacks(execute=False):
        return evaluate_declined_payment(
            make_payment(amount=5000), card=make_vaulted(), payer=payer, billing=billing
        )


def make_due(order: FlexChargeOrder) -> None:
    FlexChargeOrder.objects.filter(pk=order.pk).update(next_attempt_at=None)


@pytest.fixture
def story(mocked, queued, admin_user) -> FlexChargeOrder:
    """A 503, a retry answered SUBMITTED, an order.completed webhook, a partial refund."""
    mocked.add(
        responses.POST,
        API + "evaluate",
        status=503,
        json={"title": "Service Unavailable", "traceId": "00-aaaa-bbbb-01"},
    )
    assert send_evaluation(queued.pk) == "retry"
    mocked.replace(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED", "fc-77"))
    make_due(queued)
    assert send_evaluation(queued.pk) == Status.PENDING
    body, headers = signed_webhook(
        "order.completed", order_id="fc-77", external_order_id=queued.order_id
    )
    assert webhooks.receive(body, headers, "testserver").status == "applied"
    mocked.add(
        responses.POST,
        API + "orders/fc-77/refund",
        json={"success": True, "status": "SUCCESS"},
        headers={"traceparent": "00-refund-trace-01"},
    )
    refund_order(queued, 1500, reason="goodwill", user=admin_user)
    queued.refresh_from_db()
    return queued


def test_each_call_is_stored_with_status_latency_trace_and_attempt(story):
    calls = list(CallAttempt.objects.filter(order=story).order_by("started_at"))
    assert [(c.endpoint, c.attempt, c.http_status) for c in calls] == [
        ("POST evaluate", 1, 503),
        ("POST evaluate", 2, 200),
        ("POST orders/{id}/refund", 1, 200),
    ]
    assert "HTTP 503" in calls[0].error
    assert calls[0].trace_id == "00-aaaa-bbbb-01"
    assert calls[1].error == ""
    assert calls[2].trace_id == "00-refund-trace-01"
    assert calls[2].refund is not None
    assert calls[2].refund.amount == 1500
    assert all(c.latency_ms >= 0 for c in calls)


def test_status_changes_record_what_caused_them(story, admin_user):
    changes = list(StatusChange.objects.filter(order=story))
    assert [(c.previous, c.status) for c in changes] == [
        (Status.QUEUED, Status.PENDING),
        (Status.PENDING, Status.APPROVED),
        (Status.APPROVED, Status.PARTIALLY_REFUNDED),
    ]
    assert changes[0].cause == "/evaluate answered SUBMITTED"
    assert changes[1].cause == "webhook order.completed"
    assert changes[1].event is not None
    assert changes[2].cause == "refund"
    assert changes[2].user == admin_user


def test_the_timeline_tells_the_story_in_order(story, django_assert_num_queries):
    with django_assert_num_queries(4):
        entries = order_timeline(story)
    kinds = [(e.kind, e.badge) for e in entries]
    assert kinds == [
        ("call", "HTTP 503"),
        ("call", "HTTP 200"),
        ("status", "pending"),
        ("webhook", "applied"),
        ("status", "approved"),
        ("refund", "succeeded"),
        ("call", "HTTP 200"),
        ("status", "partially refunded"),
    ]
    assert entries[0].tone == "error"
    assert ("resent", "no") in entries[3].details


def test_the_change_page_shows_the_timeline(story, admin_client):
    url = reverse("admin:django_flexcharge_flexchargeorder_change", args=[story.pk])
    html = admin_client.get(url).content.decode()
    assert 'id="flexcharge-timeline"' in html
    assert html.count('class="fc-entry') == 8
    assert "00-aaaa-bbbb-01" in html
    assert "webhook order.completed" in html
    assert "4111111111111111" not in html


def test_a_failed_call_without_an_answer_is_stored_and_the_order_kept(mocked, queued):
    import requests

    mocked.add(responses.POST, API + "evaluate", body=requests.ConnectionError("refused"))
    assert send_evaluation(queued.pk) == "retry"
    call = CallAttempt.objects.get(order=queued)
    assert call.http_status is None
    assert "could not be reached" in call.error


def test_scrub_removes_card_numbers_tokens_and_secrets():
    text = scrub("card 4111 1111 1111 1111 Bearer abc.def AppSecret=s3cr3t ok 2026")
    assert "4111" not in text
    assert "abc.def" not in text
    assert "s3cr3t" not in text
    assert text.endswith("ok 2026")


# --- the toolbar ---


def staff(with_change: bool) -> User:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_flexchargeorder"))
    if with_change:
        user.user_permissions.add(Permission.objects.get(codename="change_flexchargeorder"))
    return user


def buttons(client, order) -> list[str]:
    url = reverse("admin:django_flexcharge_flexchargeorder_change", args=[order.pk])
    html = client.get(url).content.decode()
    return re.findall(r'id="flexcharge-(\w+)-button"', html)


def test_retry_now_is_offered_for_a_queued_order_and_sends_it(
    client, queued, mocked, django_capture_on_commit_callbacks
):
    FlexChargeOrder.objects.filter(pk=queued.pk).update(attempts=1)
    client.force_login(staff(with_change=True))
    assert buttons(client, queued) == ["retry"]
    mocked.add(responses.POST, API + "evaluate", json=evaluate_answer("SUBMITTED", "fc-9"))
    url = reverse("admin:django_flexcharge_flexchargeorder_retry", args=[queued.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code == 302
    queued.refresh_from_db()
    # The immediate backend ran the task: the retry went out and was answered.
    assert queued.status == Status.PENDING
    assert queued.attempts == 2
    assert buttons(client, queued) == ["sync"]


def test_sync_applies_flexcharges_answer_and_names_the_user(client, mocked):
    from tests.factories import make_order

    order = make_order("INV-S", Status.PENDING, session_key="fc-s")
    user = staff(with_change=True)
    client.force_login(user)
    mocked.add(responses.GET, API + "orders/fc-s", json={"status": 7, "statusName": "Completed"})
    url = reverse("admin:django_flexcharge_flexchargeorder_sync", args=[order.pk])
    response = client.post(url, follow=True)
    assert "now approved" in response.content.decode()
    change = StatusChange.objects.get(order=order)
    assert (change.status, change.cause, change.user) == (
        Status.APPROVED,
        "sync from FlexCharge",
        user,
    )
    assert CallAttempt.objects.get(order=order).endpoint == "GET orders/{id}"


def test_buttons_need_the_change_permission(client, queued):
    client.force_login(staff(with_change=False))
    assert buttons(client, queued) == []
    url = reverse("admin:django_flexcharge_flexchargeorder_retry", args=[queued.pk])
    assert client.post(url).status_code == 403


def test_buttons_refuse_get(admin_client, queued):
    url = reverse("admin:django_flexcharge_flexchargeorder_retry", args=[queued.pk])
    assert admin_client.get(url).status_code == 405


def test_prune_deletes_old_call_attempts_and_keeps_status_changes(story):
    import datetime as dt
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    CallAttempt.objects.filter(endpoint="POST evaluate").update(
        started_at=timezone.now() - dt.timedelta(days=40)
    )
    out = StringIO()
    call_command("flexcharge_prune", "30", stdout=out)
    assert "Deleted 2 call attempts older than 30 days" in out.getvalue()
    assert list(CallAttempt.objects.values_list("endpoint", flat=True)) == [
        "POST orders/{id}/refund"
    ]
    assert StatusChange.objects.filter(order=story).count() == 3
