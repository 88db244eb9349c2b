"""``manage.py flexcharge_prune --days N``: delete old webhook events and transmissions.

Only rows that are done: webhook events applied, duplicate or ignored (a
``received`` or ``failed`` event is kept for a person to look at), and
transmissions sent or failed. Orders and refunds are the money trail and are
never pruned. Deletes in batches so a large table is not locked for long.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models
from django.utils import timezone

from ...models import Transmission, WebhookEvent

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
        "Delete processed FlexCharge webhook events and finished transmissions older than N days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=90, help="age in days (default 90)")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days < 1:
            raise CommandError("--days must be 1 or more.")
        cutoff = timezone.now() - dt.timedelta(days=days)
        done_events = (
            WebhookEvent.Status.APPLIED,
            WebhookEvent.Status.DUPLICATE,
            WebhookEvent.Status.IGNORED,
        )
        targets = (
            (
                "webhook events",
                WebhookEvent.objects.filter(received_at__lt=cutoff, status__in=done_events),
            ),
            (
                "transmissions",
                Transmission.objects.filter(
                    created__lt=cutoff,
                    status__in=(Transmission.Status.SENT, Transmission.Status.FAILED),
                ),
            ),
        )
        for label, queryset in targets:
            if options["dry_run"]:
                self.stdout.write(f"Would delete {queryset.count()} {label} older than {days} days")
            else:
                count = delete_in_batches(queryset)
                self.stdout.write(f"Deleted {count} {label} older than {days} days")
