"""``manage.py flexcharge_sync``: reconcile orders with FlexCharge (``GET /orders/{id}``).

Without arguments: every pending order, including those whose ``/evaluate``
answer was lost (no FlexCharge id: looked up by our order id with
``GET /orders?query=``), and every order whose refunds need FlexCharge's
refunded total (a refund whose answer was lost, a refund webhook without an
amount). ``--order ORDER_ID`` (repeatable): those orders, whatever their status
(a failed one FlexCharge says it charged is approved). ``--account ALIAS``
(repeatable): only that FlexCharge account's orders (default: every account's). Run it from cron (hourly, say) as a
safety net for a missed webhook. Prints a summary; exits non-zero when some
order could not be checked or an ``--order`` names no order, so cron reports it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from ...exceptions import FlexChargeError
from ...models import FlexChargeOrder, Refund
from ...refunds import needs_refund_sync
from ...sync import may_be_held, sync_order
from ._accounts import add_account_option, chosen_accounts, of_accounts


class Command(BaseCommand):
    help = (
        "Reconcile pending FlexCharge orders and unsettled refunds (or --order ORDER_ID) "
        "with GET /orders/{id}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--order",
            action="append",
            dest="orders",
            default=[],
            metavar="ORDER_ID",
            help="the host's order id; repeat for several",
        )
        add_account_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        wanted: list[str] = options["orders"]
        accounts = chosen_accounts(options)
        unknown: list[str] = []
        if wanted:
            orders = of_accounts(FlexChargeOrder.objects.filter(order_id__in=wanted), accounts)
            unknown = sorted(set(wanted) - set(orders.values_list("order_id", flat=True)))
            for missing in unknown:
                self.stderr.write(f"{missing}: no such FlexCharge order")
        else:
            pending = Q(status=FlexChargeOrder.Status.PENDING)
            due = FlexChargeOrder.objects.filter(pending | needs_refund_sync())
            orders = FlexChargeOrder.objects.filter(pk__in=of_accounts(due, accounts).values("pk"))
        results: Counter[str] = Counter()
        errors = 0
        for order in orders.order_by("pk").iterator():
            if not order.order_session_key and not may_be_held(order):
                results[f"skipped ({order.status}, no FlexCharge id yet)"] += 1
                continue
            before = order.status
            try:
                synced = sync_order(order)
            except FlexChargeError as err:
                errors += 1
                self.stderr.write(f"{order.order_id}: {err}")
                continue
            after = synced.status
            if not synced.order_session_key:
                # Looked up by our order id (its /evaluate answer was lost): not there.
                results[f"not found at FlexCharge ({after}, no FlexCharge id)"] += 1
                continue
            results["unchanged" if after == before else f"{before} -> {after}"] += 1
            self._report_unsettled(order)
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

    def _report_unsettled(self, order: FlexChargeOrder) -> None:
        """Say what sync could not settle: FlexCharge's answer held no refunded total."""
        current = FlexChargeOrder.objects.get(pk=order.pk)
        unsettled = current.refunds.filter(outcome=Refund.Outcome.UNCONFIRMED).count()
        if unsettled or current.refunded_amount_unknown:
            self.stderr.write(
                f"{order.order_id}: FlexCharge's answer gives no refunded total "
                f"(FLEXCHARGE_ORDER_REFUNDED_FIELDS); {unsettled} refunds still unconfirmed"
                + (", refunded amount unknown" if current.refunded_amount_unknown else "")
                + ". Check the order in the FlexCharge portal."
            )
