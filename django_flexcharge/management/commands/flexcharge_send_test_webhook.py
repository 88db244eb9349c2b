"""``manage.py flexcharge_send_test_webhook URL``: POST a correctly signed webhook to a site.

For checking an installation end to end (keys, proxy, FLEXCHARGE_WEBHOOK_HOST)
without waiting for FlexCharge. Without ``--order-id``/``--external-order-id``
the delivery names an order nobody has: a working site answers 200 and stores
it as ignored, which is all a set-up check needs. The body and headers are the ones
``django_flexcharge.testing.signed_webhook`` builds, sent as ``text/plain``
like FlexCharge does; the answer is printed, and a non-2xx answer fails the
command so scripts can check it. ``--account ALIAS`` signs with that
FlexCharge account's key and test mode (send it to that account's URL,
``.../flexcharge/webhook/ALIAS/``).
"""

from __future__ import annotations

import json
import uuid
from argparse import BooleanOptionalAction
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...accounts import check_alias
from ...conf import conf
from ...exceptions import FlexChargeConfigurationError
from ...signing import decode_key
from ...testing import signed_webhook, webhook_host


class Command(BaseCommand):
    help = "Send a correctly signed FlexCharge webhook to URL and print the answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="e.g. https://shop.example.com/flexcharge/webhook/")
        parser.add_argument("--event", default="order.completed")
        parser.add_argument(
            "--order-id",
            help="FlexCharge's order id (OrderId); default: a new GUID, which matches no order",
        )
        parser.add_argument(
            "--external-order-id",
            help="your order id (ExternalOrderId); default: a made-up test-... id",
        )
        parser.add_argument("--key", help="subscriber key (default: the account's first one)")
        parser.add_argument(
            "--account",
            default="default",
            metavar="ALIAS",
            help="FlexCharge account whose key and test mode to use (default: default)",
        )
        parser.add_argument(
            "--host",
            help="host to sign for (default: the URL's host[:port]); set it to the public "
            "host when URL reaches the site behind its proxy",
        )
        parser.add_argument("--confirmation-id", default=None)
        parser.add_argument("--event-data", default=None, help="EventData as JSON")
        parser.add_argument("--resent", action="store_true", help="send IsResent: true")
        parser.add_argument(
            "--test-mode",
            action=BooleanOptionalAction,
            default=None,
            help="IsTestMode (default: FLEXCHARGE_TEST_MODE)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"]
        account = options["account"]
        try:
            settings = conf.account(check_alias(account))
        except FlexChargeConfigurationError as err:
            raise CommandError(str(err)) from err
        try:
            event_data = json.loads(options["event_data"]) if options["event_data"] else None
        except ValueError as err:
            raise CommandError("--event-data is not JSON") from err
        if options["key"] is not None:
            try:
                decode_key(options["key"])
            except ValueError as err:
                raise CommandError(
                    "--key is not valid base64: paste the subscriber key exactly as the "
                    "FlexCharge portal shows it (Developers > Webhooks)."
                ) from err
        test_mode = options["test_mode"]
        try:
            body, headers = signed_webhook(
                options["event"],
                order_id=options["order_id"] or str(uuid.uuid4()),
                external_order_id=options["external_order_id"] or f"test-{uuid.uuid4().hex[:12]}",
                key=options["key"],
                host=options["host"] or webhook_host(url),
                is_test_mode=settings.TEST_MODE if test_mode is None else test_mode,
                is_resent=options["resent"],
                event_data=event_data,
                confirmation_id=options["confirmation_id"],
                account=account,
            )
        except (FlexChargeConfigurationError, ValueError) as err:
            # No key configured, or a configured one that is not base64: say so, no traceback.
            raise CommandError(str(err)) from err
        headers["Content-Type"] = "text/plain; charset=utf-8"
        try:
            response = requests.post(
                url, data=body, headers=headers, timeout=conf.TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as err:
            raise CommandError(f"could not reach {url}: {type(err).__name__}: {err}") from err
        self.stdout.write(f"{response.status_code} {response.reason}")
        self.stdout.write(response.text)
        if not 200 <= response.status_code < 300:
            raise CommandError(f"the site answered {response.status_code}")
