"""Delivery in batches: one task run claims up to N due rows at once and sends them.

``claim_batch`` takes the lease on up to ``FLEXCHARGE_DELIVERY_BATCH_SIZE``
queued, due, unleased rows in one transaction: on PostgreSQL ``SELECT ...
FOR UPDATE SKIP LOCKED`` then one UPDATE of their lease, so two concurrent
claims never take one row; elsewhere (SQLite: one writer) one conditional
UPDATE on the chosen ids, kept only when it matched every one of them, else
rolled back and the rows claimed one by one. Each row keeps its own
idempotency key, attempt count, back-off and error, and is sent over the
account's one client session (``deliver``). ``/evaluate`` answers are
applied ``APPLY_GROUP`` at a time, in one transaction with the group's call
history; a failed call is handled at once, as a single row's. A ``/transmit``
outcome is saved right after its call, because FlexCharge does not
deduplicate ``/transmit``: an outcome saved later would be lost with a
killed worker and the copy sent twice.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from django.db import OperationalError, connections, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from .conf import conf
from .delivery import QUEUED, claim, lease_length

#: Seconds a drain run keeps claiming batches before it hands over to a new run.
DRAIN_BUDGET = 30.0
#: Calls whose answers (``/evaluate``) and call history are saved together, in one
#: transaction: a killed worker leaves at most this many answers to be replayed.
APPLY_GROUP = 10


class _Contended(Exception):
    """Another writer took one of the chosen rows between the SELECT and the UPDATE."""


def _due(model: type[models.Model], now: dt.datetime) -> models.QuerySet[Any]:
    return (
        model._default_manager.filter(status=QUEUED)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    )


def claim_batch(
    model: type[models.Model], size: int, *, now: dt.datetime | None = None
) -> list[Any]:
    """Lease up to ``size`` due rows (oldest first); returns them, ``attempts`` counted."""
    now = now or timezone.now()
    until = now + lease_length()
    using = router.db_for_write(model)
    due = _due(model, now)
    lease = {"locked_until": until, "attempts": F("attempts") + 1}
    rows: list[Any]
    if connections[using].vendor == "postgresql":
        with transaction.atomic(using=using):
            rows = list(due.select_for_update(skip_locked=True).order_by("pk")[:size])
            if rows:
                model._default_manager.filter(pk__in=[r.pk for r in rows]).update(**lease)
    else:
        try:
            with transaction.atomic(using=using):
                rows = list(due.order_by("pk")[:size])
                if rows and due.filter(pk__in=[r.pk for r in rows]).update(**lease) != len(rows):
                    raise _Contended
        except (_Contended, OperationalError):
            # Exact, one row at a time: only the rows whose own claim matched are ours.
            candidates = list(due.order_by("pk")[:size])
            rows = [r for r in candidates if claim(model, r.pk, now=now)]
    for r in rows:
        r.attempts += 1
        r.locked_until = until
    return rows


def lease_covers_a_call(row: Any) -> bool:
    """Whether the slowest call (a token, a send, a 401 and a send again) ends within the lease."""
    connect, read = conf.TIMEOUT
    return bool(timezone.now() + dt.timedelta(seconds=3 * (connect + read)) < row.locked_until)


def hand_back(model: type[models.Model], rows: list[Any]) -> int:
    """Release claimed rows that were not sent (their claim's attempt uncounted); how many."""
    return int(
        model._default_manager.filter(pk__in=[r.pk for r in rows], status=QUEUED).update(
            locked_until=None, attempts=F("attempts") - 1
        )
    )


def _kinds() -> list[tuple[str, type[models.Model]]]:
    from .models import FlexChargeOrder, Transmission

    return [("evaluations", FlexChargeOrder), ("transmissions", Transmission)]


class _Sender:
    """Sends one kind's claimed rows and keeps what is saved per group, not per row.

    ``/evaluate`` answers are applied ``APPLY_GROUP`` at a time in one
    transaction (``tasks.apply_evaluations``), with the group's call history:
    FlexCharge recognises a resent ``/evaluate`` by its idempotency key, so
    answers a killed worker had not applied yet are replayed, not doubled. A
    ``/transmit`` outcome is saved right after its call (no dedupe there); only
    its call history waits for the group.
    """

    def __init__(self, label: str, now: dt.datetime, outcomes: Counter[str]) -> None:
        self.label, self.now, self.outcomes = label, now, outcomes
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.history: list[Any] = []

    def send(self, row: Any) -> None:
        from .models import FlexChargeOrder
        from .tasks import deliver_claimed_transmission, send_claimed_evaluation

        if isinstance(row, FlexChargeOrder):
            sent = send_claimed_evaluation(row, self.now, self.history)
            if isinstance(sent, str):
                self.outcomes[f"{self.label}:{sent}"] += 1
            else:
                self.answers.append((row.pk, sent))
        else:
            outcome = deliver_claimed_transmission(row, self.now, self.history)
            self.outcomes[f"{self.label}:{outcome}"] += 1
        if len(self.history) >= APPLY_GROUP:
            self.flush()

    def flush(self) -> None:
        from .attempts import store_calls
        from .tasks import apply_evaluations

        answers, history, self.answers, self.history = self.answers, self.history, [], []
        if answers:
            for status in apply_evaluations(answers, history):
                self.outcomes[f"{self.label}:{status}"] += 1
        else:
            store_calls(history)


def deliver(
    label: str, model: type[models.Model], rows: list[Any], now: dt.datetime
) -> Counter[str]:
    """Send claimed rows over the account's session, in claim order; outcomes per kind.

    Before each call the lease must still cover the slowest call: FlexCharge
    is slow, and a call started later could outlive the lease, so another run
    could claim the row and send it too (``/transmit`` is not deduplicated).
    The rest goes back, unsent, to the next run.
    """
    outcomes: Counter[str] = Counter()
    sender = _Sender(label, now, outcomes)
    try:
        for index, row in enumerate(rows):
            if not lease_covers_a_call(row):
                outcomes[f"{label}:handed back"] += hand_back(model, rows[index:])
                break
            sender.send(row)
    finally:
        # Also when a call raised something unexpected: the answers already had are kept.
        sender.flush()
    return outcomes


def drain(
    *, size: int | None = None, budget: float = DRAIN_BUDGET, limit: int | None = None
) -> Counter[str]:
    """Send due rows batch after batch until none is left, ``limit`` were tried or ``budget`` seconds passed.

    The first batch found wakes one more run (unless one is already
    waiting): a second worker helps, and the rows left are not stranded
    if this worker dies. A run that finds nothing wakes none, so the chain
    ends one empty run after the last row. Outcomes are counted per kind
    (``evaluations:pending``...).
    """
    from .wakeups import wake_another

    size = size or conf.DELIVERY_BATCH_SIZE
    deadline = time.monotonic() + budget
    outcomes: Counter[str] = Counter()
    helped = False
    left = limit if limit is not None else -1
    while True:
        found = False
        for label, model in _kinds():
            if left == 0:
                return outcomes
            now = timezone.now()
            rows = claim_batch(model, size if left < 0 else min(size, left), now=now)
            left -= len(rows) if left > 0 else 0
            if not rows:
                continue
            found = True
            if not helped:
                # Before sending: a successor is queued even if this worker dies mid-batch,
                # and meanwhile another worker can help. It ends at once if nothing is left.
                helped = wake_another(model)
            outcomes.update(deliver(label, model, rows, now))
        if not found:
            return outcomes
        if time.monotonic() > deadline:
            wake_another(_kinds()[0][1])
            return outcomes
