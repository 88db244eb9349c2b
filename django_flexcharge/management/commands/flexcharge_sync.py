"""``manage.py flexcharge_sync``: reconcile orders with FlexCharge (``GET /orders/{id}``).

Without arguments: every pending order. ``--order ORDER_ID`` (repeatable):
those orders, whatever their status. Run it from cron (hourly, say) as a
safety net for a missed webhook. Prints a summary; exits non-zero when some
order could not be checked or an ``--order`` names no order, so cron reports it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import FlexChargeError
from ...models import FlexChargeOrder
from ...order_actions import sync_order


class Command(BaseCommand):
    help = "Reconcile pending FlexCharge orders (or --order ORDER_ID) with GET /orders/{id}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--order",
            action="append",
            dest="orders",
            default=[],
            metavar="ORDER_ID",
            help="the host's order id; repeat for several",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wanted: list[str] = options["orders"]
        unknown: list[str] = []
        if wanted:
            orders = FlexChargeOrder.objects.filter(order_id__in=wanted)
            unknown = sorted(set(wanted) - set(orders.values_list("order_id", flat=True)))
            for missing in unknown:
                self.stderr.write(f"{missing}: no such FlexCharge order")
        else:
            orders = FlexChargeOrder.objects.filter(status=FlexChargeOrder.Status.PENDING)
        results: Counter[str] = Counter()
        errors = 0
        for order in orders.order_by("pk").iterator():
            if not order.order_session_key:
                results[f"skipped ({order.status}, no FlexCharge id yet)"] += 1
                continue
            before = order.status
            try:
                after = sync_order(order).status
            except FlexChargeError as err:
                errors += 1
                self.stderr.write(f"{order.order_id}: {err}")
                continue
            results["unchanged" if after == before else f"{before} -> {after}"] += 1
        checked = sum(results.values()) + errors
        parts = [f"{n} {what}" for what, n in sorted(results.items())]
        summary = f"Checked {checked} orders" + (": " + ", ".join(parts) if parts else "")
        self.stdout.write(f"{summary}; {errors} errors.")
        if errors:
            raise CommandError(f"{errors} orders could not be checked.")
        if unknown:
            # A typo in --order must not look like success to cron or a script.
            raise CommandError(
                f"No FlexCharge order with order id {', '.join(map(repr, unknown))} "
                "(--order takes your order id, FlexChargeOrder.order_id)."
            )
