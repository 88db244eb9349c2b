"""order_state.change_order, the one entry point for a change of an order: each rule of the
transition table, approve-then-refund, the refunded total, history and signals."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from django_flexcharge import signals
from django_flexcharge.models import FlexChargeOrder, StatusChange
from django_flexcharge.order_state import change_order, lock, plan
from django_flexcharge.transitions import ALLOWED
from tests.factories import make_order

Status = FlexChargeOrder.Status
REFUNDS = (Status.REFUNDED, Status.PARTIALLY_REFUNDED)
STATUS_CHANGED = "order_status_changed"
PAIRS = [(a, b) for a in Status.values for b in Status.values]

pytestmark = pytest.mark.django_db


def request(order: FlexChargeOrder, to: str, **kwargs) -> FlexChargeOrder:
    with transaction.atomic():
        return change_order(lock(order), to=to, **kwargs).order


@pytest.mark.parametrize(("current", "target"), [p for p in PAIRS if p[1] not in REFUNDS])
def test_each_status_rule_of_the_table(
    current, target, signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=current, attempts=1)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        change = change_order(lock(order), to=target, values={"last_error": "seen"})

    order.refresh_from_db()
    allowed = target in ALLOWED[current]
    assert change.moved is allowed
    assert order.status == (target if allowed else current)
    # A refused change still stores the caller's fields (the answer is kept).
    assert order.last_error == "seen"
    assert StatusChange.objects.filter(order=order).count() == int(allowed)
    statuses = [kw["order"].status for name, _, kw in signal_log.calls if name == STATUS_CHANGED]
    assert statuses == ([target] if allowed else [])


@pytest.mark.parametrize(("current", "target"), [p for p in PAIRS if p[1] not in REFUNDS])
def test_only_if_changed_saves_nothing_when_the_table_refuses(current, target):
    order = make_order(status=current, attempts=1)

    with transaction.atomic():
        change = change_order(
            lock(order), to=target, values={"last_error": "seen"}, only_if_changed=True
        )

    order.refresh_from_db()
    allowed = target in ALLOWED[current]
    assert change.saved is allowed
    assert (order.last_error == "seen") is allowed


@pytest.mark.parametrize(
    ("current", "attempts", "steps"),
    [
        (Status.PENDING, 1, (Status.APPROVED, Status.REFUNDED)),
        (Status.QUEUED, 1, (Status.APPROVED, Status.REFUNDED)),
        # Never sent: FlexCharge cannot have charged it, so it is not approved.
        (Status.QUEUED, 0, ()),
        (Status.APPROVED, 1, (Status.REFUNDED,)),
        (Status.PARTIALLY_REFUNDED, 1, (Status.REFUNDED,)),
        (Status.FAILED, 1, ()),
        (Status.DECLINED, 1, ()),
        (Status.REFUNDED, 1, ()),
    ],
)
def test_a_refund_approves_first_only_an_order_flexcharge_may_hold(
    current, attempts, steps, signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=current, attempts=attempts, amount=1000)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        change = change_order(lock(order), to=Status.REFUNDED, refunded=1000, refunded_known=True)

    assert change.plan.steps == steps
    heard = [
        (name, kw["order"].status) for name, _, kw in signal_log.calls if name != STATUS_CHANGED
    ]
    expected = {Status.APPROVED: "order_approved", Status.REFUNDED: "order_refunded"}
    # Each signal reads the status of its own step, in order.
    assert heard == [(expected[s], s) for s in steps]


def test_the_refunded_total_never_goes_down_nor_above_the_amount():
    order = make_order(status=Status.PARTIALLY_REFUNDED, amount=1000, refunded_amount=600)

    assert plan(order, refunded=400, refunded_known=True).refunded == 600
    assert plan(order, refunded=5000, refunded_known=True).refunded == 1000
    assert plan(order, refunded=5000).steps == (Status.REFUNDED,)


def test_a_total_flexcharge_states_clears_unknown_and_a_lower_bound_sets_it():
    order = make_order(
        status=Status.PARTIALLY_REFUNDED,
        amount=1000,
        refunded_amount=100,
        refunded_amount_unknown=True,
    )

    known = plan(order, to=Status.REFUNDED, refunded=300, refunded_known=True)
    bound = plan(order, to=Status.REFUNDED, refunded=300, refunded_known=False)
    ours = plan(order, refunded=300)

    assert (known.refunded, known.unknown) == (300, False)
    assert (bound.refunded, bound.unknown) == (300, True)
    assert (ours.refunded, ours.unknown) == (300, True)  # our own refund leaves the flag
    # A lower bound that reaches the amount is the whole amount: nothing left unknown.
    assert plan(order, to=Status.REFUNDED, refunded=1000, refunded_known=False).unknown is False


def test_a_further_partial_refund_is_saved_without_a_signal(
    signal_log, django_capture_on_commit_callbacks
):
    order = make_order(status=Status.PARTIALLY_REFUNDED, amount=1000, refunded_amount=100)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        change = change_order(lock(order), refunded=300, cause="refund")

    order.refresh_from_db()
    assert (order.status, order.refunded_amount) == (Status.PARTIALLY_REFUNDED, 300)
    assert change.moved is False
    assert signal_log.calls == []


def test_our_own_refund_of_nothing_moves_no_status():
    order = make_order(status=Status.APPROVED, amount=1000)

    change = change_order(order.pk, refunded=0)

    assert change.moved is False
    assert change.order.status == Status.APPROVED


def test_a_primary_key_is_locked_in_a_transaction_of_its_own():
    order = make_order(status=Status.PENDING)

    change = change_order(order.pk, to=Status.APPROVED, cause="test")

    order.refresh_from_db()
    assert order.status == Status.APPROVED
    assert StatusChange.objects.get(order=order).cause == "test"
    assert change.order.pk == order.pk


def test_a_rolled_back_change_signals_nothing(signal_log, django_capture_on_commit_callbacks):
    order = make_order(status=Status.PENDING)

    def approve_then_fail() -> None:
        with transaction.atomic():
            change_order(lock(order), to=Status.APPROVED)
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        approve_then_fail()

    order.refresh_from_db()
    assert order.status == Status.PENDING
    assert signal_log.calls == []


# --- no sequence of events leaves the table or refunds more than the amount ---

ACTIONS = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(Status.values)),
    st.tuples(st.just("webhook refund"), st.integers(0, 1500), st.booleans()),
    st.tuples(st.just("our refund"), st.integers(0, 1500)),
    st.tuples(st.just("sync total"), st.integers(0, 1500)),
)


class NoSequenceLeavesTheTable(TestCase):
    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        start=st.sampled_from(Status.values),
        attempts=st.integers(0, 2),
        actions=st.lists(ACTIONS, max_size=8),
    )
    def test_events_refunds_and_cancels(self, start, attempts, actions):
        FlexChargeOrder.objects.all().delete()
        order = make_order(status=start, attempts=attempts, amount=1000)
        seen: list[tuple[str, str]] = []

        def record(sender, order, previous_status, **kwargs):
            seen.append((previous_status, order.status))

        signals.order_status_changed.connect(record)
        try:
            for action in actions:
                with self.captureOnCommitCallbacks(execute=True), transaction.atomic():
                    locked = lock(order)
                    before = locked.refunded_amount
                    if action[0] == "status":
                        change_order(locked, to=action[1])
                    elif action[0] == "webhook refund":
                        change_order(
                            locked, to=Status.REFUNDED, refunded=action[1], refunded_known=action[2]
                        )
                    elif action[0] == "our refund":
                        change_order(locked, refunded=before + action[1])
                    else:
                        change_order(locked, refunded=action[1], refunded_known=True)
                order.refresh_from_db()
                assert 0 <= before <= order.refunded_amount <= order.amount
        finally:
            signals.order_status_changed.disconnect(record)

        for previous, status in seen:
            assert status in ALLOWED[previous], (previous, status)
        history = list(StatusChange.objects.filter(order=order).order_by("pk"))
        assert [(c.previous, c.status) for c in history] == seen
        if history:
            assert history[-1].status == order.status
