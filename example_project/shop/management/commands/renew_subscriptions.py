"""``manage.py renew_subscriptions [--all]``: the nightly renewal run (run it from cron).

Each due subscription is charged through the processor as a merchant-initiated
transaction. An approval is copied to FlexCharge (``payment_approved``); a
decline is handed to FlexCharge at once (``payment_declined``), since it takes
only same-day declines, and the subscription waits in ``rescue_pending``. A
subscription whose last invoice FlexCharge still holds is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, OutputWrapper

from shop.billing import Renewal, due_subscriptions, renew_all


class ProgressBar:
    """``[#########.....................] 12/40``, redrawn in place on a terminal.

    When the output is a file or a pipe (cron mail, a log), one line per tenth
    of the run is written instead of hundreds of carriage returns.
    """

    def __init__(self, out: OutputWrapper, total: int, width: int = 30) -> None:
        self.out = out
        self.total = total
        self.width = width
        self.interactive = out.isatty()
        self._last_tenth = -1

    def render(self, done: int) -> str:
        filled = self.width * done // self.total
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"

    def update(self, done: int) -> None:
        if self.interactive:
            self.out.write("\r" + self.render(done), ending="")
            self.out.flush()
            return
        tenth = 10 * done // self.total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.out.write(self.render(done))

    def finish(self) -> None:
        if self.interactive:
            self.out.write("")


LABELS = {
    Renewal.APPROVED: "approved",
    Renewal.RESCUE_PENDING: "declined, handed to FlexCharge (rescue pending)",
    Renewal.PAST_DUE: "declined, not handed over (past due)",
    Renewal.SKIPPED: "skipped: FlexCharge still holds the last invoice",
}


class Command(BaseCommand):
    help = "Charge due subscriptions; hand each declined renewal to FlexCharge for rescue."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            dest="include_not_due",
            help="Treat every active subscription as due, whatever its period end (demo).",
        )

    def handle(self, *args: Any, include_not_due: bool = False, **options: Any) -> None:
        if options["verbosity"] < 2:
            # The app logs each API call at INFO, which suits the worker's log
            # but would bury this command's output; -v 2 shows it.
            logging.getLogger("django_flexcharge").setLevel(logging.WARNING)
        subscriptions = list(due_subscriptions(include_not_due=include_not_due))
        if not subscriptions:
            self.stdout.write("No subscription is due.")
            return
        bar = ProgressBar(self.stdout, len(subscriptions))
        bar.update(0)
        outcomes = renew_all(subscriptions, on_progress=bar.update)
        bar.finish()

        self.stdout.write(f"Renewal run over {len(subscriptions)} subscriptions:")
        for outcome, label in LABELS.items():
            self.stdout.write(f"  {outcomes[outcome]:>5}  {label}")
        if outcomes[Renewal.RESCUE_PENDING]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{outcomes[Renewal.RESCUE_PENDING]} declines queued for FlexCharge; "
                    "the task worker (manage.py db_worker) sends them, and webhooks report "
                    "each rescue or expiry."
                )
            )
