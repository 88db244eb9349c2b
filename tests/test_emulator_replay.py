"""The emulator's replay knobs (off by default), and the site surviving both over real HTTP.

``webhook_resend_original_headers``: a redelivery repeats the first attempt's
bytes, nonce and date. ``evaluate_replay_conflict``: an /evaluate replay (same
key, same body) is answered 409 while the order goes on at "FlexCharge".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from django_flexcharge import order_state
from django_flexcharge.evaluations import send_evaluation
from django_flexcharge.models import FlexChargeOrder, WebhookEvent
from django_flexcharge.services import (
    evaluate_declined_payment,
    is_under_rescue,
    sync_order,
    vault_card,
)
from flexcharge_emulator import Emulator, EmulatorConfig
from tests.conftest import make_payment
from tests.emulator_helpers import Receiver, evaluate_body, make_emulator, session_for, submit
from tests.factories import site_emulator_config

Status = FlexChargeOrder.Status


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def headers_of(request: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in request["headers"].items()}


# --- the knobs, against a bare receiver ---


def test_with_the_knob_a_redelivery_repeats_the_original_bytes_and_headers(receiver) -> None:
    receiver.statuses = [500, 502]
    with make_emulator(
        webhook_url=receiver.url, webhook_backoff=0.05, webhook_resend_original_headers=True
    ) as emu:
        emu.approve(submit(emu, session_for(emu)))
        assert emu.flush_webhooks(3)

    assert len(receiver.requests) == 3
    first = receiver.requests[0]
    for again in receiver.requests[1:]:
        assert again["body"] == first["body"]
        for name in ("x-fc-nonce", "x-fc-date", "x-fc-authorization", "x-fc-content-sha512"):
            assert headers_of(again)[name] == headers_of(first)[name]
    assert [p["IsResent"] for p in receiver.payloads()] == [False, False, False]


def test_by_default_a_redelivery_has_a_fresh_nonce(receiver) -> None:
    receiver.statuses = [500]
    with make_emulator(webhook_url=receiver.url, webhook_backoff=0.05) as emu:
        emu.approve(submit(emu, session_for(emu)))
        assert emu.flush_webhooks(3)

    nonces = {headers_of(r)["x-fc-nonce"] for r in receiver.requests}
    assert len(nonces) == 2


@pytest.mark.parametrize(("knob", "answer"), [(False, 200), (True, 409)])
def test_an_evaluate_replay_is_replayed_or_with_the_knob_refused_409(knob, answer) -> None:
    with make_emulator(evaluate_replay_conflict=knob) as emu:
        http = session_for(emu)
        body = evaluate_body()
        first = http.post(emu.base_url + "evaluate", json=body)
        again = http.post(emu.base_url + "evaluate", json=body)

        assert (first.status_code, again.status_code) == (200, answer)
        assert len(emu.state.orders) == 1  # the order exists and goes on either way
        assert emu.state.count_by_idempotency_key("evaluate_replay") == {body["idempotencyKey"]: 1}


def test_the_knobs_are_off_by_default() -> None:
    config = EmulatorConfig()
    assert (config.webhook_resend_original_headers, config.evaluate_replay_conflict) == (
        False,
        False,
    )


# --- the site, over real HTTP ---


def site_emulator(**options: Any) -> Emulator:
    config = site_emulator_config(
        rescue_delay=None,
        expire_delay=None,
        pickup_delay=0.05,
        **options,
    )
    return Emulator(config).start()


@pytest.mark.django_db(transaction=True)
def test_a_resend_with_the_original_headers_after_our_500_is_applied_exactly_once(
    live_server, monkeypatch, signal_log
):
    emu = make_emulator(
        subscriber_key=django_settings.FLEXCHARGE_WEBHOOK_SUBSCRIBER_KEYS[0],
        webhook_url=live_server.url + "/flexcharge/webhook/",
        webhook_backoff=0.2,
        webhook_resend_original_headers=True,
    )
    failures = []
    real = order_state.transition

    def fail_once(*args: Any, **kwargs: Any) -> bool:
        if not failures:
            failures.append(1)
            raise RuntimeError("database hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(order_state, "transition", fail_once)
    try:
        key = submit(emu, session_for(emu))
        order = FlexChargeOrder.objects.create(
            order_id=emu.state.orders[key].external_order_id,
            order_session_key=key,
            amount=1999,
            currency="USD",
            status=Status.PENDING,
        )
        emu.approve(key)
        assert emu.flush_webhooks(10)
    finally:
        emu.stop()

    assert [d["status"] for d in emu.state.deliveries] == [500, 200]
    sent = emu.state.deliveries
    assert sent[0]["headers"]["x-fc-nonce"] == sent[1]["headers"]["x-fc-nonce"]
    assert sent[0]["headers"]["x-fc-date"] == sent[1]["headers"]["x-fc-date"]
    order.refresh_from_db()
    assert order.status == Status.APPROVED
    event = WebhookEvent.objects.get()
    assert (event.status, event.order_id) == (WebhookEvent.Status.APPLIED, order.pk)
    assert signal_log.names() == ["order_status_changed", "order_approved"]


@pytest.mark.django_db
def test_a_409_to_an_evaluate_retry_after_a_lost_answer_leaves_the_order_reconcilable(
    card, payer, billing, django_capture_on_commit_callbacks
):
    emu = site_emulator(webhook_url=None, evaluate_replay_conflict=True)
    try:
        with override_settings(FLEXCHARGE_API_URL=emu.base_url):
            # FlexCharge takes the order; its answer is lost; the retry is answered 409.
            emu.set_faults(drop_response_rate=1.0, paths=("/v1/evaluate",), times=1)
            with django_capture_on_commit_callbacks(execute=True):
                order = evaluate_declined_payment(
                    make_payment("INV-409"), card=vault_card(card), payer=payer, billing=billing
                )
            order.refresh_from_db()
            assert (order.status, order.attempts) == (Status.QUEUED, 1)
            FlexChargeOrder.objects.filter(pk=order.pk).update(next_attempt_at=timezone.now())

            assert send_evaluation(order.pk) == Status.PENDING

            [held] = emu.state.orders.values()
            order.refresh_from_db()
            assert (order.status, order.order_session_key) == (Status.PENDING, held.id)
            assert is_under_rescue("INV-409")
            emu.approve(held.id)
            assert sync_order(order).status == Status.APPROVED
            assert emu.state.count_by_idempotency_key("evaluate") == {held.idempotency_key: 1}
    finally:
        emu.stop()
