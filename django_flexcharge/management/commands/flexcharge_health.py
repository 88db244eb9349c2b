"""``manage.py flexcharge_health [--json]``: the health report for cron and alerting; exit 1 when unhealthy."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import health
from ...accounts import account_conf
from ...exceptions import FlexChargeConfigurationError


class Command(BaseCommand):
    help = (
        "Report the FlexCharge integration's health (queue age, rows past their retry budget, "
        "last webhook, signature refusals, token endpoint); exit status 1 when unhealthy."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--account",
            help="only this account's rows (queue, retry budget, last webhook); default: all",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = options.get("account")
        if account is not None:
            try:
                account_conf(account)
            except FlexChargeConfigurationError as err:
                raise CommandError(str(err)) from None
        report = health.collect(account=account)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        else:
            for line in health.lines(report):
                self.stdout.write(line)
        if not report["healthy"]:
            raise CommandError("FlexCharge is unhealthy: " + "; ".join(report["problems"]))
