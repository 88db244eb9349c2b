"""The example site's FlexCharge flows end to end, over real HTTP.

A customer signs up and checks out through the site's forms; the renewal runs
as the renewal command runs it; a real ``db_worker`` sends ``/transmit`` and
``/evaluate`` to the emulator; the emulator's signed webhooks come back to the
site's webhook view; a staff user refunds and cancels through the Django
admin's own forms. See ``conftest.py`` for the stack.
"""

from __future__ import annotations

import json

import pytest

from .stack import EXPIRE_DELAY, PLAN_PRICE, TIMEOUT, Stack, form_with, page_messages

pytestmark = pytest.mark.e2e

#: Approved at checkout and at renewal (the fake processor, shop/processor.py).
GOOD_CARD = "4111111111111111"
#: Approved at checkout; renewals decline; the emulator rescues it (when told to, here).
RESCUED_CARD = "4000002760003184"
#: Approved at checkout; renewals decline; the emulator lets it expire.
EXPIRING_CARD = "4000300011112220"


def test_checkout_vaults_the_card_and_copies_the_approval(stack: Stack) -> None:
    customer = stack.subscribe(GOOD_CARD)

    card = stack.one(
        "SELECT v.* FROM django_flexcharge_vaultedcard v JOIN auth_user u ON u.id = v.customer_id "
        "WHERE u.username = ?",
        customer.username,
    )
    assert card is not None, "no VaultedCard for the customer"
    assert (card["last4"], card["bin"], card["exp_month"]) == ("1111", "411111", 9)
    subscription = stack.subscription(customer.subscription_id)
    assert subscription["card_id"] == card["id"]
    assert subscription["status"] == "active"
    # The emulator's vault holds the token the site stored (and only card metadata).
    entry = stack.emu.state.tokens.get(card["token"])
    assert entry is not None, "the token is not in the emulator's vault"
    assert entry.last_four == "1111"
    assert GOOD_CARD.startswith(entry.first_six)

    # The approval is copied to FlexCharge by the worker, after the checkout returned.
    transmit = stack.wait(
        lambda: stack.transmit(customer.checkout_order_id),
        f"/transmit of {customer.checkout_order_id} at the emulator",
    )
    assert transmit["isDeclined"] is False
    assert transmit["transaction"]["amount"] == PLAN_PRICE
    row = stack.wait(
        lambda: stack.one(
            "SELECT * FROM django_flexcharge_transmission WHERE order_id = ? AND status = 'sent'",
            customer.checkout_order_id,
        ),
        "the Transmission row to be marked sent",
    )
    assert row["attempts"] == 1

    # The PAN went to /tokenize and nowhere else: not the database file, not
    # the processes' logs, not the copy of the approval.
    pan = GOOD_CARD.encode()
    for path in stack.workdir.iterdir():
        if path.is_file():
            assert pan not in path.read_bytes(), f"the card number is in {path.name}"
    assert GOOD_CARD not in json.dumps(transmit)


def test_declined_renewal_is_rescued_by_webhook(stack: Stack) -> None:
    customer = stack.subscribe(RESCUED_CARD)
    outcome, order_id = stack.renew(customer)
    assert outcome == "rescue_pending"
    assert stack.charge(order_id)["status"] == "declined"

    # The worker sends /evaluate; FlexCharge's answer makes the order pending.
    order = stack.wait(
        lambda: stack.order_in(order_id, "pending"), f"order {order_id} to become pending"
    )
    key = order["order_session_key"]
    assert key, "a pending order has FlexCharge's order id"
    held = stack.emu.state.orders[key]
    assert (held.external_order_id, held.amount, held.is_mit) == (order_id, PLAN_PRICE, True)
    assert stack.subscription(customer.subscription_id)["status"] == "rescue_pending"
    account = customer.http.get(stack.url + "/account/", timeout=10)
    assert "rescue pending" in account.text.lower()

    stack.emu.approve(key)  # FlexCharge collects the payment: order.completed

    stack.wait(lambda: stack.order_in(order_id, "approved"), f"order {order_id} approved")
    # The site's receiver runs once the webhook's transaction has committed.
    stack.wait(
        lambda: stack.subscription_in(customer.subscription_id, "active"),
        "the subscription to be active again",
    )
    charge = stack.charge(order_id)
    assert charge["status"] == "approved"
    assert charge["rescued_at"] is not None
    events = stack.webhook_events(order_id)
    assert [(e["event"], e["status"]) for e in events] == [("order.completed", "applied")]
    delivered = [d for d in stack.emu.state.deliveries if d["order_id"] == key]
    assert [d["status"] for d in delivered] == [200]


