"""Where the time goes: cProfile and the SQL of each measured path, in-process.

For every path that has a target, the package's work is run in this process
(Django's test client for the views; the service call; a real
the drain a ``db_worker`` runs, ``batch.drain``, for delivery) under cProfile, and one operation is
run under ``CaptureQueriesContext`` to list its SQL next to its floor's. The
top entries by own time and the package's functions by cumulative time are
written per operation, so a missed target comes with its cause.

Usage (run.py sets the environment): ``python bench_profile.py --out FILE --sections ...``
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import common
import requests

OURS = ("django_flexcharge", "django_tasks")
VAULT_TOKEN = "bench-profile-token"  # a made-up vault token


def where(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":
        return func  # a builtin: "<method 'execute' of 'sqlite3.Cursor' objects>"
    parts = filename.split(os.sep)
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}({func})"


def profile(fn: Callable[[], Any], ops: int, top: int = 15) -> dict[str, Any]:
    """Run ``fn`` (which does ``ops`` operations) under cProfile; top entries per operation."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(fn)
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        (where(key), ncalls, tottime, cumtime)
        for key, (_, ncalls, tottime, cumtime, _) in stats.items()
    ]

    def fmt(r: tuple[str, int, float, float]) -> dict[str, Any]:
        return {
            "function": r[0],
            "calls_per_op": round(r[1] / ops, 2),
            "own_ms_per_op": round(r[2] / ops * 1000, 4),
            "cum_ms_per_op": round(r[3] / ops * 1000, 4),
        }

    by_own = sorted(rows, key=lambda r: r[2], reverse=True)[:top]
    ours = sorted(
        (r for r in rows if any(o in r[0] for o in OURS)), key=lambda r: r[3], reverse=True
    )
    return {
        "ops": ops,
        "profiled_ms_per_op": round(wall / ops * 1000, 3),
        "top_own_time": [fmt(r) for r in by_own],
        "package_cumulative": [fmt(r) for r in ours[:top]],
    }


def statements(fn: Callable[[], Any]) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        fn()
    return [q["sql"][:140] for q in ctx.captured_queries]


