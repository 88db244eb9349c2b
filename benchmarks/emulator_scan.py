"""The emulator's ``/evaluate`` rate as its order list grows (not part of ``run.py``).

``State.find_external`` used to look for an order by merchant ``orderId`` with
a linear scan, so every new ``/evaluate`` cost more than the last; it now uses
an index. This sends N evaluates with distinct order ids from one
``requests.Session`` and prints the rate over the first and the last 1,000:
with the index the two are the same within the noise.

    .venv/bin/python benchmarks/emulator_scan.py [N]
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import requests

from flexcharge_emulator import Emulator, EmulatorConfig
from flexcharge_emulator.config import DEFAULT_APP_KEY, DEFAULT_APP_SECRET


def body(i: int) -> str:
    return json.dumps(
        {
            "isDeclined": True,
            "idempotencyKey": str(uuid.uuid4()),
            "orderId": f"scan-{i}",
            "isMIT": True,
            "expiryDateUtc": "2099-01-01T00:00:00Z",
            "transaction": {
                "id": f"t-{i}",
                "responseCode": "05",
                "responseCodeSource": "bench",
                "avsResultCode": "NA",
                "cvvResultCode": "NA",
                "cavvResultCode": "NA",
                "amount": 1999,
                "currency": "USD",
            },
            "payer": {"email": "buyer@example.com"},
            "paymentMethod": {"cardNumber": "bench-token", "token": True},
        }
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    config = EmulatorConfig(
        webhook_url=None, rescue_delay=None, expire_delay=None, pickup_delay=3600.0
    )
    with Emulator(config) as emu:
        session = requests.Session()
        token = session.post(
            emu.base_url + "oauth2/token",
            json={"AppKey": DEFAULT_APP_KEY, "AppSecret": DEFAULT_APP_SECRET},
            timeout=10,
        ).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        marks = []
        for i in range(n):
            if i % 1000 == 0:
                marks.append(time.perf_counter())
            response = session.post(emu.base_url + "evaluate", data=body(i), headers=headers)
            response.raise_for_status()
        marks.append(time.perf_counter())
    first = 1000 / (marks[1] - marks[0])
    last = 1000 / (marks[-1] - marks[-2])
    print(f"/evaluate: first 1,000 at {first:.0f}/s, last 1,000 (of {n:,}) at {last:.0f}/s")


if __name__ == "__main__":
    main()
