"""The emulator's refund knobs (off by default), over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_flexcharge.testing import EmulatorControl
from flexcharge_emulator import Emulator
from tests.emulator_helpers import make_emulator, session_for, submit


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with make_emulator() as emulator:
        yield emulator


def approved_order(emu: Emulator) -> tuple[requests.Session, str, str]:
    """A rescued 19.99 USD order: the session, its id and its refund URL."""
    session = session_for(emu)
    key = submit(emu, session)
    emu.approve(key)
    return session, key, emu.base_url + f"orders/{key}/refund"


def refunded(emu: Emulator, key: str) -> int:
    with emu.state.lock:
        return emu.state.orders[key].refunded


def refund_events(emu: Emulator) -> list[dict[str, Any]]:
    return [e for e in emu.state.events if e["Event"] == "order.refunded"]


def test_knobs_are_off_by_default(emu: Emulator) -> None:
    assert emu.summary()["refund_knobs"] == {
        "declined_in_success": False,
        "lose_answer": "",
        "webhook_amounts": True,
        "webhook_on_partial": False,
        "times": None,
        "used": 0,
    }
    session, _, url = approved_order(emu)
    answer = session.post(url, json={"amountToRefund": 5}).json()
    assert (answer["success"], answer["status"], answer["responseMessage"]) == (
        True,
        "SUCCESS",
        "APPROVED",
    )
    assert refund_events(emu) == []  # a partial refund sends no webhook by default


def test_a_refund_declined_inside_a_success_envelope_refunds_nothing(emu: Emulator) -> None:
    session, key, url = approved_order(emu)
    emu.set_refund_knobs(declined_in_success=True, times=1)

    declined = session.post(url, json={"amountToRefund": 5})

    assert declined.status_code == 200
    body = declined.json()
    assert (body["success"], body["status"], body["responseMessage"]) == (
        True,
        "SUCCESS",
        "DECLINED",
    )
    assert refunded(emu, key) == 0
    assert refund_events(emu) == []
    # times=1: the next refund is answered as usual.
    assert session.post(url, json={"amountToRefund": 5}).json()["responseMessage"] == "APPROVED"
    assert refunded(emu, key) == 500


def test_a_lost_answer_504_comes_after_the_refund_was_applied(emu: Emulator) -> None:
    session, key, url = approved_order(emu)
    emu.set_refund_knobs(lose_answer="504")

    assert session.post(url, json={"amountToRefund": 5}).status_code == 504
    assert refunded(emu, key) == 500


def test_a_dropped_answer_closes_the_connection_after_the_refund(emu: Emulator) -> None:
    session, key, url = approved_order(emu)
    emu.set_refund_knobs(lose_answer="drop")

    with pytest.raises(requests.ConnectionError):
        session.post(url, json={"amountToRefund": 5})
    assert refunded(emu, key) == 500
    assert session_for(emu).get(emu.base_url + f"orders/{key}").json()["refundedAmount"] == 500


def test_refund_webhooks_without_amounts_and_on_partial_refunds(emu: Emulator) -> None:
    session, key, url = approved_order(emu)
    emu.set_refund_knobs(webhook_amounts=False, webhook_on_partial=True)

    session.post(url, json={"amountToRefund": 5})

    [event] = refund_events(emu)
    assert (event["OrderId"], event["EventData"]) == (key, None)


def test_a_portal_refund_sends_order_refunded_without_an_api_call(emu: Emulator) -> None:
    _, key, _ = approved_order(emu)

    order = emu.portal_refund(key, 500)

    assert (order["status"], order["refundedAmount"]) == (7, 500)
    [event] = refund_events(emu)
    assert event["EventData"]["TotalRefundedAmount"] == 5.0
    with pytest.raises(ValueError, match="amount must be"):
        emu.portal_refund(key, 1500)


def test_refund_knobs_over_the_control_plane(emu: Emulator) -> None:
    _, key, _ = approved_order(emu)
    control = EmulatorControl.of(emu)

    knobs = control.post("refunds", json={"lose_answer": "504", "times": 2})
    assert (knobs.status_code, knobs.json()["lose_answer"], knobs.json()["times"]) == (
        200,
        "504",
        2,
    )
    assert control.post("refunds", json={"lose_answer": "later"}).status_code == 400
    assert control.post("refunds", json={"bogus": True}).status_code == 400
    portal = control.post(f"orders/{key}/refund", json={"amount": 300})
    assert portal.json()["refundedAmount"] == 300
    assert control.post(f"orders/{key}/refund", json={"amount": 0}).status_code == 409
    assert control.post("orders/nope/refund", json={"amount": 1}).status_code == 404
    control.post("reset")
    assert emu.summary()["refund_knobs"]["lose_answer"] == ""
