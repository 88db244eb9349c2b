"""The Refund form never refunds more than the person saw: raw POSTs (no JavaScript), the
confirmation step, and the order page's own Refund and Cancel buttons."""

from __future__ import annotations

from html import unescape as unescape_html

import pytest
from django.urls import reverse

from django_flexcharge.client import set_client
from django_flexcharge.models import FlexChargeOrder, Refund
from django_flexcharge.testing import FakeFlexChargeClient
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
from tests.factories import numbered_order

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status


@pytest.fixture
def flexcharge() -> FakeFlexChargeClient:
    fake = FakeFlexChargeClient()
    set_client(fake)
    return fake


def change_url(order: FlexChargeOrder, action: str = "change") -> str:
    """The order page, or its ``refund``/``cancel`` page (``<pk>/refund/``)."""
    return reverse(f"admin:django_flexcharge_flexchargeorder_{action}", args=[order.pk])


# ---- a choice and an amount that disagree ---------------------------------


def test_nothing_is_preselected_and_full_shows_the_exact_sum(admin_client, flexcharge) -> None:
    order = numbered_order(Status.PARTIALLY_REFUNDED, amount=2999, refunded_amount=1000)
    html = post_action(admin_client, "refund_orders", [order], index=0).content.decode()
    assert "Full: 19.99 USD" in html
    assert "checked" not in html
    response = refund_form_post(admin_client, [order], {order.pk: {"amount": ""}})
    assert "Choose a full or a partial refund." in response.content.decode()
    assert refunds(flexcharge) == []


