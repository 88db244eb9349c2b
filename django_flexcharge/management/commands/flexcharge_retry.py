"""``manage.py flexcharge_retry``: re-enqueue queued ``/evaluate`` and ``/transmit`` rows whose task was lost.

Run it from cron every few minutes. A row is picked when it is queued, not
leased by a worker, and due: never tried and over a minute old, or past its
``next_attempt_at`` (by a minute when the task backend defers retries
itself). Enqueueing a row twice is harmless: only one worker can claim it.
``--run`` sends them in this process instead, for a site without a worker.
``--account ALIAS`` (repeatable) limits it to those FlexCharge accounts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, models, transaction

from ...delivery import due, enqueue
from ...evaluations import send_evaluation
from ...models import FlexChargeOrder, Transmission
from ...tasks import deliver_evaluation, deliver_transmission
from ...transmissions import send_transmission
from ._accounts import add_account_option, chosen_accounts, of_accounts


def pick(
    model: type[models.Model],
    limit: int,
    accounts: list[str] | None = None,
    *,
    grace: dt.timedelta | None = None,
) -> list[Any]:
    """Primary keys of up to ``limit`` due rows, oldest first.

    On PostgreSQL rows locked by a worker applying an answer are skipped
    rather than waited for, so several cron runs (or hosts) never queue up
    behind each other; the claim in the task stays the real guard.
    """
    rows = of_accounts(due(model, grace=grace), accounts or [])
    if not connection.features.has_select_for_update_skip_locked:
        return list(rows.values_list("pk", flat=True)[:limit])
    with transaction.atomic():
        locked = rows.select_for_update(skip_locked=True)
        return list(locked.values_list("pk", flat=True)[:limit])


class Command(BaseCommand):
    help = "Re-send queued FlexCharge evaluations and transmissions whose task was lost."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--run", action="store_true", help="send them in this process instead of enqueueing"
        )
        parser.add_argument(
            "--limit", type=int, default=500, help="rows of each kind per run (default 500)"
        )
        add_account_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run, limit = options["run"], max(1, options["limit"])
        accounts = chosen_accounts(options)
        kinds = (
            ("evaluations", FlexChargeOrder, deliver_evaluation, send_evaluation),
            ("transmissions", Transmission, deliver_transmission, send_transmission),
        )
        for label, model, task, send in kinds:
            pks = pick(model, limit, accounts)
            if run:
                outcomes = Counter(send(pk) for pk in pks)
                detail = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items()))
                self.stdout.write(f"Ran {len(pks)} {label}" + (f": {detail}" if detail else ""))
            else:
                enqueued = sum(enqueue(task, pk) for pk in pks)
                self.stdout.write(f"Re-enqueued {enqueued} of {len(pks)} due {label}")
