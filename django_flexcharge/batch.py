"""Delivery in batches: one task run claims up to N due rows at once and sends them.

``claim_batch`` takes the lease on up to ``FLEXCHARGE_DELIVERY_BATCH_SIZE``
queued, due, unleased rows in one transaction: on PostgreSQL ``SELECT ...
FOR UPDATE SKIP LOCKED`` then one UPDATE of their lease, so two concurrent
claims never take one row; elsewhere (SQLite: one writer) one conditional
UPDATE on the chosen ids, kept only when it matched every one of them, else
rolled back and the rows claimed one by one. Each row keeps its own
idempotency key, attempt count, back-off and error; ``sending.deliver``
sends the batch and saves its outcomes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from django.db import OperationalError, connections, models, router, transaction
from django.db.models import F
from django.utils import timezone

from .conf import conf
from .delivery import claim, claimable, lease_length
from .sending import deliver

#: Seconds a drain run keeps claiming batches before it hands over to a new run.
DRAIN_BUDGET = 30.0


class _Contended(Exception):
    """Another writer took one of the chosen rows between the SELECT and the UPDATE."""


def claim_batch(
    model: type[models.Model], size: int, *, now: dt.datetime | None = None
) -> list[Any]:
    """Lease up to ``size`` due rows (oldest first); returns them, ``attempts`` counted."""
    now = now or timezone.now()
    until = now + lease_length()
    using = router.db_for_write(model)
    due = claimable(model, now)
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


def _kinds() -> list[tuple[str, type[models.Model]]]:
    from .models import FlexChargeOrder, Transmission

    return [("evaluations", FlexChargeOrder), ("transmissions", Transmission)]


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
