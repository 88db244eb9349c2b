"""Sending a claimed batch: its calls in claim order, the answers saved in groups.

``deliver`` sends each row over the account's one client session and keeps
what is saved per group, not per row (``APPLY_GROUP`` calls): ``/evaluate``
answers are applied together (``evaluations.apply_evaluations``; one statement on
PostgreSQL) and the group's call history stored after them. FlexCharge
recognises a resent ``/evaluate`` by its idempotency key, so answers a killed
worker had not saved yet are replayed, not doubled. A ``/transmit`` outcome is
saved right after its call (FlexCharge does not deduplicate ``/transmit``: an
outcome kept for later would be lost with the worker and the copy sent twice);
only its call history waits for the group. A failed call is handled at once,
as a single row's.

Applying a group on a second thread while the next is sent was measured
(docs/benchmarks.md): 5 % faster on PostgreSQL, nothing on SQLite, as both
threads are mostly Python under one interpreter lock; not worth receivers
of the status signals running on another thread.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.db import models
from django.db.models import F
from django.utils import timezone

from .attempts import store_calls
from .conf import conf
from .delivery import QUEUED
from .evaluations import apply_evaluations, send_claimed_evaluation
from .models import FlexChargeOrder
from .transmissions import deliver_claimed_transmission

#: Calls whose answers (``/evaluate``) and call history are saved together: a killed
#: worker leaves at most this many answers to be replayed.
APPLY_GROUP = 10


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


class _Sender:
    """One kind's rows of one batch: sends them, keeps each group until it is saved."""

    def __init__(self, label: str, now: dt.datetime, outcomes: Counter[str]) -> None:
        self.label, self.now, self.outcomes = label, now, outcomes
        self.answers: list[tuple[Any, dict[str, Any]]] = []
        self.history: list[Any] = []

    def send(self, row: Any) -> None:
        if isinstance(row, FlexChargeOrder):
            sent = send_claimed_evaluation(row, self.now, self.history)
            if isinstance(sent, str):
                self.outcomes[f"{self.label}:{sent}"] += 1
            else:
                self.answers.append((row, sent))
        else:
            outcome = deliver_claimed_transmission(row, self.now, self.history)
            self.outcomes[f"{self.label}:{outcome}"] += 1
        if len(self.history) >= APPLY_GROUP:
            self.flush()

    def flush(self) -> None:
        answers, history, self.answers, self.history = self.answers, self.history, [], []
        if answers:
            for status in apply_evaluations(answers, history):
                self.outcomes[f"{self.label}:{status}"] += 1
        else:
            store_calls(history)


def deliver(
    label: str, model: type[models.Model], rows: list[Any], now: dt.datetime
) -> Counter[str]:
    """Send claimed rows in claim order; their outcomes (``label:status``), all saved on return.

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
