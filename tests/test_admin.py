"""The admin: Refund and Cancel actions end to end (fake FlexCharge), permissions, read-only models."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from django_flexcharge import webhooks
from django_flexcharge.client import set_client
from django_flexcharge.exceptions import (
    FlexChargeAPIError,
    FlexChargeServerError,
    FlexChargeTimeout,
)
from django_flexcharge.models import FlexChargeOrder, Refund, WebhookEvent
from django_flexcharge.money import format_amount
from django_flexcharge.testing import Call, FakeFlexChargeClient, webhook_body
from tests.admin_helpers import (
    CHANGELIST,
    cancels,
    confirm,
    messages_of,
    post_action,
    refund_form_post,
    refunds,
    staff_client,
)
from tests.factories import make_event, numbered_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status


@pytest.fixture
def flexcharge() -> FakeFlexChargeClient:
    fake = FakeFlexChargeClient()
    set_client(fake)
    return fake


def refuse(fake: FakeFlexChargeClient, method: str, key: str, exc: Exception) -> None:
    """Make FlexCharge refuse ``method`` for one order and answer the others as usual."""

    def answer(call: Call) -> dict:
        if call["order_session_key"] == key:
            raise exc
        return getattr(fake, f"default_{method}")(call)

    fake.set_answer(method, answer)


def refund_step(client: Client, orders: list[FlexChargeOrder], rows: dict[int, dict[str, str]]):
    """Form, then confirmation page, as a person goes through them; stops at an error page."""
    page = refund_form_post(client, orders, rows)
    if 'id="flexcharge-refund-confirm-form"' not in page.content.decode():
        return page
    return confirm(client, page)


# ---- Refund ---------------------------------------------------------------


def test_refund_form_has_one_row_per_refundable_order(admin_client, flexcharge) -> None:
    approved = numbered_order(Status.APPROVED)
    partly = numbered_order(Status.PARTIALLY_REFUNDED, amount=2000, refunded_amount=500)
    pending = numbered_order(Status.PENDING)
    response = post_action(admin_client, "refund_orders", [approved, partly, pending], index=0)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="flexcharge-refund-form"' in html
    assert f'id="flexcharge-refund-row-{approved.pk}"' in html
    assert f'id="flexcharge-refund-row-{partly.pk}"' in html
    assert f'id="flexcharge-refund-row-{pending.pk}"' not in html
    assert f'name="refund-{partly.pk}-amount"' in html
    assert "15.00 USD" in html  # the refundable rest of the partly refunded order
    assert f"{pending.order_id} skipped: it is pending" in " ".join(messages_of(response))
    assert refunds(flexcharge) == []


def test_refund_form_skips_orders_with_unsettled_refunds_in_one_query(
    admin_client, flexcharge, django_assert_max_num_queries
) -> None:
    waiting = numbered_order(Status.APPROVED, amount=2000)
    Refund.objects.create(order=waiting, amount=1500, currency="USD", outcome="unconfirmed")
    refused_before = numbered_order(Status.APPROVED, amount=1000)
    Refund.objects.create(order=refused_before, amount=300, currency="USD", outcome="failed")
    more = [numbered_order(Status.APPROVED) for _ in range(5)]
    with django_assert_max_num_queries(14) as few:
        post_action(admin_client, "refund_orders", [waiting, refused_before], index=0)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = post_action(
            admin_client, "refund_orders", [waiting, refused_before, *more], index=0
        )
    html = response.content.decode()
    assert f'id="flexcharge-refund-row-{waiting.pk}"' not in html
    assert f'id="flexcharge-refund-row-{refused_before.pk}"' in html  # a failed one blocks nothing
    [message] = messages_of(response)
    assert message.startswith(f"{waiting.order_id} skipped: Order {waiting.order_id}: ")
    assert "the refund of 15.00 USD sent" in message
    assert f"manage.py flexcharge_sync --order {waiting.order_id}" in message


def test_full_refund(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    response = refund_step(admin_client, [order], {order.pk: {"kind": "full", "reason": "asked"}})
    assert response.status_code == 302
    assert refunds(flexcharge) == [(order.order_session_key, 1999, "USD", "asked")]
    order.refresh_from_db()
    assert order.status == Status.REFUNDED
    assert messages_of(response) == [
        f"{order.order_id}: refunded 19.99 USD; FlexCharge answered SUCCESS - APPROVED."
    ]
    refund = Refund.objects.get()
    assert refund.outcome == Refund.Outcome.SUCCEEDED
    assert refund.reason == "asked"


def test_partial_refund(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    response = refund_step(admin_client, [order], {order.pk: {"kind": "partial", "amount": "5.5"}})
    assert response.status_code == 302
    assert refunds(flexcharge) == [(order.order_session_key, 550, "USD", "")]
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 550)
    assert messages_of(response) == [
        f"{order.order_id}: refunded 5.50 USD; FlexCharge answered SUCCESS - APPROVED."
    ]


@pytest.mark.parametrize(
    ("currency", "amount", "typed", "error"),
    [
        ("USD", 1999, "20.00", "20.00 USD is more than the refundable rest, 19.99 USD."),
        ("USD", 1999, "5.001", "USD allows at most 2 decimal places."),
        ("JPY", 5000, "10.5", "JPY has no minor units: enter a whole amount."),
        ("JPY", 5000, "5001", "5001 JPY is more than the refundable rest, 5000 JPY."),
        ("KWD", 1000, "0.0001", "KWD allows at most 3 decimal places."),
        ("USD", 1999, "", "Enter the amount to refund."),
        ("USD", 1999, "0", "Enter an amount greater than zero."),
        ("USD", 1999, "-1", "Enter an amount greater than zero."),
        ("USD", 1999, "ten", "Enter a number."),
    ],
)
def test_partial_refund_validation(
    admin_client, flexcharge, currency, amount, typed, error
) -> None:
    order = numbered_order(Status.APPROVED, currency=currency, amount=amount)
    response = refund_step(admin_client, [order], {order.pk: {"kind": "partial", "amount": typed}})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert 'id="flexcharge-refund-form"' in response.content.decode()
    assert 'id="flexcharge-refund-errors"' in response.content.decode()
    assert refunds(flexcharge) == []
    assert not Refund.objects.exists()


def test_jpy_whole_amount_is_refunded_in_yen(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED, currency="JPY", amount=5000)
    response = refund_step(admin_client, [order], {order.pk: {"kind": "partial", "amount": "1200"}})
    assert response.status_code == 302
    assert refunds(flexcharge) == [(order.order_session_key, 1200, "JPY", "")]
    assert messages_of(response) == [
        f"{order.order_id}: refunded 1200 JPY; FlexCharge answered SUCCESS - APPROVED."
    ]


def test_refund_over_the_rest_of_a_partly_refunded_order(admin_client, flexcharge) -> None:
    order = numbered_order(Status.PARTIALLY_REFUNDED, amount=2000, refunded_amount=1500)
    response = refund_step(admin_client, [order], {order.pk: {"kind": "partial", "amount": "5.01"}})
    assert "5.01 USD is more than the refundable rest, 5.00 USD." in response.content.decode()
    assert refunds(flexcharge) == []


def test_one_invalid_row_refunds_nothing(admin_client, flexcharge) -> None:
    good, bad = numbered_order(Status.APPROVED), numbered_order(Status.APPROVED)
    rows = {good.pk: {"kind": "full"}, bad.pk: {"kind": "partial", "amount": "99"}}
    response = refund_step(admin_client, [good, bad], rows)
    assert response.status_code == 200
    assert refunds(flexcharge) == []


def test_only_non_approved_orders_selected(admin_client, flexcharge) -> None:
    orders = [numbered_order(Status.PENDING), numbered_order(Status.REFUNDED, refunded_amount=1999)]
    response = post_action(admin_client, "refund_orders", orders, index=0)
    assert response.status_code == 302
    assert messages_of(response) == [
        f"{orders[0].order_id} skipped: it is pending; only approved orders can be refunded.",
        f"{orders[1].order_id} skipped: it is refunded; only approved orders can be refunded.",
    ]
    assert refunds(flexcharge) == []


def test_order_that_changed_state_before_apply_is_skipped(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    FlexChargeOrder.objects.filter(pk=order.pk).update(status=Status.REFUNDED, refunded_amount=1999)
    response = refund_step(admin_client, [order], {})
    assert response.status_code == 302
    assert "skipped: it is refunded" in messages_of(response)[0]
    assert refunds(flexcharge) == []


def test_flexcharge_refusal_is_reported_per_order(admin_client, flexcharge) -> None:
    refused, fine = numbered_order(Status.APPROVED), numbered_order(Status.APPROVED)
    refuse(
        flexcharge,
        "refund",
        refused.order_session_key,
        FlexChargeAPIError(
            "Amount to refund (19.99) is greater than maximum refund amount in (0.00))",
            status=200,
            code="2001",
            response={"status": "FAILED", "responseCode": "2001"},
        ),
    )
    response = refund_step(admin_client, [refused, fine], {})
    assert response.status_code == 302
    first, second = messages_of(response)
    assert first.startswith(f"{refused.order_id}: FlexCharge refused the refund: Amount to refund")
    assert "code 2001" in first
    assert second == f"{fine.order_id}: refunded 19.99 USD; FlexCharge answered SUCCESS - APPROVED."
    assert Refund.objects.get(order=refused).outcome == Refund.Outcome.FAILED
    refused.refresh_from_db()
    assert refused.status == Status.APPROVED


# ---- Cancel ---------------------------------------------------------------


def test_cancel_confirmation_lists_pending_orders_only(admin_client, flexcharge) -> None:
    pending, approved = numbered_order(Status.PENDING), numbered_order(Status.APPROVED)
    response = post_action(admin_client, "cancel_orders", [pending, approved], index=0)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="flexcharge-cancel-form"' in html
    assert f'id="flexcharge-cancel-row-{pending.pk}"' in html
    assert f'id="flexcharge-cancel-row-{approved.pk}"' not in html
    assert messages_of(response) == [
        f"{approved.order_id} skipped: it is approved; only pending orders can be cancelled."
    ]
    assert cancels(flexcharge) == []


def test_cancel_applies_per_order(admin_client, flexcharge) -> None:
    first, second = numbered_order(Status.PENDING), numbered_order(Status.PENDING)
    response = post_action(admin_client, "cancel_orders", [first, second], apply="yes")
    assert response.status_code == 302
    assert cancels(flexcharge) == [first.order_session_key, second.order_session_key]
    assert set(FlexChargeOrder.objects.values_list("status", flat=True)) == {Status.CANCELLED}
    assert messages_of(response) == [
        f"{first.order_id}: FlexCharge accepted the cancel; the order is now cancelled.",
        f"{second.order_id}: FlexCharge accepted the cancel; the order is now cancelled.",
    ]


def test_cancel_with_no_pending_order(admin_client, flexcharge) -> None:
    order = numbered_order(Status.EXPIRED)
    response = post_action(admin_client, "cancel_orders", [order], index=0)
    assert response.status_code == 302
    assert messages_of(response) == [
        f"{order.order_id} skipped: it is expired; only pending orders can be cancelled."
    ]
    assert cancels(flexcharge) == []


def test_cancel_refusal_is_reported(admin_client, flexcharge) -> None:
    order = numbered_order(Status.PENDING)
    refuse(
        flexcharge,
        "cancel",
        order.order_session_key,
        FlexChargeAPIError("Order is completed", status=400),
    )
    response = post_action(admin_client, "cancel_orders", [order], apply="yes")
    assert messages_of(response) == [
        f"{order.order_id}: FlexCharge refused the cancel: Order is completed | HTTP 400"
    ]
    order.refresh_from_db()
    assert order.status == Status.PENDING


def test_a_cancel_without_an_answer_is_a_warning_not_a_refusal(admin_client, flexcharge) -> None:
    # FlexChargeTimeout.outcome_unknown: the cancel may have reached FlexCharge.
    order = numbered_order(Status.PENDING)
    refuse(flexcharge, "cancel", order.order_session_key, FlexChargeTimeout("no answer"))
    response = post_action(admin_client, "cancel_orders", [order], apply="yes")
    [message] = list(get_messages(response.wsgi_request))
    assert message.level_tag == "warning"
    assert str(message).startswith(f"{order.order_id}: no confirmed answer from FlexCharge.")
    order.refresh_from_db()
    assert order.status == Status.PENDING


# ---- Permissions and CSRF -------------------------------------------------


def action_names(client: Client) -> set[str]:
    if not FlexChargeOrder.objects.exists():
        numbered_order(Status.APPROVED)  # the admin shows no action menu on an empty list
    html = client.get(CHANGELIST).content.decode()
    return set(re.findall(r'<option value="(\w+)">', html))


def test_staff_without_custom_permissions_sees_no_actions(django_user_model, flexcharge) -> None:
    client = staff_client(django_user_model, "view_flexchargeorder")
    assert action_names(client).isdisjoint({"refund_orders", "cancel_orders"})


def test_each_action_follows_its_permission(django_user_model, flexcharge) -> None:
    refunder = staff_client(django_user_model, "view_flexchargeorder", "refund_flexchargeorder")
    canceller = staff_client(django_user_model, "view_flexchargeorder", "cancel_flexchargeorder")
    assert "refund_orders" in action_names(refunder)
    assert "cancel_orders" not in action_names(refunder)
    assert "cancel_orders" in action_names(canceller)
    assert "refund_orders" not in action_names(canceller)


def test_post_of_a_hidden_action_is_refused(django_user_model, flexcharge) -> None:
    client = staff_client(django_user_model, "view_flexchargeorder", "cancel_flexchargeorder")
    approved, pending = numbered_order(Status.APPROVED), numbered_order(Status.PENDING)
    first = post_action(client, "refund_orders", [approved], index=0)
    assert b"flexcharge-refund-form" not in first.content
    refund_step(client, [approved], {})
    assert refunds(flexcharge) == []
    assert not Refund.objects.exists()
    view_only = staff_client(django_user_model, "view_flexchargeorder")
    post_action(view_only, "cancel_orders", [pending], apply="yes")
    assert cancels(flexcharge) == []


def test_action_post_needs_a_csrf_token(admin_user, flexcharge) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    order = numbered_order(Status.APPROVED)
    response = refund_step(client, [order], {})
    assert response.status_code == 403
    assert refunds(flexcharge) == []


# ---- Order admin pages ----------------------------------------------------


def test_changelist_columns_and_search(admin_client) -> None:
    order = numbered_order(Status.APPROVED, email="jane@example.com", amount=1999)
    other = numbered_order(Status.APPROVED, email="joe@example.com")
    html = admin_client.get(CHANGELIST).content.decode()
    assert "19.99 USD" in html
    assert "jane@example.com" in html
    for term in (order.order_id, order.order_session_key, "jane@"):
        found = admin_client.get(CHANGELIST, {"q": term}).content.decode()
        assert f">{order.order_id}<" in found
        assert f">{other.order_id}<" not in found


def test_changelist_filters_by_status(admin_client) -> None:
    pending, approved = numbered_order(Status.PENDING), numbered_order(Status.APPROVED)
    html = admin_client.get(CHANGELIST, {"status__exact": "pending"}).content.decode()
    assert f">{pending.order_id}<" in html
    assert f">{approved.order_id}<" not in html


def test_order_page_is_read_only_with_refunds_and_events(admin_client) -> None:
    order = numbered_order(Status.APPROVED)
    Refund.objects.create(order=order, amount=100, currency="USD", outcome="succeeded")
    WebhookEvent.objects.create(event="order.completed", order=order, nonce="n-1", body="{}")
    html = admin_client.get(
        reverse("admin:django_flexcharge_flexchargeorder_change", args=[order.pk])
    ).content.decode()
    assert 'name="_save"' not in html
    assert 'name="amount"' not in html
    assert "1.00 USD" in html  # the refund inline
    assert "order.completed" in html  # the event inline
    add = reverse("admin:django_flexcharge_flexchargeorder_add")
    assert admin_client.get(add).status_code == 403


@pytest.mark.parametrize("model", ["refund", "vaultedcard", "transmission", "webhookevent"])
def test_audit_models_are_read_only_even_for_superusers(admin_client, model) -> None:
    assert admin_client.get(f"/admin/django_flexcharge/{model}/").status_code == 200
    assert admin_client.get(f"/admin/django_flexcharge/{model}/add/").status_code == 403
    assert (
        "delete_selected"
        not in admin_client.get(f"/admin/django_flexcharge/{model}/").content.decode()
    )


def test_refund_cannot_be_deleted_by_a_superuser(admin_client) -> None:
    refund = Refund.objects.create(
        order=numbered_order(Status.APPROVED), amount=100, currency="USD"
    )
    url = reverse("admin:django_flexcharge_refund_delete", args=[refund.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Refund.objects.filter(pk=refund.pk).exists()


def test_superuser_sees_both_actions(admin_client) -> None:
    assert {"refund_orders", "cancel_orders"} <= action_names(admin_client)


@pytest.mark.parametrize(
    "error",
    [FlexChargeTimeout("no answer within 30 s"), FlexChargeServerError("bad gateway", status=502)],
)
def test_refund_without_an_answer_is_a_warning_and_blocks_a_second_refund(
    admin_client, flexcharge, error
) -> None:
    order = numbered_order(Status.APPROVED)
    flexcharge.queue("refund", error)
    response = refund_step(admin_client, [order], {})
    [message] = list(get_messages(response.wsgi_request))
    assert message.level_tag == "warning"
    assert str(message).startswith(f"{order.order_id}: no confirmed answer from FlexCharge.")
    assert "may have been paid out" in str(message)
    assert str(error) in str(message)
    assert Refund.objects.get().outcome == Refund.Outcome.UNCONFIRMED
    # The unconfirmed refund blocks the order: a second try is refused up front.
    again = post_action(admin_client, "refund_orders", [order], index=0)
    assert again.status_code == 302
    assert "no confirmed answer from FlexCharge" in messages_of(again)[-1]
    assert len(flexcharge.calls_to("refund")) == 1


def test_a_refund_declined_inside_a_success_envelope_is_an_error(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    answer = {"success": True, "status": "SUCCESS", "responseCode": "05"}
    flexcharge.queue("refund", {**answer, "responseMessage": "DECLINED", "errors": []})
    response = refund_step(admin_client, [order], {})
    [message] = list(get_messages(response.wsgi_request))
    assert message.level_tag == "error"
    assert str(message).startswith(f"{order.order_id}: FlexCharge refused the refund: DECLINED")
    refund = Refund.objects.get()
    assert (refund.outcome, refund.response_code, refund.response_message) == (
        Refund.Outcome.FAILED,
        "05",
        "DECLINED",
    )
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.APPROVED, 0)


# ---- Webhook events -------------------------------------------------------


def test_reapply_reports_each_event(admin_client, monkeypatch) -> None:
    applied, failing = make_event(), make_event()
    seen = []

    def reapply(event: WebhookEvent, user: object) -> WebhookEvent:
        seen.append((event.pk, user))
        if event.pk == failing.pk:
            event.status, event.error = WebhookEvent.Status.FAILED, "unknown order"
        else:
            event.status = WebhookEvent.Status.APPLIED
        return event

    monkeypatch.setattr(webhooks, "reapply_event", reapply)
    response = admin_client.post(
        "/admin/django_flexcharge/webhookevent/",
        {"action": "reapply_events", "_selected_action": [applied.pk, failing.pk], "index": 0},
    )
    assert response.status_code == 302
    assert [pk for pk, _ in seen] == [applied.pk, failing.pk]
    assert all(getattr(user, "is_superuser", False) for _, user in seen)
    levels = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert levels == [
        ("success", f"order.completed {applied.external_order_id} ({applied.nonce}): applied"),
        (
            "error",
            f"order.completed {failing.external_order_id} ({failing.nonce}): failed: unknown order",
        ),
    ]


def test_reapply_needs_the_change_permission(django_user_model, monkeypatch) -> None:
    monkeypatch.setattr(webhooks, "reapply_event", pytest.fail)
    event = make_event()
    client = staff_client(django_user_model, "view_webhookevent")
    html = client.get("/admin/django_flexcharge/webhookevent/").content.decode()
    assert "reapply_events" not in html
    client.post(
        "/admin/django_flexcharge/webhookevent/",
        {"action": "reapply_events", "_selected_action": [event.pk], "index": 0},
    )
    allowed = staff_client(django_user_model, "view_webhookevent", "change_webhookevent")
    assert (
        "reapply_events" in allowed.get("/admin/django_flexcharge/webhookevent/").content.decode()
    )


def test_audit_pages_show_non_editable_fields(admin_client) -> None:
    refund = Refund.objects.create(
        order=numbered_order(Status.APPROVED),
        amount=100,
        currency="USD",
        response={"status": "SUCCESS"},
    )
    html = admin_client.get(reverse("admin:django_flexcharge_refund_change", args=[refund.pk]))
    text = html.content.decode()
    assert "SUCCESS" in text
    assert "Created:" in text
    assert 'name="_save"' not in text


def test_reapply_moves_the_order_for_real(admin_client) -> None:
    order = numbered_order(Status.PENDING)
    body = webhook_body(
        "order.completed", order_id=order.order_session_key, external_order_id=order.order_id
    )
    event = make_event(
        order_session_key=order.order_session_key,
        external_order_id=order.order_id,
        body=body.decode(),
        error="order not found at delivery",
    )
    response = admin_client.post(
        "/admin/django_flexcharge/webhookevent/",
        {"action": "reapply_events", "_selected_action": [event.pk], "index": 0},
    )
    [message] = list(get_messages(response.wsgi_request))
    assert message.level_tag == "success"
    assert str(message).endswith(": applied")
    order.refresh_from_db()
    event.refresh_from_db()
    assert order.status == Status.APPROVED
    assert event.status == WebhookEvent.Status.APPLIED
    assert event.reapplied_by is not None


def test_a_transmissions_page_lists_each_of_its_calls(admin_client) -> None:
    from django_flexcharge.models import CallAttempt, Transmission

    row = Transmission.objects.create(
        order_id="INV-TX", transaction_id="ch_1", amount=2999, currency="USD", payload={}
    )
    CallAttempt.objects.create(
        transmission=row, endpoint="POST transmit", attempt=1, http_status=503, error="Busy"
    )
    CallAttempt.objects.create(
        transmission=row, endpoint="POST transmit", attempt=2, http_status=200
    )
    url = reverse("admin:django_flexcharge_transmission_change", args=[row.pk])
    html = admin_client.get(url).content.decode()
    assert html.count("field-endpoint") == 2  # one row per call
    assert "POST transmit" in html
    assert "503" in html
    assert "Busy" in html


@pytest.mark.parametrize("page", ["refund", "transmission"])
def test_a_rows_page_shows_its_amount_with_the_currency_not_in_minor_units(
    admin_client, page
) -> None:
    from django_flexcharge.models import Transmission

    if page == "refund":
        row = Refund.objects.create(
            order=numbered_order(Status.APPROVED), amount=1234, currency="USD"
        )
    else:
        row = Transmission.objects.create(
            order_id="INV-AM", transaction_id="ch_2", amount=1234, currency="USD", payload={}
        )
    url = reverse(f"admin:django_flexcharge_{page}_change", args=[row.pk])
    html = admin_client.get(url).content.decode()
    assert format_amount(1234, "USD") in html
    assert "1234" not in html