class SQLTimer:
    """Time spent waiting for the database: every statement (an execute wrapper)
    plus BEGIN and COMMIT, which Django sends outside ``cursor.execute``."""

    HOOKS = ("_commit", "_rollback", "_start_transaction_under_autocommit")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.statements = 0

    def __enter__(self) -> SQLTimer:
        from django.db import DEFAULT_DB_ALIAS, connections

        # The wrapper itself, not the ``django.db.connection`` proxy: the hooks
        # are set on, and removed from, this object's own attributes.
        self.db = connections[DEFAULT_DB_ALIAS]
        self.db.ensure_connection()
        for name in self.HOOKS:
            original = getattr(self.db, name, None)
            if original is not None:
                setattr(self.db, name, self._timed(original))
        self._wrapper = self.db.execute_wrapper(self._execute)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wrapper.__exit__(*exc)
        for name in self.HOOKS:
            self.db.__dict__.pop(name, None)  # back to the class's method

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - started
                self.statements += 1

        return inner

    def _execute(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.statements += 1


def per_row_drain(
    queue: Callable[[int], None], drained: Callable[[int], int], ops: int, blocks: int = 10
) -> dict[str, Any]:
    """A drain's cost per row sent, as ``interleaved`` reports it: ``blocks`` batches of
    ``ops // blocks`` rows, each queued untimed and then drained under the timer."""
    per_block = max(1, ops // blocks)
    wall = sql_s = 0.0
    trips = rows = 0
    for _ in range(blocks):
        queue(per_block)
        with SQLTimer() as sql:
            started = time.perf_counter()
            rows += drained(per_block)
            wall += time.perf_counter() - started
        sql_s += sql.seconds
        trips += sql.statements
    rows = max(rows, 1)
    return {
        "ms": round(wall / rows * 1000, 3),
        "sql_ms": round(sql_s / rows * 1000, 3),
        "other_ms": round((wall - sql_s) / rows * 1000, 3),
        "round_trips": round(trips / rows, 2),
    }


def interleaved(fns: dict[str, Callable[[], Any]], ops: int, blocks: int = 10) -> dict[str, Any]:
    """Per operation and variant: wall time, the part spent waiting for the
    database, the rest (Python; for a worker also the HTTP call), and round
    trips (statements, BEGIN and COMMIT). The variants run in blocks whose
    order rotates, so drift on the machine touches them alike."""
    names = list(fns)
    per_block = max(1, ops // blocks)
    totals = {name: [0.0, 0.0, 0] for name in names}
    for block in range(blocks):
        for name in common.rotated(names, block):
            with SQLTimer() as sql:
                started = time.perf_counter()
                for _ in range(per_block):
                    fns[name]()
                wall = time.perf_counter() - started
            totals[name][0] += wall
            totals[name][1] += sql.seconds
            totals[name][2] += sql.statements
    n = per_block * blocks
    return {
        name: {
            "ms": round(wall / n * 1000, 3),
            "sql_ms": round(sql_s / n * 1000, 3),
            "other_ms": round((wall - sql_s) / n * 1000, 3),
            "round_trips": round(trips / n, 2),
        }
        for name, (wall, sql_s, trips) in totals.items()
    }


def approval(ops: int) -> dict[str, Any]:
    from django.test import Client

    client = Client()

    def post(variant: str) -> Callable[[], Any]:
        return lambda: client.post(f"/checkout/{variant}/")

    variants = ["a", "b", "f"]
    interleaved({v: post(v) for v in variants}, 40, blocks=2)  # warm: imports, first queries
    return {
        # In-process (no HTTP, no server): the difference B - F is the package's.
        "in_process": interleaved({v: post(v) for v in variants}, ops),
        "sql": {v: statements(post(v)) for v in ("b", "f")},
        "B": profile(lambda: [client.post("/checkout/b/") for _ in range(ops)], ops),
    }


def webhook(ops: int) -> dict[str, Any]:
    from bench_webhook import create_pending_orders, deliveries
    from django.test import Client

    from django_flexcharge.testing import meta_headers

    client = Client()
    orders = create_pending_orders(5 * ops + 10, f"prof-{uuid.uuid4().hex[:6]}")

    def send(variant: str) -> Callable[[], Any]:
        def go() -> None:
            taken = [orders.pop()] if variant == "w" else [(str(uuid.uuid4()), "x")]
            req = deliveries(variant, taken, "testserver")[0]
            headers = {k: v for k, v in req.headers.items() if k != "Content-Type"}
            response = client.post(
                req.path, data=req.body, content_type="text/plain", **meta_headers(headers)
            )
            assert response.status_code == 200, response.content

        return go

    return {
        "in_process": interleaved({v: send(v) for v in ("w", "d")}, ops),
        "sql": {v: statements(send(v)) for v in ("w", "d")},
        "W": profile(lambda: [send("w")() for _ in range(ops)], ops),
    }


def burst(ops: int) -> dict[str, Any]:
    from django.test import override_settings
    from django_tasks_db.models import DBTaskResult

    from django_flexcharge.client import set_client
    from django_flexcharge.models import FlexChargeOrder, VaultedCard
    from django_flexcharge.services import evaluate_declined_payment
    from django_flexcharge.types import Payment
    from flexcharge_emulator import Emulator, EmulatorConfig
    from flexcharge_emulator.control import TOKEN_HEADER

    card, _ = VaultedCard.objects.get_or_create(
        token=VAULT_TOKEN,
        defaults={"last4": "1111", "exp_month": 12, "exp_year": 2030, "holder_name": "A L"},
    )
    payer, billing = common.buyer()
    tag = uuid.uuid4().hex[:6]
    counter = iter(range(10**9))

    def decline() -> None:
        i = next(counter)
        payment = Payment(
            order_id=f"prof-{tag}-{i}",
            transaction_id=f"t-{i}",
            amount=1999,
            currency="USD",
            response_code="05",
            processor="bench-gateway",
        )
        evaluate_declined_payment(payment, card=card, payer=payer, billing=billing)

    from benchsite.models import FloorRow
    from django.db import transaction

    decline()  # warm, and a stored /evaluate body for the floor
    body = FlexChargeOrder.objects.filter(order_id__startswith=f"prof-{tag}-").first()
    body = body.request_payload

    def floor() -> None:
        with transaction.atomic():
            FloorRow.objects.create(
                order_id=uuid.uuid4().hex,
                transaction_id="f",
                amount=1999,
                currency="USD",
                payload=body,
            )

    result: dict[str, Any] = {
        "in_process": interleaved({"decline": decline, "floor": floor}, ops),
        "caller_sql": statements(decline),
        "caller": profile(lambda: [decline() for _ in range(ops)], ops),
    }

    config = EmulatorConfig(
        webhook_url=None, rescue_delay=None, expire_delay=None, pickup_delay=3600.0
    )
    from django_flexcharge.batch import drain
    from django_flexcharge.client import FlexChargeClient

    package_client = FlexChargeClient()

    def queue(n: int) -> None:
        for _ in range(n):
            decline()
        DBTaskResult.objects.all().delete()  # the drain is called here, not by a worker

    def drained(n: int) -> int:
        sent = sum(drain(size=n, limit=n).values())
        DBTaskResult.objects.all().delete()  # the wake-up a drain leaves for a helper
        return sent

    with Emulator(config) as emu, override_settings(FLEXCHARGE_API_URL=emu.base_url):
        # What requests' per-request look-ups of proxies, CA bundle and ~/.netrc
        # in the environment cost (trust_env), on one cheap emulator endpoint.
        sessions = {"trust_env": requests.Session(), "no_trust_env": requests.Session()}
        sessions["no_trust_env"].trust_env = False
        for session in sessions.values():
            session.headers[TOKEN_HEADER] = emu.config.control_token
        url = emu.url + "/_emulator/faults"
        result["requests_per_call"] = interleaved(
            {name: partial(session.get, url) for name, session in sessions.items()},
            10 * ops,
        )
        try:
            set_client(package_client)
            # The token fetch and the first connection, outside the figures.
            queue(1)
            drained(1)
            queue(10)
            result["worker_sql_per_10_rows"] = statements(lambda: drained(10))
            result["in_process"]["worker_row"] = per_row_drain(queue, drained, ops)
            queue(ops)
            result["worker"] = profile(lambda: drained(ops), ops)
        finally:
            set_client(None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default="approval,webhook,burst")
    args = parser.parse_args()
    ops = 100 if args.quick else 200
    common.setup_django()
    from django_tasks_db.models import DBTaskResult

    # Nothing queued from earlier phases: the worker must only see this phase's tasks.
    common.reset_tables(DBTaskResult)
    sections = args.sections.split(",")
    out: dict[str, Any] = {}
    if "approval" in sections:
        out["approval"] = approval(ops)
        common.reset_tables(DBTaskResult)  # B enqueued /transmit tasks nobody will run here
    if "webhook" in sections:
        out["webhook"] = webhook(ops)
    if "burst" in sections:
        out["burst"] = burst(ops)
    common.write_result(args.out, out)


if __name__ == "__main__":
    main()