def test_full_chosen_with_a_smaller_amount_typed_is_refused_on_the_amount_field(
    admin_client, flexcharge
) -> None:
    # The reported bug: "Full" preselected, 1.00 typed, 29.99 refunded.
    order = numbered_order(Status.APPROVED, amount=2999)
    response = refund_form_post(
        admin_client, [order], {order.pk: {"kind": "full", "amount": "1.00"}}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="flexcharge-refund-errors"' in html
    row = html[html.index(f'id="flexcharge-refund-row-{order.pk}"') :]
    amount_cell = row[: row.index(f'name="refund-{order.pk}-reason"')]
    assert "You chose a full refund (29.99 USD) but typed 1.00 USD." in unescape_html(amount_cell)
    assert refunds(flexcharge) == []
    assert not Refund.objects.exists()


def test_a_raw_confirm_post_with_a_disagreeing_choice_refunds_nothing(
    admin_client, flexcharge
) -> None:
    # No JavaScript, no confirmation page: straight to "confirm" with full + 1.00.
    order = numbered_order(Status.APPROVED, amount=2999)
    data = {
        "confirm": "yes",
        f"refund-{order.pk}-kind": "full",
        f"refund-{order.pk}-amount": "1.00",
        f"refund-{order.pk}-confirmed": "2999",
    }
    response = post_action(admin_client, "refund_orders", [order], **data)
    assert response.status_code == 200
    assert "You chose a full refund (29.99 USD) but typed 1.00 USD." in unescape_html(
        response.content.decode()
    )
    assert refunds(flexcharge) == []


def test_full_with_the_same_amount_typed_is_a_full_refund(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED, amount=2999)
    page = refund_form_post(admin_client, [order], {order.pk: {"kind": "full", "amount": "29.99"}})
    response = confirm(admin_client, page)
    assert response.status_code == 302
    assert refunds(flexcharge) == [(order.order_session_key, 2999, "USD", "")]


def test_the_confirmation_page_states_the_exact_sums_and_sends_nothing(
    admin_client, flexcharge
) -> None:
    usd, jpy = (
        numbered_order(Status.APPROVED, amount=2999),
        numbered_order(Status.APPROVED, amount=5000, currency="JPY"),
    )
    rows = {usd.pk: {"kind": "partial", "amount": "1.00"}, jpy.pk: {"kind": "full"}}
    page = refund_form_post(admin_client, [usd, jpy], rows)
    html = page.content.decode()
    assert page.status_code == 200
    assert "FlexCharge will refund <strong>5000 JPY + 1.00 USD</strong> in total" in html
    assert 'value="Yes, refund 5000 JPY + 1.00 USD"' in html
    row = html[html.index(f'id="flexcharge-refund-confirm-row-{usd.pk}"') :]
    assert "<strong>1.00 USD</strong>" in row[: row.index("</tr>")]
    assert refunds(flexcharge) == []
    response = confirm(admin_client, page)
    assert response.status_code == 302
    assert sorted(refunds(flexcharge)) == sorted(
        [(usd.order_session_key, 100, "USD", ""), (jpy.order_session_key, 5000, "JPY", "")]
    )


def test_a_confirm_post_without_the_confirmed_sum_refunds_nothing(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    data = {"confirm": "yes", f"refund-{order.pk}-kind": "full"}
    response = post_action(admin_client, "refund_orders", [order], **data)
    assert response.status_code == 200
    assert "changed since it was confirmed" in response.content.decode()
    assert refunds(flexcharge) == []


def test_a_full_refund_whose_rest_shrank_after_confirmation_is_not_sent(
    admin_client, flexcharge
) -> None:
    order = numbered_order(Status.APPROVED, amount=2000)
    page = refund_form_post(admin_client, [order], {order.pk: {"kind": "full"}})
    assert "<strong>20.00 USD</strong>" in page.content.decode()
    # A portal refund arrives (webhook) while the page is open.
    FlexChargeOrder.objects.filter(pk=order.pk).update(
        status=Status.PARTIALLY_REFUNDED, refunded_amount=500
    )
    response = confirm(admin_client, page)
    assert response.status_code == 200
    assert "changed since it was confirmed" in response.content.decode()
    assert refunds(flexcharge) == []


# ---- the order page's own buttons -----------------------------------------


def test_the_order_page_offers_refund_for_an_approved_order(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    html = admin_client.get(change_url(order)).content.decode()
    assert f'href="{change_url(order, "refund")}"' in html
    assert 'id="flexcharge-cancel-button"' not in html


def test_the_order_page_offers_cancel_for_a_pending_order(admin_client, flexcharge) -> None:
    order = numbered_order(Status.PENDING)
    html = admin_client.get(change_url(order)).content.decode()
    assert f'href="{change_url(order, "cancel")}"' in html
    assert 'id="flexcharge-refund-button"' not in html


def test_refund_from_the_order_page_uses_the_same_form_and_confirmation(
    admin_client, flexcharge
) -> None:
    order = numbered_order(Status.APPROVED, amount=2999)
    url = change_url(order, "refund")
    form = admin_client.get(url)
    assert 'id="flexcharge-refund-form"' in form.content.decode()
    wrong = refund_form_post(
        admin_client, [order], {order.pk: {"kind": "full", "amount": "1"}}, url
    )
    assert "You chose a full refund" in unescape_html(wrong.content.decode())
    page = refund_form_post(
        admin_client, [order], {order.pk: {"kind": "partial", "amount": "1"}}, url
    )
    response = confirm(admin_client, page, url)
    assert response.status_code == 302
    assert response.url == change_url(order)
    assert refunds(flexcharge) == [(order.order_session_key, 100, "USD", "")]
    assert messages_of(response) == [
        f"{order.order_id}: refunded 1.00 USD; FlexCharge answered SUCCESS - APPROVED."
    ]


def test_cancel_from_the_order_page_asks_first(admin_client, flexcharge) -> None:
    order = numbered_order(Status.PENDING)
    url = change_url(order, "cancel")
    assert 'id="flexcharge-cancel-form"' in admin_client.get(url).content.decode()
    assert cancels(flexcharge) == []
    response = admin_client.post(url, {"apply": "yes"})
    assert response.status_code == 302
    assert cancels(flexcharge) == [order.order_session_key]
    order.refresh_from_db()
    assert order.status == Status.CANCELLED


def test_the_buttons_need_the_action_permissions(django_user_model, flexcharge) -> None:
    approved, pending = numbered_order(Status.APPROVED), numbered_order(Status.PENDING)
    viewer = staff_client(django_user_model, "view_flexchargeorder")
    for order, name in ((approved, "refund"), (pending, "cancel")):
        html = viewer.get(change_url(order)).content.decode()
        assert f'id="flexcharge-{name}-button"' not in html
        assert viewer.get(change_url(order, name)).status_code == 403
        assert viewer.post(change_url(order, name), {"apply": "yes"}).status_code == 403
    refunder = staff_client(django_user_model, "view_flexchargeorder", "refund_flexchargeorder")
    assert 'id="flexcharge-refund-button"' in refunder.get(change_url(approved)).content.decode()
    assert refunder.get(change_url(pending, "cancel")).status_code == 403
    assert refunds(flexcharge) == []
    assert cancels(flexcharge) == []


def test_an_order_with_an_unsettled_refund_says_why_from_its_page(admin_client, flexcharge) -> None:
    order = numbered_order(Status.APPROVED)
    Refund.objects.create(order=order, amount=500, currency="USD", outcome="unconfirmed")
    response = admin_client.get(change_url(order, "refund"))
    assert response.status_code == 302
    [message] = messages_of(response)
    assert "no confirmed answer from FlexCharge" in message
    assert f"flexcharge_sync --order {order.order_id}" in message
    assert refunds(flexcharge) == []
    assert CHANGELIST in response.url


def test_an_unknown_refunded_amount_is_shown_as_such(admin_client) -> None:
    order = numbered_order(
        Status.PARTIALLY_REFUNDED, refunded_amount=500, refunded_amount_unknown=True
    )
    html = admin_client.get(CHANGELIST).content.decode()
    assert "unknown, at least 5.00\u00a0USD (waiting for flexcharge_sync)" in html
    assert order.order_id in html


def test_the_refund_page_of_a_missing_order_is_404(admin_client) -> None:
    url = reverse("admin:django_flexcharge_flexchargeorder_refund", args=[987654])
    assert admin_client.get(url).status_code == 404
