"""``manage.py flexcharge_prune [N] [--days N]``: delete webhook events, transmissions and call attempts older than N days.

Age is the criterion (``received_at`` of an event, ``created`` of a
transmission), whatever the row's status: after N days (90 by default) a
delivery that never applied or an approval copy never sent is past use, and a
retention policy that keeps them for ever is not one. ``--keep-unprocessed``
keeps ``received``/``failed`` events and ``queued`` transmissions for a person
to look at. Call attempts (``CallAttempt``, the timeline's record of each call to
FlexCharge) go by ``started_at``. Orders, refunds and status changes are the money
trail and are never pruned.
Deletes in batches so a large table is not locked for long. ``--account ALIAS``
(repeatable) prunes only those FlexCharge accounts' rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models
from django.utils import timezone

from ...models import CallAttempt, Transmission, WebhookEvent
from ._accounts import add_account_option, chosen_accounts, of_accounts

BATCH = 1000


def delete_in_batches(queryset: models.QuerySet[Any]) -> int:
    deleted = 0
    while True:
        pks = list(queryset.values_list("pk", flat=True)[:BATCH])
        if not pks:
            return deleted
        deleted += queryset.model._default_manager.filter(pk__in=pks).delete()[0]


class Command(BaseCommand):
    help = (
        "Delete FlexCharge webhook events, transmissions and call attempts older than N days "
        "(default 90)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("days_arg", nargs="?", type=int, metavar="N", help="age in days")
        parser.add_argument("--days", type=int, default=None, help="age in days (default 90)")
        parser.add_argument(
            "--keep-unprocessed",
            action="store_true",
            help="keep received/failed webhook events and queued transmissions",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        add_account_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        given = [d for d in (options["days_arg"], options["days"]) if d is not None]
        if len(given) == 2 and given[0] != given[1]:
            raise CommandError("N and --days disagree; give one of them.")
        days = given[0] if given else 90
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        accounts = chosen_accounts(options)
        cutoff = timezone.now() - dt.timedelta(days=days)
        events = of_accounts(WebhookEvent.objects.filter(received_at__lt=cutoff), accounts)
        transmissions = of_accounts(Transmission.objects.filter(created__lt=cutoff), accounts)
        if options["keep_unprocessed"]:
            events = events.exclude(
                status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)
            )
            transmissions = transmissions.exclude(status=Transmission.Status.QUEUED)
        calls = CallAttempt.objects.filter(started_at__lt=cutoff)
        targets = (
            ("webhook events", events),
            ("transmissions", transmissions),
            ("call attempts", calls),
        )
        for label, queryset in targets:
            if options["dry_run"]:
                self.stdout.write(f"Would delete {queryset.count()} {label} older than {days} days")
            else:
                count = delete_in_batches(queryset)
                self.stdout.write(f"Deleted {count} {label} older than {days} days")
