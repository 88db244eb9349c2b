"""The delivery baseline: one ``requests.Session`` sending stored ``/evaluate`` bodies in a loop.

This is the least any delivery mechanism must do per decline: one
authenticated POST of the stored bytes over a kept-alive connection. No
database, no claim, no retry bookkeeping. It runs as a process of its own,
as a worker does, so it does not share the emulator's interpreter lock.

``python bare_loop.py --url http://127.0.0.1:PORT/v1/ --bodies FILE`` (one JSON body per line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import requests

from flexcharge_emulator.config import DEFAULT_APP_KEY, DEFAULT_APP_SECRET


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True)
    args = parser.parse_args()
    with open(args.bodies, "rb") as fh:
        bodies = [line.rstrip(b"\n") for line in fh if line.strip()]

    session = requests.Session()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = session.post(
        args.url + "oauth2/token",
        json={"AppKey": DEFAULT_APP_KEY, "AppSecret": DEFAULT_APP_SECRET},
        timeout=10,
    ).json()["accessToken"]
    headers["Authorization"] = f"Bearer {token}"
    failed = 0
    started = time.perf_counter()
    for body in bodies:
        response = session.post(args.url + "evaluate", data=body, headers=headers, timeout=30)
        failed += response.status_code != 200
    elapsed = time.perf_counter() - started
    print(json.dumps({"sent": len(bodies), "failed": failed, "elapsed": elapsed}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
