"""Races on PostgreSQL: concurrent webhook deliveries, and refunds and cancels racing webhooks.

Every test here needs real row locks and concurrent connections, so it runs
only on PostgreSQL (``FLEXCHARGE_TEST_DATABASE_URL``); on SQLite it is skipped.
"""

from __future__ import annotations

import datetime as dt
import queue
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from django_flexcharge.client import set_client
from django_flexcharge.exceptions import FlexChargeStateError
from django_flexcharge.models import FlexChargeOrder, Refund, StatusChange, WebhookEvent
from django_flexcharge.services import cancel_order, refund_order
from django_flexcharge.testing import FakeFlexChargeClient, meta_headers, signed_webhook
from tests.factories import make_order
from tests.reliability.conftest import IS_POSTGRES, record

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.postgres,
    pytest.mark.skipif(not IS_POSTGRES, reason="row locks and concurrent connections: PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

Status = FlexChargeOrder.Status
Stored = WebhookEvent.Status
URL = "/flexcharge/webhook/"

ORDERS = 200
DELIVERIES = 1000
SENDERS = 8
#: The event that settles each order, in turn, and the status it must end in.
DECIDING = {
    "order.completed": Status.APPROVED,
    "order.expired": Status.EXPIRED,
    "order.cancelled": Status.CANCELLED,
}
#: Events FlexCharge may send that the app stores and does not act on.
UNHANDLED = ("payment.chargeback.received", "order.capturerequired", "challenge.created")
SPECIFIC = {
    Status.APPROVED: "order_approved",
    Status.EXPIRED: "order_expired",
    Status.CANCELLED: "order_cancelled",
    Status.REFUNDED: "order_refunded",
    Status.PARTIALLY_REFUNDED: "order_refunded",
}


def post(client: Client, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(
        URL, data=body, content_type="text/plain; charset=utf-8", **meta_headers(headers)
    )


def send_all(deliveries: list[tuple[bytes, dict[str, str]]], senders: int) -> list[tuple]:
    """POST every delivery from ``senders`` threads at once; (status code, answer) of each."""
    work: queue.Queue = queue.Queue()
    for index, delivery in enumerate(deliveries):
        work.put((index, delivery))
    answers: list[tuple] = [()] * len(deliveries)
    start = threading.Barrier(senders)
    failures: list[BaseException] = []

    def sender() -> None:
        try:
            client = Client()
            start.wait(30)
            while True:
                try:
                    index, (body, headers) = work.get_nowait()
                except queue.Empty:
                    return
                response = post(client, body, headers)
                answers[index] = (response.status_code, response.json().get("status"))
        except BaseException as err:  # reported by the test, not lost in a thread
            failures.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, name=f"sender-{n}") for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert all(answers), "a sender did not finish"
    return answers


def test_a_thousand_shuffled_deliveries_from_eight_senders_change_each_order_once(
    signal_log, stopwatch
):
    rng = random.Random(20240601)
    orders = [make_order(f"RACE-{i:03d}", session_key=f"fc-race-{i:03d}") for i in range(ORDERS)]
    base = timezone.now() - dt.timedelta(minutes=5)
    expected: dict[str, str] = {}
    deciding: list[dict[str, Any]] = []
    kinds: list[str] = []
    deliveries: list[tuple[bytes, dict[str, str]]] = []

    targets: list[str] = []

    def add(kind: str, event: str, order: FlexChargeOrder, **options: Any) -> None:
        kinds.append(kind)
        targets.append(order.order_id)
        deliveries.append(
            signed_webhook(
                event,
                order_id=options.pop("order_id", order.order_session_key),
                external_order_id=order.order_id,
                **options,
            )
        )

    for i, order in enumerate(orders):
        event = list(DECIDING)[i % 3]
        expected[order.order_id] = DECIDING[event]
        stamp = base + dt.timedelta(milliseconds=i)
        deciding.append({"event": event, "order": order, "timestamp": stamp})
        add("deciding", event, order, timestamp=stamp)
    # 500 more originals the app must not act on, whatever order they arrive in:
    for j in range(500):
        order = orders[j % ORDERS]
        stamp = base + dt.timedelta(seconds=1, milliseconds=j)
        if j < 250:  # events the app stores as ignored
            add("unhandled", UNHANDLED[j % 3], order, timestamp=stamp)
        elif j < 400:  # an OrderId contradicting the order's known FlexCharge id
            event = rng.choice(list(DECIDING))
            add("contradicting", event, order, timestamp=stamp, order_id=f"fc-other-{j}")
        else:  # a live-mode event on a test-mode site
            add("wrong mode", "order.completed", order, timestamp=stamp, is_test_mode=False)
    # 300 redeliveries (30 %) of the deciding events: IsResent, fresh nonce and date, same body.
    for k in range(DELIVERIES - len(deliveries)):
        original = deciding[k % ORDERS]
        add(
            "redelivery",
            original["event"],
            original["order"],
            timestamp=original["timestamp"],
            is_resent=True,
        )
    assert len(deliveries) == DELIVERIES
    # Shuffled, but each order's deliveries stay close together in the queue, so the
    # eight senders take them at the same moment: the contention a lost lock would show in.
    groups: dict[str, list[int]] = {}
    for index, target in enumerate(targets):
        groups.setdefault(target, []).append(index)
    blocks = list(groups.values())
    rng.shuffle(blocks)
    order_of_sending = []
    for block in blocks:
        rng.shuffle(block)
        order_of_sending += block

    answers = send_all([deliveries[i] for i in order_of_sending], SENDERS)
    by_kind: dict[str, Counter] = {}
    for index, answer in zip(order_of_sending, answers, strict=True):
        by_kind.setdefault(kinds[index], Counter())[answer] += 1

    # Per order exactly one delivery applied (the original or one of its redeliveries).
    settling = by_kind["deciding"] + by_kind["redelivery"]
    assert settling == Counter({(200, "applied"): ORDERS, (200, "duplicate"): 300})
    assert by_kind["unhandled"] == Counter({(200, "ignored"): 250})
    assert by_kind["contradicting"] == Counter({(200, "ignored"): 150})
    assert by_kind["wrong mode"] == Counter({(400, "refused"): 100})
    # The right final state for every order, and one transition, one signal pair each.
    final = dict(FlexChargeOrder.objects.values_list("order_id", "status"))
    assert final == expected
    per_order = Counter((order_id, name) for name, order_id, _ in signal_log.calls)
    for order_id, status in expected.items():
        assert per_order[(order_id, "order_status_changed")] == 1, order_id
        assert per_order[(order_id, SPECIFIC[status])] == 1, order_id
    assert len(signal_log.calls) == 2 * ORDERS
    applied = WebhookEvent.objects.filter(status=Stored.APPLIED)
    assert applied.count() == ORDERS
    assert applied.values("order").distinct().count() == ORDERS
    assert WebhookEvent.objects.count() == DELIVERIES  # every signed delivery is stored
    record(
        "races/1000 deliveries over 200 orders, 8 senders",
        deliveries=DELIVERIES,
        redeliveries=300,
        senders=SENDERS,
        applied=ORDERS,
        duplicates_answered=300,
        ignored=400,
        refused_400=100,
        final_states=dict(Counter(final.values())),
        signals=len(signal_log.calls),
        double_transitions=0,
        seconds=stopwatch.seconds,
    )


# --- refunds and cancels racing webhooks ----------------------------------------------------


def webhook_thread(body: bytes, headers: dict[str, str], answers: list) -> threading.Thread:
    def run() -> None:
        try:
            answers.append(post(Client(), body, headers).json()["status"])
        finally:
            connections.close_all()

    return threading.Thread(target=run)


def fire_webhook(mode: str, delivery: tuple[bytes, dict[str, str]], answers: list) -> Callable:
    """A fake FlexCharge answer that sends the webhook of the very action being answered.

    ``before``: the webhook is applied before our answer arrives; ``during``: it is
    in flight while we apply our answer; ``after``: it comes once we are done.
    """
    threads: list[threading.Thread] = []

    def answer(call: Any) -> dict[str, Any]:
        thread = webhook_thread(*delivery, answers)
        threads.append(thread)
        if mode != "after":
            thread.start()
        if mode == "before":
            thread.join(30)
        return {}

    answer.threads = threads  # type: ignore[attr-defined]
    return answer


def finish(answer: Callable, mode: str) -> None:
    for thread in answer.threads:  # type: ignore[attr-defined]
        if mode == "after":
            thread.start()
        thread.join(30)


MODES = ("before", "during", "after")


def test_refunds_racing_their_own_webhook_keep_the_refund_and_one_transition(signal_log):
    fake = FakeFlexChargeClient()
    set_client(fake)
    cases = []
    for i in range(18):
        mode, partial = MODES[i % 3], i % 2 == 1
        order = make_order(f"REF-{i:02d}", Status.APPROVED, session_key=f"fc-ref-{i:02d}")
        amount = 500 if partial else None
        total = "5.00" if partial else "19.99"
        answers: list[str] = []
        delivery = signed_webhook(
            "order.refunded",
            order_id=order.order_session_key,
            external_order_id=order.order_id,
            event_data={"TotalRefundedAmount": total},
        )
        answer = fire_webhook(mode, delivery, answers)

        def refund_answer(call: Any, answer: Callable = answer) -> dict[str, Any]:
            answer(call)
            return {"status": "SUCCESS", "success": True, "responseCode": "0"}

        fake.queue("refund", refund_answer)
        refund = refund_order(order, amount, reason="race")
        finish(answer, mode)
        cases.append((order, partial, mode, refund, answers))

    for order, partial, mode, refund, answers in cases:
        order.refresh_from_db()
        want = Status.PARTIALLY_REFUNDED if partial else Status.REFUNDED
        assert order.status == want, (mode, partial)
        assert order.refunded_amount == (500 if partial else 1999)
        assert list(Refund.objects.filter(order=order).values_list("amount", "outcome")) == [
            (500 if partial else 1999, Refund.Outcome.SUCCEEDED)
        ]
        assert refund.outcome == Refund.Outcome.SUCCEEDED
        changes = [c for c in signal_log.calls if c[1] == order.order_id]
        assert [name for name, _, _ in changes] == ["order_status_changed", "order_refunded"]
        assert answers in (["applied"], ["ignored"]), (mode, answers)


def test_cancels_racing_a_webhook_end_in_one_consistent_state(signal_log):
    fake = FakeFlexChargeClient()
    set_client(fake)
    outcomes: Counter = Counter()
    for i in range(18):
        mode = MODES[i % 3]
        event = "order.cancelled" if i % 2 == 0 else "order.completed"
        order = make_order(f"CAN-{i:02d}", session_key=f"fc-can-{i:02d}")
        answers: list[str] = []
        delivery = signed_webhook(
            event, order_id=order.order_session_key, external_order_id=order.order_id
        )
        answer = fire_webhook(mode, delivery, answers)
        fake.queue("cancel", answer)
        try:
            result = cancel_order(order)
            raised = None
        except FlexChargeStateError as err:
            result, raised = None, err
        finish(answer, mode)

        order.refresh_from_db()
        changes = [name for name, order_id, _ in signal_log.calls if order_id == order.order_id]
        if order.status == Status.APPROVED:
            # FlexCharge rescued it before the cancel landed: the charge stands, the
            # caller is told to refund, and the cancel changed nothing.
            assert event == "order.completed", mode
            assert mode != "after", mode
            assert raised is not None
            assert "Refund it instead" in str(raised)
            assert changes == ["order_status_changed", "order_approved"]
            assert answers == ["applied"]
        else:
            assert not (event == "order.completed" and mode == "before"), "approval lost"
            assert raised is None
            assert result.status == Status.CANCELLED
            assert order.status == Status.CANCELLED
            assert changes == ["order_status_changed", "order_cancelled"]
        assert len(answers) == 1
        assert order.refunds.count() == 0
        outcomes[(event, mode, order.status)] += 1
    assert sum(outcomes.values()) == 18


# --- two different events for one order at once ----------------------------------------------

#: Pairs of rival events; FlexCharge's total in a refund (no sync task needed).
RIVALS = [
    ("order.completed", "order.cancelled"),
    ("order.completed", "order.expired"),
    ("order.expired", "order.cancelled"),
    ("order.completed", "order.refunded"),
]
FULL_REFUND = {"TotalRefundedAmount": 19.99, "Currency": "USD"}


def test_two_different_events_for_one_order_at_once_keep_the_table(signal_log):
    """The conditional UPDATE (pending -> the event's status) racing another one, or the
    careful way (a refund approves first): one winner, one history, one signal per step."""
    pairs = 15  # per kind of rivalry
    # One TimeStamp for both rivals: neither is "older than the last event applied".
    stamp = timezone.now() - dt.timedelta(seconds=5)
    deliveries: list[tuple[bytes, dict[str, str]]] = []
    rivalry: dict[str, tuple[str, str]] = {}
    for r, (first, second) in enumerate(RIVALS):
        for i in range(pairs):
            order = make_order(f"RIVAL-{r}-{i}", session_key=f"fc-rival-{r}-{i}")
            rivalry[order.order_id] = (first, second)
            for event in (first, second) if i % 2 else (second, first):
                data = FULL_REFUND if event == "order.refunded" else None
                deliveries.append(
                    signed_webhook(
                        event,
                        order_id=order.order_session_key,
                        external_order_id=order.order_id,
                        event_data=data,
                        timestamp=stamp,
                    )
                )

    answers = send_all(deliveries, 2)

    assert {answer for answer in answers} <= {(200, "applied"), (200, "ignored")}
    final = dict(FlexChargeOrder.objects.values_list("order_id", "status"))
    history: dict[str, list[tuple[str, str]]] = {}
    for order_id, previous, status in StatusChange.objects.order_by("pk").values_list(
        "order__order_id", "previous", "status"
    ):
        history.setdefault(order_id, []).append((previous, status))
    signalled = Counter((order_id, name) for name, order_id, _ in signal_log.calls)
    for order_id, (_, second) in rivalry.items():
        applied = WebhookEvent.objects.filter(
            order__order_id=order_id, status=Stored.APPLIED
        ).values_list("event", flat=True)
        if second == "order.refunded":
            # Either order of arrival ends refunded, approved exactly once on the way.
            assert final[order_id] == Status.REFUNDED, order_id
            assert history[order_id] == [
                (Status.PENDING, Status.APPROVED),
                (Status.APPROVED, Status.REFUNDED),
            ]
            assert signalled[(order_id, "order_approved")] == 1
            assert signalled[(order_id, "order_refunded")] == 1
            assert "order.refunded" in applied
            continue
        # One of the two moved the order; the other found it decided (stored as ignored).
        assert len(applied) == 1, (order_id, list(applied))
        winner = DECIDING[applied[0]]
        assert final[order_id] == winner
        assert history[order_id] == [(Status.PENDING, winner)]
        assert signalled[(order_id, "order_status_changed")] == 1
        assert signalled[(order_id, SPECIFIC[winner])] == 1
    assert WebhookEvent.objects.count() == len(deliveries)
