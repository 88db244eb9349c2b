"""Helper process of the engine tests: workerctl's commands, plus ``traffic``.

``traffic PREFIX DECLINES APPROVALS`` stores each decline and approval in its
own transaction, as a site's requests do, so each one's task is enqueued as
its row commits (workerctl's ``seed`` stores them all in one transaction).
"""

from __future__ import annotations

import json
import sys
import time

from tests.reliability import workerctl  # sets Django up
from tests.reliability.harness import seed


def cmd_traffic(args: object) -> dict:
    from django.utils import timezone

    from django_flexcharge.models import FlexChargeOrder, Transmission
    from django_flexcharge.services import vault_card
    from django_flexcharge.types import Card, Payer
    from tests.conftest import make_billing

    card = Card(
        number="4000002760003184",
        cvv="999",
        exp_month=9,
        exp_year=timezone.now().year + 3,
        first_name="Jane",
        last_name="Doe",
    )
    payer = Payer(email="jane@example.com", id="cust_42")
    vaulted = vault_card(card, email=payer.email)
    started = time.monotonic()
    seed(
        args.prefix,  # type: ignore[attr-defined]
        args.declines,  # type: ignore[attr-defined]
        args.approvals,  # type: ignore[attr-defined]
        card=vaulted,
        payer=payer,
        billing=make_billing(),
    )
    return {
        "seconds": round(time.monotonic() - started, 3),
        "orders": FlexChargeOrder.objects.count(),
        "transmissions": Transmission.objects.count(),
    }


def main(argv: list[str]) -> None:
    if argv and argv[0] == "traffic":
        import argparse

        parser = argparse.ArgumentParser(prog="enginectl traffic")
        parser.add_argument("prefix")
        parser.add_argument("declines", type=int)
        parser.add_argument("approvals", type=int)
        print(json.dumps(cmd_traffic(parser.parse_args(argv[1:]))), flush=True)
        return
    workerctl.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
