"""The lifecycle against the local emulator over real HTTP: its validation mirrors the sandbox's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from django_flexcharge.models import FlexChargeOrder, Transmission
from django_flexcharge.services import (
    cancel_order,
    evaluate_declined_payment,
    refund_order,
    sync_order,
    transmit_approved_payment,
    vault_card,
)
from flexcharge_emulator import Emulator
from tests.conftest import make_payment
from tests.factories import site_emulator_config

pytestmark = pytest.mark.django_db

Status = FlexChargeOrder.Status


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    config = site_emulator_config(
        webhook_url=None,
        rescue_delay=None,
        expire_delay=None,
    )
    with Emulator(config) as emu, override_settings(FLEXCHARGE_API_URL=emu.base_url):
        yield emu


def test_vault_evaluate_rescue_sync_and_refund(
    emulator, card, payer, billing, subscription, django_capture_on_commit_callbacks
):
    vaulted = vault_card(card, email=payer.email)
    with django_capture_on_commit_callbacks(execute=True):
        order = evaluate_declined_payment(
            make_payment(), card=vaulted, payer=payer, billing=billing, subscription=subscription
        )
    order.refresh_from_db()
    assert order.status == Status.PENDING, order.last_error
    emulator.approve(order.order_session_key)
    assert sync_order(order).status == Status.APPROVED
    refund = refund_order(order, 500, reason="goodwill")
    assert refund.outcome == "succeeded"
    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 500)


def test_transmit_and_cancel_are_accepted(
    emulator, card, payer, billing, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        row = transmit_approved_payment(make_payment("INV-A"), card=card, payer=payer)
        order = evaluate_declined_payment(
            make_payment("INV-B"), card=vault_card(card), payer=payer, billing=billing
        )
    row.refresh_from_db()
    assert row.status == Transmission.Status.SENT, row.last_error
    order.refresh_from_db()
    assert cancel_order(order).status == Status.CANCELLED
    assert sync_order(order).status == Status.CANCELLED


def test_an_answer_lost_evaluate_is_cancelled_by_an_order_id_with_reserved_characters(
    emulator, card, payer, billing, django_capture_on_commit_callbacks
):
    # FlexCharge created the order but its answer was lost: only our id can cancel it,
    # and it goes in the URL path (orders/INV%2F2026%20%237/external-cancel).
    emulator.set_faults(drop_response_rate=1.0, paths=("/v1/evaluate",), times=1)
    with django_capture_on_commit_callbacks(execute=True):
        order = evaluate_declined_payment(
            make_payment("INV/2026 #7"), card=vault_card(card), payer=payer, billing=billing
        )
    order.refresh_from_db()
    assert (order.status, order.attempts, order.order_session_key) == (Status.QUEUED, 1, None)
    [created] = emulator.state.orders.values()
    assert created.external_order_id == "INV/2026 #7"
    assert cancel_order(order).status == Status.CANCELLED
    assert created.outcome == "CANCELLED"
