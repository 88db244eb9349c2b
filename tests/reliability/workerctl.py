"""Helper process of the worker-kill test: seed, report, expire leases, scan for card data.

Run as ``python -m tests.reliability.workerctl <command>`` with
``DJANGO_SETTINGS_MODULE=tests.reliability.worker_settings``; prints one JSON
line. The test process never opens the worker database itself, so SQLite
files and PostgreSQL databases are handled the same way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import sys

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import Case, Value, When  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_flexcharge import delivery  # noqa: E402
from django_flexcharge.models import FlexChargeOrder, Transmission  # noqa: E402
from django_flexcharge.services import vault_card  # noqa: E402
from django_flexcharge.types import Card, Payer  # noqa: E402
from tests.conftest import make_billing  # noqa: E402
from tests.reliability.carddata import scan_database  # noqa: E402
from tests.reliability.harness import age_rows, seed  # noqa: E402

try:
    from django_tasks_db.models import DBTaskResult
except ImportError:  # pragma: no cover
    DBTaskResult = None


def cmd_seed(args: argparse.Namespace) -> dict:
    card = Card(
        number="4000002760003184",
        cvv="999",
        exp_month=9,
        exp_year=timezone.now().year + 3,
        first_name="Jane",
        last_name="Doe",
    )
    payer = Payer(email="jane@example.com", id="cust_42")
    billing = make_billing()
    vaulted = vault_card(card, email=payer.email)
    # One transaction: the tasks are enqueued on commit, all at once, before any worker runs.
    with transaction.atomic():
        seed(args.prefix, args.declines, args.approvals, card=vaulted, payer=payer, billing=billing)
    age_rows()
    return {
        "orders": FlexChargeOrder.objects.count(),
        "transmissions": Transmission.objects.count(),
    }


def cmd_report(args: argparse.Namespace) -> dict:
    now = timezone.now()
    fields = ("order_id", "idempotency_key", "status", "attempts", "locked_until")

    def rows(model: type) -> list[dict]:
        return [
            {
                **{k: str(v) for k, v in row.items() if k != "locked_until"},
                "leased": bool(row["locked_until"] and row["locked_until"] > now),
            }
            for row in model.objects.values(*fields)
        ]

    tasks: dict[str, int] = {}
    if DBTaskResult is not None:
        for status in DBTaskResult.objects.values_list("status", flat=True):
            tasks[status] = tasks.get(status, 0) + 1
    return {"orders": rows(FlexChargeOrder), "transmissions": rows(Transmission), "tasks": tasks}


def cmd_expire_leases(args: argparse.Namespace) -> dict:
    """What a few minutes do to a dead worker's rows, at once: the lease runs out, and a
    retry it was making is past the grace ``flexcharge_retry`` leaves to deferred tasks."""
    now = timezone.now()
    leased = {"status": "queued", "locked_until__gt": now}
    passed = {
        "locked_until": now - dt.timedelta(seconds=1),
        "next_attempt_at": Case(
            When(next_attempt_at__isnull=True, then=Value(None)),
            default=Value(now - dt.timedelta(minutes=2)),
        ),
    }
    return {
        "orders": FlexChargeOrder.objects.filter(**leased).update(**passed),
        "transmissions": Transmission.objects.filter(**leased).update(**passed),
    }


def cmd_retry(args: argparse.Namespace) -> dict:
    """``manage.py flexcharge_retry`` as cron runs it, then the report.

    The command leaves rows to their own task for ``LOST_TASK_GRACE`` (a
    minute); here that is one second, so a task lost with the killed worker
    is found without the test waiting a minute. A row re-enqueued while its
    task still exists is harmless: only one run can claim it.
    """
    delivery.LOST_TASK_GRACE = dt.timedelta(seconds=1)
    call_command("flexcharge_retry", stdout=io.StringIO())
    return cmd_report(args)


def cmd_scan(args: argparse.Namespace) -> dict:
    findings, scanned = scan_database()
    return {"findings": findings, "scanned": scanned}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="workerctl")
    sub = parser.add_subparsers(dest="command", required=True)
    seeder = sub.add_parser("seed")
    seeder.add_argument("prefix")
    seeder.add_argument("declines", type=int)
    seeder.add_argument("approvals", type=int)
    sub.add_parser("report")
    sub.add_parser("expire-leases")
    sub.add_parser("scan")
    sub.add_parser("retry")
    args = parser.parse_args(argv)
    handler = {
        "seed": cmd_seed,
        "report": cmd_report,
        "expire-leases": cmd_expire_leases,
        "scan": cmd_scan,
        "retry": cmd_retry,
    }[args.command]
    print(json.dumps(handler(args)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