def test_declined_renewal_expires_and_the_subscription_is_past_due(stack: Stack) -> None:
    customer = stack.subscribe(EXPIRING_CARD)
    outcome, order_id = stack.renew(customer)
    assert outcome == "rescue_pending"

    # Nobody steers the emulator: it gives up on its own after EXPIRE_DELAY.
    order = stack.wait(
        lambda: stack.order_in(order_id, "expired"),
        f"order {order_id} expired",
        timeout=TIMEOUT + EXPIRE_DELAY,
    )
    assert order["order_session_key"]
    stack.wait(
        lambda: stack.subscription_in(customer.subscription_id, "past_due"),
        "the subscription to be past due",
    )
    assert "window closed" in stack.charge(order_id)["note"]
    events = stack.webhook_events(order_id)
    assert [(e["event"], e["status"]) for e in events] == [("order.expired", "applied")]


def test_admin_partial_refund_reaches_flexcharge(stack: Stack) -> None:
    _, order = stack.declined_renewal(RESCUED_CARD)
    order_id, key = order["order_id"], order["order_session_key"]
    stack.emu.approve(key)
    stack.wait(lambda: stack.order_in(order_id, "approved"), f"order {order_id} approved")

    admin = stack.admin()
    form, url = stack.admin_action(admin, order_id, "refund_orders")
    prefix = f"refund-{order['id']}"
    answer = admin.post(
        url,
        data=form.data(
            submit="apply",
            **{
                f"{prefix}-kind": "partial",
                f"{prefix}-amount": "5.00",
                f"{prefix}-reason": "Goodwill: outage",
            },
        ),
        timeout=30,
    )
    # The confirmation page states the exact sum; nothing is sent before "Yes".
    assert "FlexCharge will refund <strong>5.00 USD</strong> in total" in answer.text
    assert stack.emulator_records("refunds", key) == []
    confirm = form_with(answer.text, "confirm")
    answer = admin.post(confirm.target(answer.url), data=confirm.data(submit="confirm"), timeout=30)

    assert answer.status_code == 200
    assert page_messages(answer.text) == [
        f"{order_id}: refunded 5.00 USD; FlexCharge answered SUCCESS - APPROVED."
    ]
    assert stack.emulator_records("refunds", key) == [
        {"order_id": key, "amount": 500, "message": "Goodwill: outage", "status": "SUCCESS"}
    ]
    after = stack.order(order_id)
    assert after is not None
    assert (after["status"], after["refunded_amount"]) == ("partially_refunded", 500)
    refund = stack.one(
        "SELECT r.amount, r.outcome, r.reason, u.username FROM django_flexcharge_refund r "
        "JOIN auth_user u ON u.id = r.requested_by_id WHERE r.order_id = ?",
        order["id"],
    )
    assert refund == {
        "amount": 500,
        "outcome": "succeeded",
        "reason": "Goodwill: outage",
        "username": "e2e-admin",
    }


def test_admin_cancel_stops_the_rescue(stack: Stack) -> None:
    customer, order = stack.declined_renewal(RESCUED_CARD)
    order_id, key = order["order_id"], order["order_session_key"]

    admin = stack.admin()
    form, url = stack.admin_action(admin, order_id, "cancel_orders")
    assert form.values("_selected_action") == [str(order["id"])]
    answer = admin.post(url, data=form.data(submit="apply"), timeout=30)

    assert answer.status_code == 200
    assert f"{order_id}: FlexCharge accepted the cancel" in " ".join(page_messages(answer.text))
    assert [c["result"] for c in stack.emulator_records("cancels", key)] == ["cancelled"]
    assert stack.order_in(order_id, "cancelled")
    # The customer is not charged by a late rescue, so the site ends the subscription.
    stack.wait(
        lambda: stack.subscription_in(customer.subscription_id, "cancelled"),
        "the subscription to be cancelled",
    )
    # FlexCharge confirms with order.cancelled, answered 200 and stored. The
    # admin's cancel and the webhook race: whichever is first cancels the
    # order, the other finds nothing left to change.
    events = stack.wait(
        lambda: stack.webhook_events(order_id), f"the order.cancelled webhook of {order_id}"
    )
    assert [e["event"] for e in events] == ["order.cancelled"]
    assert (events[0]["status"], events[0]["error"]) in (
        ("applied", ""),
        ("ignored", "order is already cancelled"),
    )
    assert stack.order_in(order_id, "cancelled")
